/**
 * npm run bench:gateway — upload and download throughput of the gateway over loopback HTTP,
 * against `cp` and `sha256sum` on the same file in the same run, and the server's peak RSS.
 *
 * For each size (1 GiB, 4 GiB by default; override with `--sizes 64,256` or BENCH_SIZES_MIB=64,256, in MiB) it writes a
 * valid safetensors file (one U8 tensor, non-zero pattern so nothing is sparse) to os.tmpdir(),
 * signs it with a key made here, starts `node bin/modelgate.js serve` as a child process on a
 * temp data dir and allowlist, uploads it with a streaming client (node http over a file read
 * stream) through both routes: raw `PUT /v1/artifacts` (envelope in Modelgate-Signature, what
 * `modelgate push` sends) and multipart `POST` with the signature part first (on a second data
 * dir, so both create the artifact); downloads it (body consumed and discarded), and reads VmHWM from /proc/<pid>/status. Everything is deleted afterwards.
 * Targets (issue 3): upload >= 70% of cp, download >= 100% of sha256sum, peak RSS < 200 MB.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, promises as fsp, readFileSync, statSync } from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { once } from "node:events";
import nacl from "tweetnacl";
import { buildPublishStatement, keyIdOf, signEnvelope } from "../src/trust";

const MiB = 1024 * 1024;

function mbps(bytes: number, seconds: number): number {
  return bytes / 1e6 / seconds;
}

function timed<T>(fn: () => T): { value: T; seconds: number } {
  const t0 = process.hrtime.bigint();
  const value = fn();
  return { value, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

async function timedAsync<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

/** safetensors: u64le header length, JSON header padded with spaces to 8 bytes, then the tensor bytes. */
async function writeSafetensors(file: string, dataBytes: number): Promise<number> {
  let header = JSON.stringify({ weight: { dtype: "U8", shape: [dataBytes], data_offsets: [0, dataBytes] } });
  header += " ".repeat((8 - (header.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  const out = createWriteStream(file);
  out.write(prefix);
  out.write(header);
  const block = randomBytes(4 * MiB);
  let left = dataBytes;
  while (left > 0) {
    const n = Math.min(left, block.length);
    if (!out.write(n === block.length ? block : block.subarray(0, n))) await once(out, "drain");
    left -= n;
  }
  out.end();
  await once(out, "finish");
  return 8 + header.length + dataBytes;
}

function vmHwmKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, "utf8"));
  return m?.[1] !== undefined ? Number(m[1]) : NaN;
}

/** User + system CPU seconds the process has used so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${String(pid)}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function startServer(dir: string, allowlist: string, dataName: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [path.join(__dirname, "..", "..", "bin", "modelgate.js"), "serve", "--port", "0", "--data", path.join(dir, dataName), "--allowlist", allowlist], {
    env: { ...process.env, MODELGATE_LOG_LEVEL: "info", MODELGATE_MAX_UPLOAD_BYTES: String(20 * 1024 * MiB), MODELGATE_RATE_LIMIT_RPS: "1000" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let buffered = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => {
      reject(new Error(`server exited with ${String(code)}: ${buffered}`));
    });
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        // The server's own phase timings of the upload, for the reader of the figures.
        if (line.includes("upload accepted")) console.log(`  server: ${line}`);
        if (!line.includes("modelgate listening")) continue;
        const parsed = JSON.parse(line) as { port: number };
        resolve(`http://127.0.0.1:${String(parsed.port)}`);
      }
    });
  });
  return { child, url };
}

const BOUNDARY = "----modelgate-bench-boundary";

/**
 * The upload client: node's http over a file read stream, multipart framed by hand with a known
 * Content-Length, signature part first (what `modelgate push` sends, without web-stream overhead).
 */
function uploadStreaming(baseUrl: string, envelope: string, file: string): Promise<void> {
  const head = Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="signature"\r\n\r\n${envelope}\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="artifact"; filename="model.safetensors"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  return new Promise((resolve, reject) => {
    const size = statSync(file).size;
    const req = http.request(`${baseUrl}/v1/artifacts`, {
      method: "POST",
      headers: { "Content-Type": `multipart/form-data; boundary=${BOUNDARY}`, "Content-Length": String(head.length + size + tail.length) },
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        if (res.statusCode === 201) resolve();
        else reject(new Error(`upload answered ${String(res.statusCode)}: ${body.slice(0, 500)}`));
      });
    });
    req.on("error", reject);
    req.write(head);
    const input = createReadStream(file, { highWaterMark: MiB });
    input.on("error", reject);
    input.pipe(req, { end: false });
    input.on("end", () => req.end(tail));
  });
}

/** The raw upload client: PUT with the file as the body, the envelope base64 in Modelgate-Signature. */
function uploadRaw(baseUrl: string, envelope: string, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}/v1/artifacts`, {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(statSync(file).size), "Modelgate-Signature": Buffer.from(envelope).toString("base64") },
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        if (res.statusCode === 201) resolve();
        else reject(new Error(`raw upload answered ${String(res.statusCode)}: ${body.slice(0, 500)}`));
      });
    });
    req.on("error", reject);
    const input = createReadStream(file, { highWaterMark: MiB });
    input.on("error", reject);
    input.pipe(req);
  });
}

/** The download client: node's http, body counted and discarded. */
function downloadCounting(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`download answered ${String(res.statusCode)}`));
          res.resume();
          return;
        }
        let n = 0;
        res.on("data", (c: Buffer) => (n += c.length));
        res.on("end", () => {
          resolve(n);
        });
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

async function runSize(sizeBytes: number, tmp: string): Promise<Record<string, string | number>> {
  const dir = await fsp.mkdtemp(path.join(tmp, "mg-bench-"));
  const file = path.join(dir, "model.safetensors");
  const copy = path.join(dir, "copy.safetensors");
  let server: ChildProcess | undefined;
  try {
    const total = await writeSafetensors(file, sizeBytes);
    // Flush the fresh file's dirty pages first, so the baselines do not compete with its writeback.
    execFileSync("sync");

    const cp = timed(() => execFileSync("cp", ["--reflink=never", file, copy]));
    await fsp.rm(copy, { force: true });
    // The gateway fsyncs before it answers 201; cp does not. Same copy made durable, for context.
    const cpSync = timed(() => execFileSync("sh", ["-c", 'cp --reflink=never "$1" "$2" && sync "$2"', "sh", file, copy]));
    await fsp.rm(copy, { force: true });
    const sum = timed(() => execFileSync("sha256sum", [file], { encoding: "utf8" }));
    const digestHex = sum.value.split(/\s+/)[0] ?? "";

    const keys = nacl.sign.keyPair();
    const keyId = keyIdOf(keys.publicKey);
    const allowlist = path.join(dir, "allowlist.json");
    await fsp.writeFile(
      allowlist,
      JSON.stringify({ version: 1, sources: [{ id: "bench", description: "bench key", keys: [{ publicKey: Buffer.from(keys.publicKey).toString("base64") }] }] }),
    );
    const envelope = JSON.stringify(signEnvelope(buildPublishStatement({ name: "bench/model.safetensors", digestHex }), keys.secretKey, keyId));

    // Multipart first, on its own server and data dir, so the raw upload below also creates the artifact.
    const multipartServer = await startServer(dir, allowlist, "data-multipart");
    let multipart: { seconds: number } | undefined;
    let multipartCpu = NaN;
    try {
      const cpu0 = cpuSeconds(multipartServer.child.pid ?? 0);
      multipart = await timedAsync(() => uploadStreaming(multipartServer.url, envelope, file));
      multipartCpu = cpuSeconds(multipartServer.child.pid ?? 0) - cpu0;
    } finally {
      multipartServer.child.kill("SIGTERM");
      await once(multipartServer.child, "exit");
      await fsp.rm(path.join(dir, "data-multipart"), { recursive: true, force: true });
    }

    const started = await startServer(dir, allowlist, "data");
    server = started.child;
    const pid = server.pid ?? 0;

    const cpu0 = cpuSeconds(pid);
    const up = await timedAsync(() => uploadRaw(started.url, envelope, file));
    const upCpu = cpuSeconds(pid) - cpu0;
    const rssAfterUpload = vmHwmKiB(pid);

    const down = await timedAsync(() => downloadCounting(`${started.url}/v1/artifacts/sha256:${digestHex}`));
    if (down.value !== total) throw new Error(`downloaded ${String(down.value)} of ${String(total)} bytes`);
    const rss = vmHwmKiB(pid);

    const cpRate = mbps(total, cp.seconds);
    const sumRate = mbps(total, sum.seconds);
    const upRate = mbps(total, up.seconds);
    const multipartRate = mbps(total, multipart.seconds);
    const gib = total / 1024 / MiB;
    const downRate = mbps(total, down.seconds);
    return {
      size: `${(total / 1024 / MiB).toFixed(2)} GiB`,
      "cp MB/s": Math.round(cpRate),
      "cp+fsync MB/s": Math.round(mbps(total, cpSync.seconds)),
      "sha256sum MB/s": Math.round(sumRate),
      "upload MB/s": Math.round(upRate),
      "upload/cp": `${((upRate / cpRate) * 100).toFixed(0)}% (>=70%)`,
      "multipart MB/s": Math.round(multipartRate),
      "multipart/cp": `${((multipartRate / cpRate) * 100).toFixed(0)}%`,
      // Server CPU per GiB received: what the route costs, less sensitive to a busy machine than MB/s.
      "upload server CPU s/GiB": (upCpu / gib).toFixed(2),
      "multipart server CPU s/GiB": (multipartCpu / gib).toFixed(2),
      "download MB/s": Math.round(downRate),
      "download/sha256sum": `${((downRate / sumRate) * 100).toFixed(0)}% (>=100%)`,
      "server VmHWM after upload MB": Math.round(rssAfterUpload / 1024),
      "server VmHWM MB": `${String(Math.round(rss / 1024))} (<200)`,
    };
  } finally {
    if (server && server.exitCode === null) {
      server.kill("SIGTERM");
      await once(server, "exit");
    }
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const flag = process.argv.indexOf("--sizes");
  const sizesArg = flag >= 0 ? process.argv[flag + 1] : process.env.BENCH_SIZES_MIB;
  const sizesMiB = (sizesArg ?? "1024,4096").split(",").map((s) => Number(s.trim()));
  const tmp = os.tmpdir();
  console.log(`bench:gateway on ${os.cpus().length.toString()} CPU(s), node ${process.version}, files in ${tmp}`);
  const rows: Record<string, string | number>[] = [];
  for (const size of sizesMiB) {
    if (!Number.isInteger(size) || size <= 0) throw new Error(`bad BENCH_SIZES_MIB entry ${String(size)}`);
    console.log(`-- ${String(size)} MiB`);
    const row = await runSize(size * MiB, tmp);
    console.log(row);
    rows.push(row);
  }
  console.table(rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
