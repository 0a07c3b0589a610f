import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { cpus, loadavg, tmpdir } from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import nacl from "tweetnacl";
import { verifyAuditLog } from "../src/audit/fileLog";
import { buildPublishStatement, signEnvelope } from "../src/trust/dsse";
import { keyIdOf, publicKeyToPem } from "../src/trust/keys";

/**
 * `npm run bench:load` (issue 6): a real server child process on 127.0.0.1 with a temp data
 * dir and a temp allowlist trusting a key made here. 64 autocannon connections fetch a 10 MB
 * artifact while 8 publishers upload distinct 50 MB safetensors artifacts (header with a unique
 * metadata id + zeros, streamed, signed with signEnvelope) for 30 s. Prints throughput, p50/p99
 * latency and errors; then re-downloads every stored artifact and checks its digest, checks that
 * every accepted upload is listed, and verifies the audit chain.
 *
 * Each run has its own temp dir (data dir, audit log, store tmp/), removed at the end, also when
 * the server fails to start or the run is interrupted (SIGINT/SIGTERM); nothing carries over
 * from one run to the next. Because the figures depend on what else the (shared) machine does,
 * each run also prints the load average, the CPU the server and this process used, the CPU
 * everything else used meanwhile (/proc/stat), and the fetch throughput per 5 s (issue 11).
 *
 *   npm run bench:load -- [--seconds 30] [--fetchers 64] [--publishers 8] [--fetch-mb 10] [--upload-mb 50] [--keep]
 *
 * `--during-inspection` (issue 11) measures instead what one long inspection does to fetches, in
 * one run on one server: fetch latency (p50, p99) for `--seconds` with nothing else running, then
 * while one `--inspect-mb` (1024) pickle-heavy artifact is uploaded and inspected (a sequence of
 * harmless protocol-4 pickles of NONE/POP pairs, each just under maxOpsPerStream: the analyzer
 * reads every opcode, tens of seconds), split into "upload body in flight" and "inspecting"; it
 * prints both p99s and their ratio (target <= 2x). Fetch defaults in this mode: 8 connections,
 * a 1 MiB artifact (latency, not throughput). `--bin <path>` runs another build's server binary.
 */

const MiB = 1024 * 1024;
const ZEROS = Buffer.alloc(MiB);

interface Artifact {
  name: string;
  /** The artifact's bytes, in chunks (generated again for each pass: hashing, uploading). */
  chunks: () => Iterable<Buffer>;
  totalBytes: number;
  digestHex: string;
}

function digestOf(chunks: Iterable<Buffer>): string {
  const hash = createHash("sha256");
  for (const c of chunks) hash.update(c);
  return hash.digest("hex");
}

/** safetensors: u64le header length, JSON header (unique metadata id), `dataBytes` zeros of one U8 tensor. */
function makeArtifact(name: string, dataBytes: number): Artifact {
  let json = JSON.stringify({ __metadata__: { id: randomUUID() }, weight: { dtype: "U8", shape: [dataBytes], data_offsets: [0, dataBytes] } });
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const header = Buffer.concat([len, Buffer.from(json)]);
  const chunks = function* (): Generator<Buffer> {
    yield header;
    for (let left = dataBytes; left > 0; left -= MiB) yield left >= MiB ? ZEROS : ZEROS.subarray(0, left);
  };
  return { name, chunks, totalBytes: header.length + dataBytes, digestHex: digestOf(chunks()) };
}

/**
 * A pickle-heavy artifact of about `totalBytes`: a sequence of protocol-4 pickles (PROTO 4, a
 * protocol 0 INT and POP, then NONE POP pairs, then NONE STOP), each with just under
 * maxOpsPerStream (50,000,000) opcodes. The text INT hands each stream from the value-light
 * scanner to the full symbolic machine (as bench/pickleMemory.ts's "(machine)" inputs do), which
 * reads every opcode: tens of seconds for 1 GiB, and the file is accepted. Harmless: no import,
 * no call; unpickled it is None. The first stream starts with a unique BINUNICODE (digest differs).
 */
function makePickleArtifact(name: string, totalBytes: number): Artifact {
  const pairs = 24_000_000;
  const prefix = Buffer.from([0x80, 4, ...Buffer.from("I1\n0")]); // PROTO 4, INT 1 (text), POP
  const stream = Buffer.alloc(prefix.length + 2 * pairs + 2);
  prefix.copy(stream, 0);
  stream.fill(Buffer.from("N0"), prefix.length, prefix.length + 2 * pairs); // NONE, POP
  stream[prefix.length + 2 * pairs] = 0x4e; // NONE
  stream[prefix.length + 2 * pairs + 1] = 0x2e; // STOP
  const id = Buffer.from(randomUUID());
  const unique = Buffer.alloc(2 + 5 + id.length + 1);
  unique.set([0x80, 4, 0x58], 0); // PROTO 4, BINUNICODE
  unique.writeUInt32LE(id.length, 3);
  id.copy(unique, 7);
  unique[7 + id.length] = 0x30; // POP; the NONE POP pairs of the first stream follow
  const first = Buffer.concat([unique, stream.subarray(2)]);
  const streams = Math.max(1, Math.ceil(totalBytes / stream.length));
  const chunks = function* (): Generator<Buffer> {
    yield first;
    for (let i = 1; i < streams; i++) yield stream;
  };
  return { name, chunks, totalBytes: first.length + (streams - 1) * stream.length, digestHex: digestOf(chunks()) };
}

interface Signer {
  secretKey: Uint8Array;
  keyId: string;
}

/** POST /v1/artifacts as multipart, streaming the zeros; resolves with status and body. */
function upload(port: number, artifact: Artifact, signer: Signer, onBodySent?: () => void): Promise<{ status: number; body: string; ms: number }> {
  const envelope = JSON.stringify(signEnvelope(buildPublishStatement({ name: artifact.name, digestHex: artifact.digestHex }), signer.secretKey, signer.keyId));
  const boundary = `----modelgate-bench-${randomUUID()}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="signature"; filename="envelope.json"\r\nContent-Type: application/json\r\n\r\n${envelope}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${artifact.name}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="model.safetensors"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/v1/artifacts",
      headers: { "Content-Type": `multipart/form-data; boundary=${boundary}`, "Content-Length": head.length + artifact.totalBytes + tail.length },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), ms: performance.now() - started });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.on("finish", () => {
      onBodySent?.();
    });
    req.write(head);
    const body = artifact.chunks()[Symbol.iterator]();
    const pump = (): void => {
      for (let next = body.next(); next.done !== true; next = body.next()) {
        if (!req.write(next.value)) {
          req.once("drain", pump);
          return;
        }
      }
      req.end(tail);
    };
    pump();
  });
}

/** GET a blob and hash it while it streams. */
function fetchDigest(port: number, digestHex: string): Promise<{ status: number; digestHex: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: `/v1/artifacts/sha256:${digestHex}` }, (res) => {
        const hash = createHash("sha256");
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
        });
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, digestHex: hash.digest("hex"), bytes });
        });
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

function getJson(port: number, p: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: p }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString()));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      })
      .on("error", reject);
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** User + system CPU seconds a process has used so far (/proc/<pid>/stat, ticks of 1/100 s); undefined off Linux. */
function cpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Bytes a process passed to write(2) and friends so far (/proc/<pid>/io wchar: socket and file writes); undefined off Linux. */
function bytesWrittenBy(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^wchar: (\d+)$/m.exec(readFileSync(`/proc/${String(pid)}/io`, "utf8"));
    return m?.[1] !== undefined ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds of this process (user + system). */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Whole-machine CPU seconds, all cores: process time (user, nice, system), interrupts (irq, softirq), steal; from /proc/stat. */
interface MachineCpu {
  process: number;
  interrupts: number;
  steal: number;
}

function machineCpu(): MachineCpu | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    if (user === undefined || nice === undefined || system === undefined || irq === undefined || softirq === undefined || steal === undefined) return undefined;
    return { process: (user + nice + system) / 100, interrupts: (irq + softirq) / 100, steal: steal / 100 };
  } catch {
    return undefined;
  }
}

/** Bytes under a path (no symlinks followed); 0 when it vanished meanwhile. */
function bytesUnder(p: string): number {
  try {
    const st = lstatSync(p);
    if (!st.isDirectory()) return st.size;
    return readdirSync(p).reduce((sum, name) => sum + bytesUnder(path.join(p, name)), 0);
  } catch {
    return 0;
  }
}

/**
 * Temp dirs of other bench:load runs (interrupted before this version cleaned up, or running
 * now: the machine is shared, so they are reported, never removed).
 */
function otherRunDirs(own: string): { count: number; bytes: number } {
  const dirs = readdirSync(tmpdir())
    .filter((n) => n.startsWith("modelgate-load-"))
    .map((n) => path.join(tmpdir(), n))
    .filter((p) => p !== own);
  return { count: dirs.length, bytes: dirs.reduce((sum, p) => sum + bytesUnder(p), 0) };
}

function fmt(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? "n/a" : n.toFixed(digits);
}

/** Kill the server (if still running) and wait for it to exit. */
function stopServer(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      resolve();
    });
  });
  child.kill(signal);
  return exited;
}

/** `inspectMs` of every "upload accepted" line the server logged. */
const serverInspectMs: number[] = [];

function startServer(dataDir: string, allowlist: string, env: NodeJS.ProcessEnv, binPath?: string): Promise<{ child: ChildProcess; port: number }> {
  const bin = binPath ?? path.resolve(__dirname, "..", "..", "bin", "modelgate.js");
  const child = spawn(process.execPath, [bin, "serve", "--host", "127.0.0.1", "--port", "0", "--data", dataDir, "--allowlist", allowlist], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    lines.on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number; inspectMs?: unknown; timings?: { inspectMs?: unknown } };
        if (entry.msg === "modelgate listening" && typeof entry.port === "number") resolve({ child, port: entry.port });
        const inspectMs = entry.timings?.inspectMs ?? entry.inspectMs;
        if (entry.msg === "upload accepted" && typeof inspectMs === "number") serverInspectMs.push(inspectMs);
      } catch {
        // not a log line
      }
    });
    child.once("exit", (code) => {
      reject(new Error(`server exited with ${String(code)} before listening: ${stderr}`));
    });
  });
}

interface LatencySample {
  /** When the response completed (performance.now()). */
  at: number;
  ms: number;
}

/**
 * Fetch `artifact` over `connections` autocannon connections until `until` resolves (or for
 * `seconds`); every completed response's latency with its completion time.
 */
function fetchLatencies(
  port: number,
  digestHex: string,
  connections: number,
  until: { seconds: number } | { done: Promise<unknown> },
): Promise<{ samples: LatencySample[]; errors: number }> {
  const samples: LatencySample[] = [];
  let errors = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `http://127.0.0.1:${port.toString()}/v1/artifacts/sha256:${digestHex}`,
        connections,
        duration: "seconds" in until ? until.seconds : 24 * 3600,
        timeout: 120,
      },
      (err: unknown) => {
        if (err !== null && err !== undefined) reject(err instanceof Error ? err : new Error("autocannon failed"));
        else resolve({ samples, errors });
      },
    );
    instance.on("response", (_client, statusCode, _bytes, responseTime) => {
      if (statusCode === 200) samples.push({ at: performance.now(), ms: responseTime });
      else errors += 1;
    });
    instance.on("reqError", () => {
      errors += 1;
    });
    if ("done" in until) {
      void until.done.finally(() => {
        instance.stop();
      });
    }
  });
}

function latencyLine(label: string, samples: LatencySample[]): { p50: number; p99: number } {
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  console.log(
    `  ${label.padEnd(28)} ${sorted.length.toString().padStart(6)} fetches  p50 ${fmt(p50, 0).padStart(6)} ms  p99 ${fmt(p99, 0).padStart(6)} ms  max ${fmt(sorted[sorted.length - 1], 0)} ms`,
  );
  return { p50, p99 };
}

/**
 * `--during-inspection`: fetch latency with nothing else running, then while one large
 * pickle-heavy artifact is uploaded and inspected (same server, same connections). True if a
 * target or a check failed.
 */
async function fetchesDuringInspection(
  port: number,
  seed: Artifact,
  signer: Signer,
  opts: { seconds: number; fetchers: number; inspectBytes: number; pid: number | undefined },
): Promise<boolean> {
  const heavy = makePickleArtifact("bench/pickle-heavy.pkl", opts.inspectBytes);
  console.log(
    `fetch: ${opts.fetchers.toString()} connections, ${fmt(seed.totalBytes / MiB, 0)} MiB artifact; ` +
      `inspected artifact: ${fmt(heavy.totalBytes / MiB, 0)} MiB of protocol-4 pickles (NONE/POP), ${Math.ceil(heavy.totalBytes / 48_000_008).toString()} streams`,
  );
  const idle = await fetchLatencies(port, seed.digestHex, opts.fetchers, { seconds: opts.seconds });
  const cpu0 = cpuSecondsOf(opts.pid);
  const started = performance.now();
  let bodySentAt = Number.NaN;
  const uploading = upload(port, heavy, signer, () => {
    bodySentAt = performance.now();
  });
  const busy = await fetchLatencies(port, seed.digestHex, opts.fetchers, { done: uploading.catch(() => undefined) });
  const answer = await uploading;
  const answeredAt = performance.now();
  const cpu1 = cpuSecondsOf(opts.pid);
  console.log(
    `upload of the pickle-heavy artifact: ${answer.status.toString()} after ${fmt((answeredAt - started) / 1000)} s ` +
      `(body sent in ${fmt((bodySentAt - started) / 1000)} s, answered ${fmt((answeredAt - bodySentAt) / 1000)} s later; ` +
      `server inspectMs ${serverInspectMs.length > 0 ? String(serverInspectMs[serverInspectMs.length - 1]) : "n/a"}; server CPU ${fmt(cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined)} s)`,
  );
  console.log("fetch latency:");
  const base = latencyLine("no inspection", idle.samples);
  latencyLine(
    "upload body in flight",
    busy.samples.filter((s) => s.at <= bodySentAt),
  );
  const during = latencyLine(
    "inspecting",
    busy.samples.filter((s) => s.at > bodySentAt),
  );
  const ratio = during.p99 / base.p99;
  const errors = idle.errors + busy.errors;
  console.log(`  errors ${errors.toString()}; p99 inspecting / p99 no inspection = ${fmt(ratio, 2)}x (load average ${fmt(loadavg()[0], 2)} at the end)`);
  const met = ratio <= 2;
  console.log(
    `targets: p99 while inspecting <= 2x p99 without ${met ? "met" : "MISSED"}; upload accepted ${answer.status === 201 ? "met" : "MISSED"}; zero errors ${errors === 0 ? "met" : "MISSED"}`,
  );
  return !met || answer.status !== 201 || errors > 0;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string" },
      fetchers: { type: "string" },
      publishers: { type: "string", default: "8" },
      "fetch-mb": { type: "string" },
      "upload-mb": { type: "string", default: "50" },
      keep: { type: "boolean", default: false },
      "during-inspection": { type: "boolean", default: false },
      "inspect-mb": { type: "string", default: "1024" },
      bin: { type: "string" },
    },
    strict: true,
  });
  const duringInspection = values["during-inspection"];
  const seconds = Number(values.seconds ?? (duringInspection ? "15" : "30"));
  const fetchers = Number(values.fetchers ?? (duringInspection ? "8" : "64"));
  const publishers = Number(values.publishers);
  const fetchBytes = Number(values["fetch-mb"] ?? (duringInspection ? "1" : "10")) * MiB;
  const uploadBytes = Number(values["upload-mb"]) * MiB;

  const dir = mkdtempSync(path.join(tmpdir(), "modelgate-load-"));
  const dataDir = path.join(dir, "data");
  const allowlistPath = path.join(dir, "allowlist.json");
  let child: ChildProcess | undefined;
  const removeDir = (): void => {
    if (values.keep) return;
    rmSync(dir, { recursive: true, force: true });
  };
  // An interrupted run used to leave its data dir (hundreds of MB of blobs) and, when only this
  // process was signalled, a running server behind: stop the server and remove the dir first.
  const onSignal = (signal: NodeJS.Signals): void => {
    console.error(`\n${signal}: stopping the server${values.keep ? "" : ` and removing ${dir}`}`);
    void stopServer(child, "SIGKILL").finally(() => {
      removeDir();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const others = otherRunDirs(dir);
  const [load1, load5] = loadavg();
  console.log(
    `machine: ${cpus().length.toString()} CPU(s), load average ${fmt(load1, 2)} (1 min) ${fmt(load5, 2)} (5 min) at start` +
      (others.count > 0 ? `; ${others.count.toString()} other modelgate-load-* dir(s) in ${tmpdir()} (${fmt(others.bytes / MiB, 0)} MiB), left alone` : ""),
  );
  const keys = nacl.sign.keyPair();
  const signer: Signer = { secretKey: keys.secretKey, keyId: keyIdOf(keys.publicKey) };
  writeFileSync(
    allowlistPath,
    JSON.stringify({ version: 1, sources: [{ id: "bench", description: "bench:load key", keys: [{ publicKey: publicKeyToPem(keys.publicKey) }] }] }, null, 2),
  );
  let port: number;
  try {
    ({ child, port } = await startServer(
      dataDir,
      allowlistPath,
      {
        MODELGATE_LOG_LEVEL: "info",
        MODELGATE_RATE_LIMIT_RPS: "0",
        MODELGATE_MAX_CONCURRENT_UPLOADS: String(Math.max(1, publishers * 2)),
      },
      values.bin !== undefined ? path.resolve(values.bin) : undefined,
    ));
  } catch (err) {
    removeDir();
    throw err;
  }
  const server = child;
  let failed = false;
  try {
    console.log(`server on 127.0.0.1:${port.toString()} (pid ${String(server.pid)}, data ${dataDir})`);
    const seed = makeArtifact("bench/fetch-target.safetensors", fetchBytes);
    const seeded = await upload(port, seed, signer);
    if (seeded.status !== 201) throw new Error(`seeding the fetch artifact failed: ${seeded.status.toString()} ${seeded.body}`);
    if (duringInspection) {
      failed = await fetchesDuringInspection(port, seed, signer, { seconds, fetchers, inspectBytes: Number(values["inspect-mb"]) * MiB, pid: server.pid });
    } else {
      // Publishers: each uploads distinct artifacts back to back until the deadline.
      const accepted = new Set<string>([seed.digestHex]);
      const uploadMs: number[] = [];
      const uploadErrors: string[] = [];
      let uploadedBytes = 0;
      const cpuBefore = {
        server: cpuSecondsOf(server.pid),
        serverWrote: bytesWrittenBy(server.pid),
        bench: ownCpuSeconds(),
        machine: machineCpu(),
        wall: performance.now(),
      };
      const deadline = performance.now() + seconds * 1000;
      const publisher = async (p: number): Promise<void> => {
        for (let i = 0; performance.now() < deadline; i++) {
          const artifact = makeArtifact(`bench/p${p.toString()}/model-${i.toString()}.safetensors`, uploadBytes);
          try {
            const res = await upload(port, artifact, signer);
            if (res.status === 201) {
              accepted.add(artifact.digestHex);
              uploadMs.push(res.ms);
              uploadedBytes += artifact.totalBytes;
            } else uploadErrors.push(`${res.status.toString()} ${res.body.slice(0, 200)}`);
          } catch (err) {
            uploadErrors.push(err instanceof Error ? err.message : String(err));
          }
        }
      };
      // Fetched bytes per 5 s, counted when a response completes (as autocannon's own throughput).
      const fetchStart = performance.now();
      const fetchErrorKinds = new Map<string, number>();
      const perFive: number[] = Array.from({ length: Math.max(1, Math.ceil(seconds / 5)) }, () => 0);
      const fetchRun = new Promise<autocannon.Result>((resolve, reject) => {
        const instance = autocannon(
          {
            url: `http://127.0.0.1:${port.toString()}/v1/artifacts/sha256:${seed.digestHex}`,
            connections: fetchers,
            duration: seconds,
            timeout: 60,
          },
          (err: unknown, result: autocannon.Result) => {
            if (err !== null && err !== undefined) reject(err instanceof Error ? err : new Error("autocannon failed"));
            else resolve(result);
          },
        );
        instance.on("reqError", (err: unknown) => {
          const kind = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : "unknown";
          fetchErrorKinds.set(kind, (fetchErrorKinds.get(kind) ?? 0) + 1);
        });
        instance.on("response", (_client, statusCode, resBytes) => {
          const bucket = Math.min(perFive.length - 1, Math.floor((performance.now() - fetchStart) / 5000));
          if (statusCode === 200) perFive[bucket] = (perFive[bucket] ?? 0) + resBytes;
        });
      });
      const [fetchResult] = await Promise.all([fetchRun, Promise.all(Array.from({ length: publishers }, (_, p) => publisher(p)))]);
      const cpuAfter = {
        server: cpuSecondsOf(server.pid),
        serverWrote: bytesWrittenBy(server.pid),
        bench: ownCpuSeconds(),
        machine: machineCpu(),
        wall: performance.now(),
      };

      uploadMs.sort((a, b) => a - b);
      const f = fetchResult;
      const fetchErrors = f.errors + f.timeouts + f.non2xx;
      console.log(`\nfetch: ${fetchers.toString()} connections x ${seconds.toString()} s, ${(fetchBytes / MiB).toString()} MiB artifact`);
      console.log(
        `  requests ${f.requests.total.toString()} (${f.requests.average.toFixed(1)}/s), throughput ${(f.throughput.average / MiB).toFixed(1)} MiB/s`,
      );
      console.log(
        `  latency p50 ${f.latency.p50.toString()} ms, p99 ${f.latency.p99.toString()} ms (p99/p50 ${(f.latency.p99 / Math.max(1, f.latency.p50)).toFixed(2)})`,
      );
      const kinds = [...fetchErrorKinds].map(([k, n]) => `${k} x${n.toString()}`).join(", ");
      console.log(`  errors ${f.errors.toString()}${kinds !== "" ? ` (${kinds})` : ""}, timeouts ${f.timeouts.toString()}, non-2xx ${f.non2xx.toString()}`);
      console.log(`upload: ${publishers.toString()} publishers x ${seconds.toString()} s, ${(uploadBytes / MiB).toString()} MiB distinct artifacts`);
      console.log(`  accepted ${uploadMs.length.toString()}, ${(uploadedBytes / MiB / seconds).toFixed(1)} MiB/s`);
      console.log(`  latency p50 ${percentile(uploadMs, 50).toFixed(0)} ms, p99 ${percentile(uploadMs, 99).toFixed(0)} ms`);
      console.log(`  errors ${uploadErrors.length.toString()}${uploadErrors.length > 0 ? `: ${uploadErrors.slice(0, 3).join(" | ")}` : ""}`);
      // The first bucket is low by construction: the first 64 responses all complete after several seconds.
      console.log(`  fetch MiB/s per 5 s (responses completed): ${perFive.map((b) => fmt(b / 5 / MiB, 0)).join(" ")}`);
      // What the figures were measured against: a shared 2-core VM gives the server what others leave.
      const wallS = (cpuAfter.wall - cpuBefore.wall) / 1000;
      const serverCpu = cpuAfter.server !== undefined && cpuBefore.server !== undefined ? cpuAfter.server - cpuBefore.server : undefined;
      const benchCpu = cpuAfter.bench - cpuBefore.bench;
      const m0 = cpuBefore.machine;
      const m1 = cpuAfter.machine;
      const othersCpu = m0 !== undefined && m1 !== undefined && serverCpu !== undefined ? m1.process - m0.process - serverCpu - benchCpu : undefined;
      // Work done, whether or not a response completed in the window: bytes the server wrote (responses
      // to sockets, uploads to files). CPU per GiB of it stays put when only the machine's load changes.
      const serverWroteGiB =
        cpuAfter.serverWrote !== undefined && cpuBefore.serverWrote !== undefined ? (cpuAfter.serverWrote - cpuBefore.serverWrote) / (1024 * MiB) : undefined;
      console.log(
        `cpu over ${fmt(wallS)} s: server ${fmt(serverCpu)} s for ${fmt(serverWroteGiB, 2)} GiB written to sockets and files ` +
          `(${fmt(serverCpu !== undefined && serverWroteGiB !== undefined ? serverCpu / serverWroteGiB : undefined, 2)} s/GiB), ` +
          `bench client ${fmt(benchCpu)} s, other processes ${fmt(othersCpu)} s (${fmt(othersCpu !== undefined ? othersCpu / wallS : undefined, 2)} cores), ` +
          `irq+softirq ${fmt(m0 !== undefined && m1 !== undefined ? m1.interrupts - m0.interrupts : undefined)} s, steal ${fmt(m0 !== undefined && m1 !== undefined ? m1.steal - m0.steal : undefined)} s; ` +
          `load average ${fmt(loadavg()[0], 2)} at the end`,
      );

      // Every accepted artifact is listed and re-hashes to its digest.
      const listed = new Set<string>();
      let cursor: string | undefined;
      for (;;) {
        const query = `/v1/artifacts?limit=1000${cursor !== undefined ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
        const page = (await getJson(port, query)) as { items?: { digest: string }[]; nextCursor?: string };
        const items = page.items ?? [];
        for (const a of items) listed.add(a.digest.replace(/^sha256:/, ""));
        if (page.nextCursor === undefined || items.length === 0) break;
        cursor = page.nextCursor;
      }
      let corrupted = 0;
      let lost = 0;
      for (const digestHex of accepted) {
        if (!listed.has(digestHex)) lost += 1;
        const got = await fetchDigest(port, digestHex);
        if (got.status !== 200 || got.digestHex !== digestHex) corrupted += 1;
      }
      console.log(
        `verify: ${accepted.size.toString()} accepted artifacts re-hashed: ${corrupted.toString()} corrupted/unreadable, ${lost.toString()} missing from the listing`,
      );

      const p99ok = f.latency.p99 <= 5 * Math.max(1, f.latency.p50);
      failed = fetchErrors > 0 || uploadErrors.length > 0 || corrupted > 0 || lost > 0;
      console.log(`targets: zero errors ${failed ? "MISSED" : "met"}; p99 <= 5x p50 ${p99ok ? "met" : "MISSED"}`);
    }
  } finally {
    try {
      await stopServer(server, "SIGTERM");
      const audit = await verifyAuditLog(path.join(dataDir, "audit.log"));
      console.log(audit.ok ? `audit: chain verifies, ${audit.count.toString()} entries` : `audit: BROKEN at line ${audit.line.toString()} (${audit.reason})`);
      if (!audit.ok) failed = true;
    } finally {
      if (values.keep) console.log(`kept ${dir}`);
      removeDir();
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
    }
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 2;
  },
);
