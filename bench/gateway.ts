/**
 * npm run bench:gateway — upload and download throughput of the gateway over loopback HTTP,
 * against `cp` and `sha256sum` on the same file in the same run, and the server's peak RSS.
 *
 * For each size (1 GiB, 4 GiB by default; `--sizes 64,256` or BENCH_SIZES_MIB, in MiB) it writes a
 * valid safetensors file (one U8 tensor, random bytes so nothing is sparse) to os.tmpdir() and
 * signs it with a key made here. It runs `--rounds` rounds (default 3, or BENCH_ROUNDS) in which
 * the contenders take turns: `sha256sum`, `cp`, `cp` + sync, then an upload through raw `PUT /v1/artifacts` (envelope in Modelgate-Signature, what
 * `modelgate push` sends) to a fresh `node bin/modelgate.js serve` child and data dir, a download of
 * it (body counted and discarded) with the server's VmHWM read from /proc, and an upload through
 * multipart `POST` (signature part first) to another fresh server, both sent by the client
 * `modelgate push` uses (src/cli/gatewayClient.ts uploadFile). Each contender deletes what it
 * wrote, and each writing one starts right after an uncounted throwaway `cp` (see warmUp), so all
 * see the same memory state. It prints every round and the
 * median (min-max) per figure, plus sha256's own speed on one core: the ceiling of any upload that
 * hashes every byte it receives. Everything is deleted afterwards.
 * Targets (issue 3): upload >= 70% of cp, download >= 100% of sha256sum, peak RSS < 200 MB.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, promises as fsp, readFileSync } from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { once } from "node:events";
import nacl from "tweetnacl";
import { multipartAround, uploadFile } from "../src/cli/gatewayClient";
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
  const child = spawn(
    process.execPath,
    [path.join(__dirname, "..", "..", "bin", "modelgate.js"), "serve", "--port", "0", "--data", path.join(dir, dataName), "--allowlist", allowlist],
    {
      env: { ...process.env, MODELGATE_LOG_LEVEL: "info", MODELGATE_MAX_UPLOAD_BYTES: String(20 * 1024 * MiB), MODELGATE_RATE_LIMIT_RPS: "1000" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
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

/** An upload through the client `modelgate push` uses (src/cli/gatewayClient.ts); anything but 201 fails the run. */
async function upload(baseUrl: string, file: string, multipart: boolean, envelope: string): Promise<void> {
  const url = new URL(`${baseUrl}/v1/artifacts`);
  let res: Response;
  if (multipart) {
    const { contentType, head, tail } = multipartAround({ signature: envelope }, "model.safetensors");
    res = await uploadFile({ method: "POST", url, headers: { "Content-Type": contentType }, head, file, tail });
  } else {
    const headers = { "Content-Type": "application/octet-stream", "Modelgate-Signature": Buffer.from(envelope).toString("base64") };
    res = await uploadFile({ method: "PUT", url, headers, file });
  }
  const body = await res.text();
  if (res.status !== 201) throw new Error(`${multipart ? "multipart" : "raw"} upload answered ${String(res.status)}: ${body.slice(0, 500)}`);
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

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** "median (min-max)" of MB/s figures. */
function spread(values: number[]): string {
  return `${String(Math.round(median(values)))} (${String(Math.round(Math.min(...values)))}-${String(Math.round(Math.max(...values)))})`;
}

/**
 * sha256 of one stream on one core, in memory (node's OpenSSL, the same code the gateway hashes
 * with): no upload that hashes every byte it receives can be faster than this.
 */
function sha256CeilingMBps(): number {
  const block = randomBytes(64 * MiB);
  const hash = createHash("sha256");
  hash.update(block); // warm-up
  const { seconds } = timed(() => {
    for (let i = 0; i < 16; i += 1) hash.update(block);
  });
  hash.digest();
  return mbps(16 * block.length, seconds);
}

interface RoundFigures {
  cp: number;
  cpSync: number;
  sha256sum: number;
  put: number;
  post: number;
  putCpuPerGiB: number;
  postCpuPerGiB: number;
  download: number;
  vmHwmMB: number;
}

/** One upload through a fresh server and data dir, timed from the first byte sent to the 201. */
async function timedUpload(
  dir: string,
  allowlist: string,
  dataName: string,
  upload: (url: string) => Promise<void>,
  afterUpload?: (url: string, pid: number) => Promise<void>,
): Promise<{ seconds: number; cpuSeconds: number }> {
  const started = await startServer(dir, allowlist, dataName);
  const pid = started.child.pid ?? 0;
  try {
    const cpu0 = cpuSeconds(pid);
    const { seconds } = await timedAsync(() => upload(started.url));
    const cpu = cpuSeconds(pid) - cpu0;
    if (afterUpload) await afterUpload(started.url, pid);
    return { seconds, cpuSeconds: cpu };
  } finally {
    started.child.kill("SIGTERM");
    await once(started.child, "exit");
    // Drop the stored blob now, as cp's copy is dropped: every contender starts from the same page-cache state.
    await fsp.rm(path.join(dir, dataName), { recursive: true, force: true });
  }
}

async function runSize(sizeBytes: number, tmp: string, rounds: number): Promise<Record<string, string | number>> {
  const dir = await fsp.mkdtemp(path.join(tmp, "mg-bench-"));
  const file = path.join(dir, "model.safetensors");
  const copy = path.join(dir, "copy.safetensors");
  try {
    const total = await writeSafetensors(file, sizeBytes);
    // Flush the fresh file's dirty pages first, so the baselines do not compete with its writeback.
    execFileSync("sync");
    const gib = total / 1024 / MiB;
    const digestHex = execFileSync("sha256sum", [file], { encoding: "utf8" }).split(/\s+/)[0] ?? "";

    const keys = nacl.sign.keyPair();
    const keyId = keyIdOf(keys.publicKey);
    const allowlist = path.join(dir, "allowlist.json");
    await fsp.writeFile(
      allowlist,
      JSON.stringify({
        version: 1,
        sources: [{ id: "bench", description: "bench key", keys: [{ publicKey: Buffer.from(keys.publicKey).toString("base64") }] }],
      }),
    );
    const envelope = JSON.stringify(signEnvelope(buildPublishStatement({ name: "bench/model.safetensors", digestHex }), keys.secretKey, keyId));

    // Not counted: on this kind of VM, writing into memory the guest freed more than a few seconds
    // ago runs 3-10x slower than into memory it freed just now (the freed pages went back to the
    // host: 1 GiB of writes measured 374 MB/s, then 4.3 GB/s right after). Each writing contender
    // gets the same warm start: a throwaway copy of the file, deleted just before it runs.
    const warmUp = async (): Promise<void> => {
      execFileSync("cp", ["--reflink=never", file, copy]);
      await fsp.rm(copy, { force: true });
    };

    // The contenders take turns within each round, each deleting what it wrote, so they all see
    // the same page-cache state; the figures are medians over the rounds.
    const figures: RoundFigures[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      const sum = timed(() => execFileSync("sha256sum", [file]));
      await warmUp();
      const cp = timed(() => execFileSync("cp", ["--reflink=never", file, copy]));
      await fsp.rm(copy, { force: true });
      // The gateway fsyncs before it answers 201; cp does not. Same copy made durable, for context.
      await warmUp();
      const cpSync = timed(() => execFileSync("sh", ["-c", 'cp --reflink=never "$1" "$2" && sync "$2"', "sh", file, copy]));
      await fsp.rm(copy, { force: true });

      let download = NaN;
      let vmHwmMB = NaN;
      await warmUp();
      const put = await timedUpload(
        dir,
        allowlist,
        "data-put",
        (url) => upload(url, file, false, envelope),
        async (url, pid) => {
          const down = await timedAsync(() => downloadCounting(`${url}/v1/artifacts/sha256:${digestHex}`));
          if (down.value !== total) throw new Error(`downloaded ${String(down.value)} of ${String(total)} bytes`);
          download = mbps(total, down.seconds);
          vmHwmMB = vmHwmKiB(pid) / 1024;
        },
      );
      await warmUp();
      const post = await timedUpload(dir, allowlist, "data-post", (url) => upload(url, file, true, envelope));
      const round_: RoundFigures = {
        cp: mbps(total, cp.seconds),
        cpSync: mbps(total, cpSync.seconds),
        sha256sum: mbps(total, sum.seconds),
        put: mbps(total, put.seconds),
        post: mbps(total, post.seconds),
        putCpuPerGiB: put.cpuSeconds / gib,
        postCpuPerGiB: post.cpuSeconds / gib,
        download,
        vmHwmMB,
      };
      console.log(`  round ${String(round)}: ${JSON.stringify(Object.fromEntries(Object.entries(round_).map(([k, v]) => [k, Math.round(v * 100) / 100])))}`);
      figures.push(round_);
    }

    const of = (key: keyof RoundFigures): number[] => figures.map((f) => f[key]);
    const cpMedian = median(of("cp"));
    const sumMedian = median(of("sha256sum"));
    const putMedian = median(of("put"));
    const postMedian = median(of("post"));
    const downMedian = median(of("download"));
    return {
      size: `${gib.toFixed(2)} GiB`,
      rounds,
      "cp MB/s": spread(of("cp")),
      "cp+fsync MB/s": spread(of("cpSync")),
      "sha256sum MB/s": spread(of("sha256sum")),
      "upload MB/s": spread(of("put")),
      "upload/cp": `${((putMedian / cpMedian) * 100).toFixed(0)}% (>=70%)`,
      "multipart MB/s": spread(of("post")),
      "multipart/cp": `${((postMedian / cpMedian) * 100).toFixed(0)}%`,
      // Server CPU per GiB received: what the route costs, less sensitive to a busy machine than MB/s.
      "upload server CPU s/GiB": median(of("putCpuPerGiB")).toFixed(2),
      "multipart server CPU s/GiB": median(of("postCpuPerGiB")).toFixed(2),
      "download MB/s": spread(of("download")),
      "download/sha256sum": `${((downMedian / sumMedian) * 100).toFixed(0)}% (>=100%)`,
      "server VmHWM MB": `${String(Math.round(Math.max(...of("vmHwmMB"))))} (<200)`,
    };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

function argument(name: string): string | undefined {
  const flag = process.argv.indexOf(name);
  return flag >= 0 ? process.argv[flag + 1] : undefined;
}

async function main(): Promise<void> {
  const sizesMiB = (argument("--sizes") ?? process.env.BENCH_SIZES_MIB ?? "1024,4096").split(",").map((s) => Number(s.trim()));
  const rounds = Number(argument("--rounds") ?? process.env.BENCH_ROUNDS ?? "3");
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`bad --rounds ${String(rounds)}`);
  const tmp = os.tmpdir();
  console.log(`bench:gateway on ${os.cpus().length.toString()} CPU(s), node ${process.version}, files in ${tmp}, ${String(rounds)} round(s) per size`);
  const ceiling = sha256CeilingMBps();
  console.log(`sha256 of one stream on one core, in memory (the upload's ceiling): ${String(Math.round(ceiling))} MB/s`);
  const rows: Record<string, string | number>[] = [];
  for (const size of sizesMiB) {
    if (!Number.isInteger(size) || size <= 0) throw new Error(`bad size entry ${String(size)}`);
    console.log(`-- ${String(size)} MiB`);
    const row = await runSize(size * MiB, tmp, rounds);
    console.log(row);
    rows.push(row);
  }
  console.log("median (min-max) over the rounds; ratios are of the medians");
  console.table(rows);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
