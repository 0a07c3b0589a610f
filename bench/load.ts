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
 */

const MiB = 1024 * 1024;
const ZEROS = Buffer.alloc(MiB);

interface Artifact {
  name: string;
  header: Buffer;
  totalBytes: number;
  digestHex: string;
}

/** safetensors: u64le header length, JSON header (unique metadata id), `dataBytes` zeros of one U8 tensor. */
function makeArtifact(name: string, dataBytes: number): Artifact {
  let json = JSON.stringify({ __metadata__: { id: randomUUID() }, weight: { dtype: "U8", shape: [dataBytes], data_offsets: [0, dataBytes] } });
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const header = Buffer.concat([len, Buffer.from(json)]);
  const hash = createHash("sha256").update(header);
  for (let left = dataBytes; left > 0; left -= MiB) hash.update(left >= MiB ? ZEROS : ZEROS.subarray(0, left));
  return { name, header, totalBytes: header.length + dataBytes, digestHex: hash.digest("hex") };
}

interface Signer {
  secretKey: Uint8Array;
  keyId: string;
}

/** POST /v1/artifacts as multipart, streaming the zeros; resolves with status and body. */
function upload(port: number, artifact: Artifact, signer: Signer): Promise<{ status: number; body: string; ms: number }> {
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
    req.write(head);
    req.write(artifact.header);
    let left = artifact.totalBytes - artifact.header.length;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, MiB);
        left -= n;
        if (!req.write(n === MiB ? ZEROS : ZEROS.subarray(0, n))) {
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

function startServer(dataDir: string, allowlist: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
  const bin = path.resolve(__dirname, "..", "..", "bin", "modelgate.js");
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
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "modelgate listening" && typeof entry.port === "number") resolve({ child, port: entry.port });
      } catch {
        // not a log line
      }
    });
    child.once("exit", (code) => {
      reject(new Error(`server exited with ${String(code)} before listening: ${stderr}`));
    });
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "30" },
      fetchers: { type: "string", default: "64" },
      publishers: { type: "string", default: "8" },
      "fetch-mb": { type: "string", default: "10" },
      "upload-mb": { type: "string", default: "50" },
      keep: { type: "boolean", default: false },
    },
    strict: true,
  });
  const seconds = Number(values.seconds);
  const fetchers = Number(values.fetchers);
  const publishers = Number(values.publishers);
  const fetchBytes = Number(values["fetch-mb"]) * MiB;
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
    ({ child, port } = await startServer(dataDir, allowlistPath, {
      MODELGATE_LOG_LEVEL: "info",
      MODELGATE_RATE_LIMIT_RPS: "0",
      MODELGATE_MAX_CONCURRENT_UPLOADS: String(Math.max(1, publishers * 2)),
    }));
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
    console.log(`  requests ${f.requests.total.toString()} (${f.requests.average.toFixed(1)}/s), throughput ${(f.throughput.average / MiB).toFixed(1)} MiB/s`);
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
