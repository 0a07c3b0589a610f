import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { fixtureRoot, isCrash, seedsFor, TARGETS, type Execute, type FuzzTarget } from "./fuzzTargets";

/**
 * `npm run fuzz`: a coverage-guided mutation fuzzer (jazzer.js cannot be installed here: it
 * downloads prebuilt binaries). Coverage comes from V8 itself: node:inspector's
 * Profiler.startPreciseCoverage with block granularity and call counts, which resets after each
 * take, so the blocks with a count > 0 after one execution are exactly the blocks it reached.
 * An input that reaches a block never seen before joins the corpus. Each target runs in a
 * worker thread; the main thread is a watchdog that terminates a worker stuck in one input
 * (a hang, even in a synchronous loop) and saves that input. Crashes (any thrown value that is
 * not a GatewayError, or an execution over --budget-ms) are saved to
 * test/fixtures/fuzz-regressions/<target>-<sha256 prefix>.bin, which the CI property test replays.
 *
 *   npm run fuzz -- --seconds 120 --seed 42 --target pickle,zip
 */

interface WorkerInput {
  target: string;
  seconds: number;
  seed: number;
  maxLen: number;
  budgetMs: number;
  shared: SharedArrayBuffer;
}

type WorkerMessage =
  | { kind: "missing"; why: string }
  | { kind: "crash"; input: Uint8Array; reason: string }
  | { kind: "stats"; execs: number; corpus: number; blocks: number; crashes: number; seeds: number }
  | { kind: "done" };

/** After this many hangs a target stops: each restart would mostly rediscover the same loop. */
const MAX_HANGS_PER_TARGET = 3;

/** Shared layout: Int32 [0] exec counter, [1] current input length; bytes from 8 on: the input. */
const HEADER = 8;

// ---- PRNG and mutations ---------------------------------------------------------------------

/** xorshift32: small, seeded, reproducible. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    const item = items[this.below(items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(rng: Rng, input: Uint8Array, corpus: readonly Uint8Array[], dictionary: readonly Uint8Array[], maxLen: number): Uint8Array {
  let out: Uint8Array = Uint8Array.from(input);
  const rounds = 1 + rng.below(4);
  for (let r = 0; r < rounds; r++) {
    const at = rng.below(out.length + 1);
    switch (rng.below(11)) {
      case 0:
        if (out.length > 0) out[at % out.length] = (out[at % out.length] ?? 0) ^ (1 << rng.below(8));
        break;
      case 1:
        if (out.length > 0) out[at % out.length] = rng.pick([0, 1, 0x7f, 0x80, 0xff, rng.below(256)]);
        break;
      case 2: {
        const extra = Uint8Array.from({ length: 1 + rng.below(8) }, () => rng.below(256));
        out = concat(out.subarray(0, at), extra, out.subarray(at));
        break;
      }
      case 3: {
        const len = 1 + rng.below(Math.max(1, out.length >> 3));
        out = concat(out.subarray(0, at), out.subarray(Math.min(out.length, at + len)));
        break;
      }
      case 4: {
        if (out.length === 0) break;
        const from = rng.below(out.length);
        const len = 1 + rng.below(Math.min(64, out.length - from));
        out = concat(out.subarray(0, at), out.subarray(from, from + len), out.subarray(at));
        break;
      }
      case 5: {
        const width = rng.pick([2, 4, 8]);
        if (out.length < width) break;
        const pos = rng.below(out.length - width + 1);
        const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
        const value = rng.pick(INTERESTING);
        const little = rng.below(2) === 0;
        if (width === 2) view.setUint16(pos, value & 0xffff, little);
        else if (width === 4) view.setUint32(pos, value >>> 0, little);
        else view.setBigUint64(pos, rng.below(4) === 0 ? 0xffffffffffffffffn : BigInt(value >>> 0), little);
        break;
      }
      case 6: {
        const other = rng.pick(corpus);
        const from = rng.below(other.length);
        const len = rng.below(other.length - from + 1);
        out = concat(out.subarray(0, at), other.subarray(from, from + len));
        break;
      }
      case 7:
      case 8: {
        if (dictionary.length === 0) break;
        const token = rng.pick(dictionary);
        out = rng.below(2) === 0 ? concat(out.subarray(0, at), token, out.subarray(at)) : concat(out.subarray(0, at), token, out.subarray(at + token.length));
        break;
      }
      case 9:
        out = out.subarray(0, rng.below(out.length + 1));
        break;
      default: {
        // arithmetic on one byte
        if (out.length > 0) {
          const pos = at % out.length;
          out[pos] = ((out[pos] ?? 0) + rng.pick([1, -1, 16, -16, 35])) & 0xff;
        }
      }
    }
  }
  return out.length > maxLen ? out.subarray(0, maxLen) : out;
}

// ---- structure-aware JSON mutation (envelope, allowlist) ------------------------------------

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

function randomJsonValue(rng: Rng, sample: () => JsonValue): JsonValue {
  switch (rng.below(14)) {
    case 0:
      return null;
    case 1:
      return rng.below(2) === 0;
    case 2:
      return rng.pick([0, -1, 1, 1.5, 2 ** 31, 2 ** 53 + 1, -(2 ** 63), 1e308, Number.MIN_VALUE]);
    case 3:
      return "";
    case 4:
      return "x".repeat(1 + rng.below(5000));
    case 5:
      return rng.pick(["\u0000", "\u202e", "..", "../../etc/passwd", "/", "*", "**", "\ud800", "A".repeat(64), "a".repeat(64), "=", "%00", "é"]);
    case 6:
      return [];
    case 7:
      return {};
    case 8: {
      let v: JsonValue = 0;
      for (let i = 0, n = 1 + rng.below(2000); i < n; i++) v = [v];
      return v;
    }
    case 9:
      return Buffer.from(Uint8Array.from({ length: rng.below(100) }, () => rng.below(256))).toString("base64");
    case 10:
      return new Date(rng.below(2) === 0 ? 0 : 4102444800000).toISOString();
    default:
      return sample();
  }
}

/** Every (container, key) slot of a JSON tree, for picking one at random. */
function slots(root: JsonValue): { parent: JsonValue[] | Record<string, JsonValue>; key: string | number }[] {
  const out: { parent: JsonValue[] | Record<string, JsonValue>; key: string | number }[] = [];
  const stack: JsonValue[] = [root];
  while (stack.length > 0 && out.length < 10_000) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      v.forEach((c, i) => {
        out.push({ parent: v, key: i });
        stack.push(c);
      });
    } else if (v !== null && typeof v === "object") {
      for (const [k, c] of Object.entries(v)) {
        out.push({ parent: v, key: k });
        stack.push(c);
      }
    }
  }
  return out;
}

function mutateJson(rng: Rng, input: Uint8Array, depth = 0): Uint8Array | undefined {
  let root: JsonValue;
  try {
    root = JSON.parse(Buffer.from(input).toString("utf8")) as JsonValue;
  } catch {
    return undefined;
  }
  const all = slots(root);
  const sample = (): JsonValue => {
    const s = all.length > 0 ? rng.pick(all) : undefined;
    // Own properties only: after a delete, obj["constructor"] would be Object's function.
    const value = s !== undefined && Object.hasOwn(s.parent, s.key) ? ((s.parent as Record<string, JsonValue>)[s.key as string] ?? null) : null;
    return JSON.parse(JSON.stringify(value)) as JsonValue;
  };
  const rounds = 1 + rng.below(3);
  for (let r = 0; r < rounds; r++) {
    const slot = all.length > 0 ? rng.pick(all) : undefined;
    if (slot === undefined) {
      root = randomJsonValue(rng, sample);
      continue;
    }
    const container = slot.parent as Record<string, JsonValue>;
    const key = slot.key as string;
    const current = container[key];
    // A string that is base64 of JSON (the DSSE payload): mutate inside and re-encode.
    if (typeof current === "string" && depth === 0 && rng.below(2) === 0) {
      const inner = Buffer.from(current, "base64");
      const mutated = inner.length > 1 && inner[0] === 0x7b ? mutateJson(rng, inner, depth + 1) : undefined;
      if (mutated) {
        container[key] = Buffer.from(mutated).toString("base64");
        continue;
      }
    }
    switch (rng.below(5)) {
      case 0:
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
        else Reflect.deleteProperty(container, key);
        break;
      case 1:
        if (Array.isArray(slot.parent)) {
          const list = slot.parent;
          const item = list[slot.key as number] ?? null;
          for (let i = 0, n = 1 + rng.below(40); i < n; i++) list.push(item);
        } else {
          // defineProperty: an own "__proto__" key, as JSON.parse would create it.
          const extra = rng.pick(["extra", "__proto__", "constructor", key.toUpperCase(), `${key} `]);
          Object.defineProperty(container, extra, { value: randomJsonValue(rng, sample), enumerable: true, writable: true, configurable: true });
        }
        break;
      default:
        container[key] = randomJsonValue(rng, sample);
    }
  }
  let text = JSON.stringify(root);
  // Duplicate keys survive only at the text level.
  if (rng.below(8) === 0) text = text.replace(/^\{"([^"]+)":/, '{"$1":null,"$1":');
  return Buffer.from(text, "utf8");
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

// ---- coverage -------------------------------------------------------------------------------

interface CoverageRange {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  scriptId: string;
  url: string;
  functions: { ranges: CoverageRange[] }[];
}

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    session.post(method, params ?? {}, (err, result) => {
      if (err) reject(err);
      else resolve(result as T);
    });
  });
}

/** Blocks of our own code (src/) that ran since the last take. */
async function takeBlocks(session: Session): Promise<string[]> {
  const { result } = await post<{ result: ScriptCoverage[] }>(session, "Profiler.takePreciseCoverage");
  const blocks: string[] = [];
  for (const script of result) {
    if (!script.url.includes(`${path.sep}src${path.sep}`) || script.url.includes("node_modules")) continue;
    for (const fn of script.functions) {
      for (const r of fn.ranges) if (r.count > 0) blocks.push(`${script.scriptId}:${r.startOffset.toString()}:${r.endOffset.toString()}`);
    }
  }
  return blocks;
}

// ---- worker ---------------------------------------------------------------------------------

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const frame = (err.stack ?? "").split("\n").find((l) => l.trim().startsWith("at ")) ?? "";
    return `${err.name}: ${err.message} ${frame.trim()}`;
  }
  return `non-Error thrown: ${String(err)}`;
}

async function runWorker(input: WorkerInput): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const send = (m: WorkerMessage): void => {
    port.postMessage(m);
  };
  const target = TARGETS.find((t) => t.name === input.target);
  if (target === undefined) {
    send({ kind: "missing", why: `no target named ${input.target}` });
    return;
  }
  const loaded = await target.load();
  if ("missing" in loaded) {
    send({ kind: "missing", why: loaded.missing });
    return;
  }
  const execute: Execute = loaded;
  const counter = new Int32Array(input.shared, 0, 2);
  const current = new Uint8Array(input.shared, HEADER);
  const rng = new Rng(input.seed);
  const dictionary = target.dictionary.map((d) => Uint8Array.from(Buffer.from(d, "latin1")));
  const session = new Session();
  session.connect();
  await post(session, "Profiler.enable");
  await post(session, "Profiler.startPreciseCoverage", { callCount: true, detailed: true });

  const seen = new Set<string>();
  const crashSignatures = new Set<string>();
  const corpus: Uint8Array[] = [];
  let execs = 0;
  let crashes = 0;

  const runOne = async (data: Uint8Array): Promise<boolean> => {
    const n = Math.min(data.length, current.length);
    current.set(data.subarray(0, n));
    Atomics.store(counter, 1, n);
    Atomics.add(counter, 0, 1);
    execs += 1;
    const started = performance.now();
    let failure: string | undefined;
    try {
      await execute(data);
    } catch (err) {
      if (isCrash(err)) failure = describeError(err);
    }
    const ms = performance.now() - started;
    if (failure === undefined && ms > input.budgetMs) failure = `time budget overrun: ${ms.toFixed(0)} ms > ${input.budgetMs.toString()} ms`;
    if (failure !== undefined) {
      crashes += 1;
      if (!crashSignatures.has(failure)) {
        crashSignatures.add(failure);
        send({ kind: "crash", input: data, reason: failure });
      }
      return false;
    }
    let fresh = false;
    for (const b of await takeBlocks(session)) {
      if (!seen.has(b)) {
        seen.add(b);
        fresh = true;
      }
    }
    return fresh;
  };

  const seeds = seedsFor(target, input.maxLen);
  await takeBlocks(session); // drop what loading the modules ran
  for (const s of seeds) {
    await runOne(s);
    corpus.push(s);
  }
  if (corpus.length === 0) corpus.push(new Uint8Array(0));

  const deadline = performance.now() + input.seconds * 1000;
  let lastStats = performance.now();
  while (performance.now() < deadline) {
    const parent = rng.pick(corpus);
    const structured = target.json === true && rng.below(2) === 0 ? mutateJson(rng, parent) : undefined;
    const child = structured !== undefined && structured.length <= input.maxLen ? structured : mutate(rng, parent, corpus, dictionary, input.maxLen);
    if (await runOne(child)) corpus.push(child);
    if (performance.now() - lastStats > 5000) {
      lastStats = performance.now();
      send({ kind: "stats", execs, corpus: corpus.length, blocks: seen.size, crashes, seeds: seeds.length });
    }
  }
  send({ kind: "stats", execs, corpus: corpus.length, blocks: seen.size, crashes, seeds: seeds.length });
  execute.dispose?.();
  await post(session, "Profiler.stopPreciseCoverage");
  session.disconnect();
  send({ kind: "done" });
}

// ---- main: watchdog and crash files ---------------------------------------------------------

function saveCrasher(outDir: string, target: string, input: Uint8Array, reason: string): string {
  mkdirSync(outDir, { recursive: true });
  const id = createHash("sha256").update(input).digest("hex").slice(0, 16);
  const file = path.join(outDir, `${target}-${id}.bin`);
  writeFileSync(file, input);
  writeFileSync(`${file}.txt`, `${reason}\n`);
  return file;
}

async function fuzzTarget(
  target: FuzzTarget,
  opts: { seconds: number; seed: number; maxLen: number; budgetMs: number; hangMs: number; outDir: string },
): Promise<number> {
  let crashFiles = 0;
  let hangs = 0;
  let remaining = opts.seconds;
  let attempt = 0;
  // One file per distinct crash signature across worker restarts (a restarted worker finds the same bugs again).
  const signatures = new Set<string>();
  while (remaining > 0.5) {
    const startedAt = performance.now();
    const shared = new SharedArrayBuffer(HEADER + opts.maxLen);
    const counter = new Int32Array(shared, 0, 2);
    const worker = new Worker(__filename, {
      workerData: {
        target: target.name,
        seconds: remaining,
        seed: opts.seed + attempt * 7919,
        maxLen: opts.maxLen,
        budgetMs: opts.budgetMs,
        shared,
      } satisfies WorkerInput,
    });
    const outcome = await new Promise<"done" | "hang" | "missing" | "error">((resolve) => {
      let lastCount = -1;
      let lastChange = performance.now();
      const watchdog = setInterval(() => {
        const count = Atomics.load(counter, 0);
        if (count !== lastCount) {
          lastCount = count;
          lastChange = performance.now();
        } else if (count > 0 && performance.now() - lastChange > opts.hangMs) {
          clearInterval(watchdog);
          const length = Atomics.load(counter, 1);
          const input = Uint8Array.from(new Uint8Array(shared, HEADER, length));
          const file = saveCrasher(opts.outDir, target.name, input, `hang: no progress for ${opts.hangMs.toString()} ms`);
          crashFiles += 1;
          console.log(`[${target.name}] HANG saved to ${file}`);
          void worker.terminate().then(() => {
            resolve("hang");
          });
        }
      }, 100);
      worker.on("message", (m: WorkerMessage) => {
        switch (m.kind) {
          case "missing":
            console.log(`[${target.name}] skipped: ${m.why}`);
            clearInterval(watchdog);
            resolve("missing");
            break;
          case "crash": {
            if (signatures.has(m.reason)) break;
            signatures.add(m.reason);
            const file = saveCrasher(opts.outDir, target.name, m.input, m.reason);
            crashFiles += 1;
            console.log(`[${target.name}] CRASH ${m.reason}\n  saved to ${file}`);
            break;
          }
          case "stats":
            console.log(
              `[${target.name}] execs ${m.execs.toString()}  corpus ${m.corpus.toString()} (seeds ${m.seeds.toString()})  blocks ${m.blocks.toString()}  crashes ${m.crashes.toString()}`,
            );
            break;
          case "done":
            clearInterval(watchdog);
            resolve("done");
            break;
        }
      });
      worker.on("error", (err) => {
        clearInterval(watchdog);
        console.log(`[${target.name}] worker error (a fuzzer bug, not a target crash): ${err.stack ?? describeError(err)}`);
        resolve("error");
      });
    });
    if (outcome !== "hang") {
      await worker.terminate();
      break;
    }
    hangs += 1;
    if (hangs >= MAX_HANGS_PER_TARGET) {
      console.log(`[${target.name}] ${hangs.toString()} hangs: stopping this target (fix the saved hang first)`);
      break;
    }
    remaining -= (performance.now() - startedAt) / 1000;
    attempt += 1;
  }
  return crashFiles;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: "string", default: "60" },
      seed: { type: "string" },
      target: { type: "string" },
      "max-len": { type: "string", default: "65536" },
      "budget-ms": { type: "string", default: "2000" },
      "hang-ms": { type: "string", default: "10000" },
      out: { type: "string" },
    },
    strict: true,
  });
  const seconds = Number(values.seconds);
  const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 0x7fffffff;
  const maxLen = Number(values["max-len"]);
  const budgetMs = Number(values["budget-ms"]);
  const hangMs = Math.max(Number(values["hang-ms"]), budgetMs * 2);
  const names = values.target?.split(",").map((s) => s.trim()) ?? TARGETS.map((t) => t.name);
  if (![seconds, seed, maxLen, budgetMs, hangMs].every((n) => Number.isFinite(n) && n > 0)) {
    console.error("usage: fuzz [--seconds N] [--seed N] [--target a,b] [--max-len BYTES] [--budget-ms MS] [--hang-ms MS] [--out DIR]");
    return 2;
  }
  const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length > 0) {
    console.error(`unknown target(s): ${unknown.join(", ")}; known: ${TARGETS.map((t) => t.name).join(", ")}`);
    return 2;
  }
  const outDir = values.out ?? path.join(fixtureRoot(), "fuzz-regressions");
  const perTarget = seconds / names.length;
  console.log(`fuzzing ${names.join(", ")} for ${seconds.toString()} s (seed ${seed.toString()}); crashers go to ${outDir}`);
  let crashes = 0;
  for (const name of names) {
    const target = TARGETS.find((t) => t.name === name);
    if (target) crashes += await fuzzTarget(target, { seconds: perTarget, seed, maxLen, budgetMs, hangMs, outDir });
  }
  console.log(crashes === 0 ? "no crashes" : `${crashes.toString()} crasher(s) saved`);
  return crashes === 0 ? 0 : 1;
}

if (isMainThread) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 2;
    },
  );
} else {
  void runWorker(workerData as WorkerInput);
}
