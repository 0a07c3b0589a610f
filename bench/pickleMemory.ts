/**
 * bench:pickle-memory — peak memory of one pickle inspection on inputs built to reach each
 * PickleLimits bound at the default limits (one opcode past it), README "Memory of one inspection".
 *
 * Every case is generated into a temporary file and analyzed in a fresh Node process as
 * inspectPickleSource runs it (FileSource, valueFree: the value-light scanner first); the child
 * reports its findings, its wall time and its peak RSS (process.resourceUsage().maxRSS). Cases
 * named "... (machine)" start with a protocol 0 INT opcode, which the value-light scanner does
 * not handle: the full symbolic machine analyzes them, the path any upload can force.
 *
 * Peak RSS includes garbage V8 has not collected yet (it grows the heap rather than collect when
 * allocation is fast), so `--heap <MiB>` runs the children with --max-old-space-size: a case that
 * completes under it keeps less than that alive; one that needs more dies "out of memory".
 *
 * Usage: npm run bench:pickle-memory [-- --only memo] [-- --heap 512]
 *   --only: the cases whose name contains the text; --heap: the children's V8 old-space cap in MiB.
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cursor } from "../src/bytes/cursor";
import { FileSource } from "../src/bytes/source";
import { DEFAULT_CONTENT_POLICY } from "../src/inspect/policy";
import { DEFAULT_PICKLE_LIMITS } from "../src/limits";
import { analyzePickle, makePicklePolicy } from "../src/pickle";

const L = DEFAULT_PICKLE_LIMITS;
/** INT 1, POP in protocol 0 text: the value-light scanner hands the stream to the full machine. */
const MACHINE_PREFIX = Buffer.from("I1\n0", "latin1");

interface Case {
  name: string;
  /** Bytes before the repeated unit (after PROTO 4). */
  head: Buffer;
  unit: Buffer;
  count: number;
  /** Bytes after the units (before STOP). */
  tail?: Buffer;
}

const u8 = (...b: number[]): Buffer => Buffer.from(b);
const str15 = Buffer.concat([u8(0x8c, 15), Buffer.from("abcdefghijklmno", "latin1")]);
const binunicode64k = Buffer.concat([u8(0x58, 0x00, 0x00, 0x01, 0x00), Buffer.alloc(65536, 0x61)]);
const orderedDict = Buffer.from("ccollections\nOrderedDict\n", "latin1");
const stackGlobalHead = Buffer.concat([
  u8(0x8c, 11),
  Buffer.from("collections", "latin1"),
  u8(0x94, 0x8c, 11),
  Buffer.from("OrderedDict", "latin1"),
  u8(0x94, 0x30, 0x30),
]);

function cases(): Case[] {
  const memo = L.maxMemoEntries + 1;
  const both = (name: string, head: Buffer, unit: Buffer, count: number, tail?: Buffer): Case[] => [
    { name: `${name} (scanner)`, head, unit, count, ...(tail ? { tail } : {}) },
    { name: `${name} (machine)`, head: Buffer.concat([MACHINE_PREFIX, head]), unit, count, ...(tail ? { tail } : {}) },
  ];
  return [
    // SHORT_BINUNICODE <15 bytes>, MEMOIZE, POP: the 300 MB memo flood of issue 10.
    ...both("maxMemoEntries: memoized strings", Buffer.alloc(0), Buffer.concat([str15, u8(0x94, 0x30)]), memo),
    // NONE, TUPLE1, MEMOIZE, POP: a new tuple object per memo entry.
    ...both("maxMemoEntries: memoized tuples", Buffer.alloc(0), u8(0x4e, 0x85, 0x94, 0x30), memo),
    // EMPTY_LIST, MEMOIZE, POP.
    ...both("maxMemoEntries: memoized lists", Buffer.alloc(0), u8(0x5d, 0x94, 0x30), memo),
    // BINGET 0 (collections.OrderedDict), NONE, TUPLE1, REDUCE, MEMOIZE, POP: an object (and its arguments) per entry.
    ...both("maxMemoEntries: memoized objects", Buffer.concat([orderedDict, u8(0x94, 0x30)]), u8(0x68, 0x00, 0x4e, 0x85, 0x52, 0x94, 0x30), memo - 1),
    // BINGET 0, BINGET 1 ("collections", "OrderedDict"), STACK_GLOBAL, MEMOIZE, POP: an import per entry.
    ...both("maxMemoEntries: memoized imports", stackGlobalHead, u8(0x68, 0x00, 0x68, 0x01, 0x93, 0x94, 0x30), memo - 2),
    // NONE, POP.
    ...both("maxOpsPerStream", Buffer.alloc(0), u8(0x4e, 0x30), Math.ceil(L.maxOpsPerStream / 2) + 1),
    // NONE without POP.
    ...both("maxStackDepth", Buffer.alloc(0), u8(0x4e), L.maxStackDepth + 1),
    // MARK.
    ...both("maxMarkDepth", Buffer.alloc(0), u8(0x28), L.maxMarkDepth + 1),
    // MARK, then 64 KiB strings kept on the stack.
    ...both("maxDecodedStringBytes: strings kept on the stack", u8(0x28), binunicode64k, Math.floor(L.maxDecodedStringBytes / 65536) + 1),
    // 64 KiB strings, each memoized (kept as an offset) and popped.
    ...both(
      "maxDecodedStringBytes: memoized strings",
      Buffer.alloc(0),
      Buffer.concat([binunicode64k, u8(0x94, 0x30)]),
      Math.floor(L.maxDecodedStringBytes / 65536) + 1,
    ),
    // NONE, LONG_BINPUT 0xffffffff.
    ...both("memo index rule", Buffer.alloc(0), u8(0x4e, 0x72, 0xff, 0xff, 0xff, 0xff), 1),
  ];
}

function write(path: string, c: Case): void {
  const fd = openSync(path, "w");
  try {
    writeSync(fd, u8(0x80, 4));
    writeSync(fd, c.head);
    const per = Math.max(1, Math.floor((1 << 20) / c.unit.length));
    const block = Buffer.concat(Array.from({ length: per }, () => c.unit));
    let left = c.count;
    while (left > 0) {
      const n = Math.min(left, per);
      writeSync(fd, block, 0, n * c.unit.length);
      left -= n;
    }
    if (c.tail) writeSync(fd, c.tail);
    writeSync(fd, u8(0x2e));
  } finally {
    closeSync(fd);
  }
}

/** The child: analyze one file, print one JSON line. */
function child(path: string): void {
  const policy = makePicklePolicy(DEFAULT_CONTENT_POLICY);
  const source = new FileSource(path);
  const t0 = process.hrtime.bigint();
  try {
    const a = analyzePickle(new Cursor(source, { errorCode: "malformed_pickle" }), { policy, location: "bench", valueFree: true });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const codes = [...new Set(a.node.findings.map((f) => f.code))];
    console.log(JSON.stringify({ codes, seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));
  } finally {
    source.close();
  }
}

function main(): void {
  const onlyArg = process.argv.indexOf("--only");
  const only = onlyArg >= 0 ? process.argv[onlyArg + 1] : undefined;
  const heapArg = process.argv.indexOf("--heap");
  const heap = heapArg >= 0 ? [`--max-old-space-size=${process.argv[heapArg + 1] ?? ""}`] : [];
  const dir = mkdtempSync(join(tmpdir(), "modelgate-bench-pickle-memory-"));
  try {
    console.log(`case | input MB | findings | wall s | peak RSS MiB${heap.length > 0 ? ` (${heap[0] ?? ""})` : ""}`);
    for (const c of cases()) {
      if (only !== undefined && !c.name.includes(only)) continue;
      const path = join(dir, "case.pkl");
      write(path, c);
      const size = statSync(path).size;
      const run = spawnSync(process.execPath, [...heap, __filename, "--child", path], { encoding: "utf8", maxBuffer: 1 << 20 });
      if (run.status !== 0) {
        const oom = /heap out of memory/i.test(run.stderr);
        console.log(`${c.name} | ${(size / 1e6).toFixed(1)} | ${oom ? "out of memory" : `child failed (${String(run.status ?? run.signal)})`} | - | -`);
      } else {
        const r = JSON.parse(run.stdout.trim()) as { codes: string[]; seconds: number; maxRssMiB: number };
        console.log(`${c.name} | ${(size / 1e6).toFixed(1)} | ${r.codes.join(",") || "-"} | ${r.seconds.toFixed(2)} | ${r.maxRssMiB.toFixed(0)}`);
      }
      rmSync(path, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const childArg = process.argv.indexOf("--child");
if (childArg >= 0) child(process.argv[childArg + 1] ?? "");
else main();
