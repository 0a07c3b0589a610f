/**
 * npm run bench:gateway — upload and download throughput of the gateway over loopback HTTP, against
 * the least work any verifying upload must do, `sha256sum`, and the CLI clients against curl, all
 * on the same file in the same run, and the server's peak RSS. Prints figures, ratios and whether
 * each target is met; it asserts nothing.
 *
 * For each size (1 GiB, 4 GiB by default; `--sizes 64,256` or BENCH_SIZES_MIB, in MiB) it writes a
 * valid safetensors file (one U8 tensor, random bytes so nothing is sparse) to os.tmpdir() and
 * signs it with a key made here. It runs `--rounds` rounds (default 3, or BENCH_ROUNDS) in which
 * the contenders take turns:
 * - `sha256sum` of the file;
 * - the baseline: a server of a few lines (BASELINE_SERVER: node http, sha256 of the body as it
 *   arrives, written to a temp file, one fsync at the end, rename), sent the file by the client
 *   `modelgate push` uses (src/cli/gatewayClient.ts uploadFile);
 * - the gateway (`node bin/modelgate.js serve`, a fresh child and data dir per upload): raw `PUT
 *   /v1/artifacts` (envelope in Modelgate-Signature) by that client, then a download of it (body
 *   counted and discarded) with the server's VmHWM read from /proc, then `modelgate pull` and
 *   `curl -o` of it (both to a file on disk; pull also hashes, fsyncs and renames);
 * - multipart `POST` (signature part first) by that client, to another fresh gateway;
 * - `modelgate push` (the CLI, a child process) and `curl -T` (PUT, the same headers) to fresh
 *   gateways.
 * Each contender deletes what it wrote, and each writing one starts right after an uncounted
 * throwaway `cp` (see warmUp), so all see the same memory state. The CLI and curl run under
 * /usr/bin/time (client CPU seconds) when it exists. It prints every round and the median
 * (min-max) per figure, plus sha256's own speed on one core. Everything is deleted afterwards.
 *
 * Targets (issue 11): PUT >= 1.2x the baseline and >= 1.0x sha256sum; download >= 1.0x sha256sum;
 * server peak RSS < 200 MB; push >= 0.9x curl -T; pull >= 0.85x curl -o.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, promises as fsp, readFileSync } from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { once } from "node:events";
import nacl from "tweetnacl";
import { multipartAround, readBodyCapped, uploadFile, type GatewayAnswer } from "../src/cli/gatewayClient";
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
  let res: GatewayAnswer;
  if (multipart) {
    const { contentType, head, tail } = multipartAround({ signature: envelope }, "model.safetensors");
    res = await uploadFile({ method: "POST", url, headers: { "Content-Type": contentType }, head, file, tail });
  } else {
    const headers = { "Content-Type": "application/octet-stream", "Modelgate-Signature": Buffer.from(envelope).toString("base64") };
    res = await uploadFile({ method: "PUT", url, headers, file });
  }
  const body = (await readBodyCapped(res, 64 * MiB)) ?? "";
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

/**
 * The baseline: the least work a verifying upload must do, in a few lines of plain node. It
 * receives the body, hashes it as it arrives, writes it to a temp file, fsyncs once at the end and
 * renames the file to its digest. No signature, no inspection, no multipart, no framework.
 */
const BASELINE_SERVER = `
const http = require("node:http"), fs = require("node:fs"), crypto = require("node:crypto"), path = require("node:path");
const dir = process.argv[1];
http.createServer((req, res) => {
  const tmp = path.join(dir, "upload-" + process.hrtime.bigint() + ".tmp");
  const hash = crypto.createHash("sha256");
  const out = fs.createWriteStream(tmp, { highWaterMark: 4 * 1024 * 1024 });
  req.on("data", (chunk) => hash.update(chunk));
  req.pipe(out);
  out.on("finish", () => {
    const fd = fs.openSync(tmp, "r+"); fs.fsyncSync(fd); fs.closeSync(fd);
    const hex = hash.digest("hex");
    fs.renameSync(tmp, path.join(dir, hex));
    res.writeHead(201, { "Content-Type": "application/json" }).end(JSON.stringify({ digest: "sha256:" + hex }));
  });
}).listen(0, "127.0.0.1", function () { console.log(JSON.stringify({ port: this.address().port })); });
`;

async function startBaseline(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  await fsp.mkdir(dataDir, { recursive: true });
  const child = spawn(process.execPath, ["-e", BASELINE_SERVER, dataDir], { stdio: ["ignore", "pipe", "inherit"] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => {
      reject(new Error(`baseline server exited with ${String(code)}`));
    });
    child.stdout.once("data", (chunk: Buffer) => {
      const parsed = JSON.parse(chunk.toString("utf8")) as { port: number };
      resolve(`http://127.0.0.1:${String(parsed.port)}`);
    });
  });
  return { child, url };
}

const TIME_BIN = "/usr/bin/time";
const hasTime = existsSync(TIME_BIN);

/**
 * Runs a client (the CLI or curl) to completion: wall seconds from spawn to exit, and its user +
 * system CPU seconds when /usr/bin/time is there. A non-zero exit fails the run.
 */
async function timedClient(command: string, args: string[], timesFile: string): Promise<{ seconds: number; cpuSeconds: number; stdout: string }> {
  const [bin, argv] = hasTime ? [TIME_BIN, ["-f", "%U %S", "-o", timesFile, command, ...args]] : [command, args];
  const t0 = process.hrtime.bigint();
  const child = spawn(bin, argv, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MODELGATE_TOKEN: "" } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
  const [code] = (await once(child, "exit")) as [number | null];
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${String(code)}: ${stderr.slice(0, 500)}`);
  let cpu = NaN;
  if (hasTime) {
    const [user, sys] = (await fsp.readFile(timesFile, "utf8")).trim().split(/\s+/).map(Number);
    cpu = (user ?? NaN) + (sys ?? NaN);
  }
  return { seconds, cpuSeconds: cpu, stdout };
}

const BIN = path.join(__dirname, "..", "..", "bin", "modelgate.js");

interface RoundFigures {
  sha256sum: number;
  baseline: number;
  put: number;
  post: number;
  putCpuPerGiB: number;
  postCpuPerGiB: number;
  download: number;
  vmHwmMB: number;
  push: number;
  curlPut: number;
  pushCpuPerGiB: number;
  curlPutCpuPerGiB: number;
  pull: number;
  curlGet: number;
  pullCpuPerGiB: number;
  curlGetCpuPerGiB: number;
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

/** "x.xx (target >= y) met|NOT met" for a ratio of medians. */
function against(ratio: number, target: number): string {
  return `${ratio.toFixed(2)}x (>= ${target.toFixed(2)}x: ${ratio >= target ? "met" : "NOT met"})`;
}

async function runSize(sizeBytes: number, tmp: string, rounds: number): Promise<Record<string, string | number>> {
  const dir = await fsp.mkdtemp(path.join(tmp, "mg-bench-"));
  const file = path.join(dir, "model.safetensors");
  const copy = path.join(dir, "copy.safetensors");
  const pulled = path.join(dir, "pulled.safetensors");
  const timesFile = path.join(dir, "time.txt");
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
    const sigFile = path.join(dir, "model.safetensors.sig.json");
    await fsp.writeFile(sigFile, envelope);

    // Not counted: on this kind of VM, writing into memory the guest freed more than a few seconds
    // ago runs 3-10x slower than into memory it freed just now (the freed pages went back to the
    // host: 1 GiB of writes measured 374 MB/s, then 4.3 GB/s right after). Each writing contender
    // gets the same warm start: a throwaway copy of the file, deleted just before it runs.
    const warmUp = async (): Promise<void> => {
      execFileSync("cp", ["--reflink=never", file, copy]);
      await fsp.rm(copy, { force: true });
    };

    /** `curl -T`: PUT of the file with the headers push sends (no Expect: push sends none); anything but 201 fails. */
    const curlPut = async (url: string): Promise<{ seconds: number; cpuSeconds: number }> => {
      const r = await timedClient(
        "curl",
        [
          "-sS",
          "-T",
          file,
          "-H",
          "Expect:",
          "-H",
          "Content-Type: application/octet-stream",
          "-H",
          `Modelgate-Signature: ${Buffer.from(envelope).toString("base64")}`,
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `${url}/v1/artifacts`,
        ],
        timesFile,
      );
      if (r.stdout !== "201") throw new Error(`curl -T answered ${r.stdout}`);
      return r;
    };
    const push = (url: string): Promise<{ seconds: number; cpuSeconds: number }> =>
      timedClient(process.execPath, [BIN, "push", file, "--sig", sigFile, "--url", url], timesFile);
    const pull = (url: string): Promise<{ seconds: number; cpuSeconds: number }> =>
      timedClient(process.execPath, [BIN, "pull", `sha256:${digestHex}`, "--out", pulled, "--url", url], timesFile);
    const curlGet = (url: string): Promise<{ seconds: number; cpuSeconds: number }> =>
      timedClient("curl", ["-sS", "-f", "-o", pulled, `${url}/v1/artifacts/sha256:${digestHex}`], timesFile);
    /** A download to disk; the file is checked, then deleted (the next contender starts alike). */
    const downloadToDisk = async (run: () => Promise<{ seconds: number; cpuSeconds: number }>): Promise<{ seconds: number; cpuSeconds: number }> => {
      await warmUp();
      const r = await run();
      const size = (await fsp.stat(pulled)).size;
      await fsp.rm(pulled, { force: true });
      if (size !== total) throw new Error(`downloaded ${String(size)} of ${String(total)} bytes`);
      return r;
    };

    // The contenders take turns within each round, each deleting what it wrote, so they all see
    // the same page-cache state; the figures are medians over the rounds. The two halves of each
    // client pair swap order every round.
    const figures: RoundFigures[] = [];
    for (let round = 1; round <= rounds; round += 1) {
      const sum = timed(() => execFileSync("sha256sum", [file]));

      await warmUp();
      const baselineServer = await startBaseline(path.join(dir, "data-baseline"));
      let baseline: { seconds: number };
      try {
        baseline = await timedAsync(() => upload(baselineServer.url, file, false, envelope));
      } finally {
        baselineServer.child.kill("SIGTERM");
        await once(baselineServer.child, "exit");
        await fsp.rm(path.join(dir, "data-baseline"), { recursive: true, force: true });
      }

      let download = NaN;
      let vmHwmMB = NaN;
      let pullRun = { seconds: NaN, cpuSeconds: NaN };
      let curlGetRun = { seconds: NaN, cpuSeconds: NaN };
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
          if (round % 2 === 1) {
            pullRun = await downloadToDisk(() => pull(url));
            curlGetRun = await downloadToDisk(() => curlGet(url));
          } else {
            curlGetRun = await downloadToDisk(() => curlGet(url));
            pullRun = await downloadToDisk(() => pull(url));
          }
        },
      );
      await warmUp();
      const post = await timedUpload(dir, allowlist, "data-post", (url) => upload(url, file, true, envelope));

      const clientUpload = async (run: (url: string) => Promise<{ seconds: number; cpuSeconds: number }>) => {
        await warmUp();
        let result = { seconds: NaN, cpuSeconds: NaN };
        await timedUpload(dir, allowlist, "data-client", async (url) => {
          result = await run(url);
        });
        return result;
      };
      let pushRun: { seconds: number; cpuSeconds: number };
      let curlPutRun: { seconds: number; cpuSeconds: number };
      if (round % 2 === 1) {
        pushRun = await clientUpload(push);
        curlPutRun = await clientUpload(curlPut);
      } else {
        curlPutRun = await clientUpload(curlPut);
        pushRun = await clientUpload(push);
      }

      const round_: RoundFigures = {
        sha256sum: mbps(total, sum.seconds),
        baseline: mbps(total, baseline.seconds),
        put: mbps(total, put.seconds),
        post: mbps(total, post.seconds),
        putCpuPerGiB: put.cpuSeconds / gib,
        postCpuPerGiB: post.cpuSeconds / gib,
        download,
        vmHwmMB,
        push: mbps(total, pushRun.seconds),
        curlPut: mbps(total, curlPutRun.seconds),
        pushCpuPerGiB: pushRun.cpuSeconds / gib,
        curlPutCpuPerGiB: curlPutRun.cpuSeconds / gib,
        pull: mbps(total, pullRun.seconds),
        curlGet: mbps(total, curlGetRun.seconds),
        pullCpuPerGiB: pullRun.cpuSeconds / gib,
        curlGetCpuPerGiB: curlGetRun.cpuSeconds / gib,
      };
      console.log(`  round ${String(round)}: ${JSON.stringify(Object.fromEntries(Object.entries(round_).map(([k, v]) => [k, Math.round(v * 100) / 100])))}`);
      figures.push(round_);
    }

    const of = (key: keyof RoundFigures): number[] => figures.map((f) => f[key]);
    const med = (key: keyof RoundFigures): number => median(of(key));
    const cpu = (key: keyof RoundFigures): string => med(key).toFixed(2);
    const peakRss = Math.max(...of("vmHwmMB"));
    /** "median (min-max)" of the per-round ratios a/b. */
    const pairedRatios = (a: keyof RoundFigures, b: keyof RoundFigures): string => {
      const ratios = figures.map((f) => f[a] / f[b]);
      return `${median(ratios).toFixed(2)}x (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`;
    };
    return {
      size: `${gib.toFixed(2)} GiB`,
      rounds,
      "sha256sum MB/s": spread(of("sha256sum")),
      "baseline MB/s": spread(of("baseline")),
      "PUT MB/s": spread(of("put")),
      "PUT/baseline": against(med("put") / med("baseline"), 1.2),
      "PUT/sha256sum": against(med("put") / med("sha256sum"), 1.0),
      "POST MB/s": spread(of("post")),
      "POST/baseline": `${(med("post") / med("baseline")).toFixed(2)}x`,
      "POST/sha256sum": `${(med("post") / med("sha256sum")).toFixed(2)}x`,
      // Server CPU per GiB received: what the route costs, less sensitive to a busy machine than MB/s.
      "server CPU s/GiB PUT / POST": `${cpu("putCpuPerGiB")} / ${cpu("postCpuPerGiB")}`,
      "download MB/s": spread(of("download")),
      "download/sha256sum": against(med("download") / med("sha256sum"), 1.0),
      "server VmHWM MB": `${String(Math.round(peakRss))} (< 200: ${peakRss < 200 ? "met" : "NOT met"})`,
      "push MB/s": spread(of("push")),
      "curl -T MB/s": spread(of("curlPut")),
      "push/curl -T": against(med("push") / med("curlPut"), 0.9),
      // The two ran back to back in each round: the ratio within a round is less exposed to the
      // machine's load swinging between rounds than the ratio of medians.
      "push/curl -T per round": pairedRatios("push", "curlPut"),
      "client CPU s/GiB push / curl -T": `${cpu("pushCpuPerGiB")} / ${cpu("curlPutCpuPerGiB")}`,
      "pull MB/s": spread(of("pull")),
      "curl -o MB/s": spread(of("curlGet")),
      "pull/curl -o": against(med("pull") / med("curlGet"), 0.85),
      "pull/curl -o per round": pairedRatios("pull", "curlGet"),
      "client CPU s/GiB pull / curl -o": `${cpu("pullCpuPerGiB")} / ${cpu("curlGetCpuPerGiB")}`,
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
  // On a shared machine the figures mean little without the load they were measured under.
  const loadAverage = (): string =>
    os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(" ");
  console.log(`load average (1, 5, 15 min) at start: ${loadAverage()}`);
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
  // One line per figure, one column per size: the rows are too wide for a terminal the other way round.
  const byFigure: Record<string, Record<string, string | number>> = {};
  for (const row of rows) for (const [figure, value] of Object.entries(row)) (byFigure[figure] ??= {})[String(row.size)] = value;
  console.table(byFigure);
  console.log(`load average (1, 5, 15 min) at end: ${loadAverage()}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
