import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { Cursor } from "../../src/bytes/cursor";
import { createJoblibReader } from "../../src/formats/models/joblib";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import type { PickleLimits } from "../../src/limits";
import { BufferSource } from "../../src/bytes/source";
import { DEFAULT_PICKLE_LIMITS } from "../../src/limits";
import { analyzePickle } from "../../src/pickle/analyzer";
import { OP, OPCODES, type OpName } from "../../src/pickle/opcodes";
import { ValueLightScanner, VALUE_LIGHT_OPCODES } from "../../src/pickle/valueLightScanner";
import { makePicklePolicy } from "../../src/pickle/policy";
import { analyzeBytes, buildPickle, callOf, concat, framed, type PickleOp } from "./builders";

/**
 * The value-light scanner (src/pickle/valueLightScanner.ts) is an accelerator: with `valueFree` the analysis
 * must produce exactly the report of the full machine (findings, imports, calls, counts, end,
 * ops), whether the scanner finishes a stream or hands it back.
 */

const FIXTURES = join(__dirname, "..", "fixtures");

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...files(p));
    else if (st.size < 4 * 1024 * 1024 && !/\.(json|py|md|txt)$/.test(name)) out.push(p);
  }
  return out;
}

const fixtureFiles = files(FIXTURES);
const pickleUnit = fixtureFiles.filter((p) => p.includes("pickle-unit") && p.endsWith(".pkl")).map((p) => new Uint8Array(readFileSync(p)));

function same(bytes: Uint8Array, limits?: Partial<PickleLimits>): { fastValues: number } {
  const opts = { limits: { timeBudgetMs: 60_000, ...limits } };
  const full = analyzeBytes(bytes, opts);
  const fast = analyzeBytes(bytes, { ...opts, valueFree: true });
  expect(JSON.stringify(fast.node)).toBe(JSON.stringify(full.node));
  expect(fast.end).toBe(full.end);
  expect(fast.ops).toBe(full.ops);
  expect(fast.streams).toBe(full.streams);
  expect(fast.values).toHaveLength(full.values.length);
  return { fastValues: fast.values.filter((v) => v.kind === "unknown").length };
}

const str = (s: string): PickleOp => ["SHORT_BINUNICODE", s];

describe("value-light scanner: same report as the full machine", () => {
  it("every committed fixture", () => {
    expect(fixtureFiles.length).toBeGreaterThan(10);
    for (const p of fixtureFiles) same(new Uint8Array(readFileSync(p)));
  });

  it("runs on a plain protocol 4 data pickle (values are then unknown)", () => {
    const ops: PickleOp[] = [
      ["PROTO", 4],
      ...framed([["EMPTY_DICT"], ["MEMOIZE"], ["MARK"], str("a"), ["MEMOIZE"], ["BININT1", 1], str("b"), ["BINFLOAT", 1.5], ["SETITEMS"], ["STOP"]]),
    ];
    expect(same(buildPickle(ops)).fastValues).toBe(1);
  });

  it("imports through inline and memoized strings, calls and BUILD counted", () => {
    const ops: PickleOp[] = [
      ["PROTO", 4],
      str("collections"),
      ["MEMOIZE"],
      str("OrderedDict"),
      ["MEMOIZE"],
      ["STACK_GLOBAL"],
      ["MEMOIZE"],
      ["EMPTY_TUPLE"],
      ["REDUCE"],
      ["MARK"],
      str("k"),
      ["BINGET", 2],
      ["EMPTY_TUPLE"],
      ["REDUCE"],
      ["SETITEMS"],
      ["BINGET", 0],
      ["BINGET", 1],
      ["STACK_GLOBAL"],
      ["EMPTY_TUPLE"],
      ["NEWOBJ"],
      ["EMPTY_DICT"],
      ["BUILD"],
      ["TUPLE2"],
      ...callOf("os", "system", "id", "STACK_GLOBAL"),
      ...callOf("numpy", "dtype", "f8", "GLOBAL"),
      ["TUPLE3"],
      ["STOP"],
    ];
    const r = same(buildPickle(ops));
    expect(r.fastValues).toBe(1);
  });

  it("hands back what only the machine reports: unresolved, EXT, persistent ids, mutation, calls on non-imports", () => {
    const cases: PickleOp[][] = [
      [["PROTO", 4], ["BININT1", 1], str("system"), ["STACK_GLOBAL"], ["STOP"]],
      [["PROTO", 4], str("os"), ["BININT1", 1], ["STACK_GLOBAL"], ["STOP"]],
      [["PROTO", 4], ["EXT1", 7], ["STOP"]],
      [["PROTO", 4], str("pid"), ["BINPERSID"], ["STOP"]],
      [["PROTO", 4], ["GLOBAL", "os", "environ"], str("k"), str("v"), ["SETITEM"], ["STOP"]],
      [["PROTO", 4], ["GLOBAL", "os", "environ"], ["EMPTY_DICT"], ["BUILD"], ["STOP"]],
      [["PROTO", 4], ["EMPTY_LIST"], ["EMPTY_TUPLE"], ["REDUCE"], ["STOP"]],
      [["PROTO", 4], ["GLOBAL", "numpy", "dtype"], ["EMPTY_TUPLE"], ["REDUCE"], ["EMPTY_TUPLE"], ["REDUCE"], ["STOP"]],
      [["PROTO", 4], ["BINGET", 3], ["STOP"]],
      [["PROTO", 4], ["POP"], ["STOP"]],
      [["PROTO", 4], ["MARK"], ["BININT1", 1], ["SETITEMS"], ["STOP"]],
      [["PROTO", 4], ["NONE"]],
      [["PROTO", 2], ["MARK"], ["GLOBAL", "os", "system"], str("id"), ["OBJ"], ["STOP"]],
      [["PROTO", 4], { raw: Uint8Array.from([0x8c, 2, 0xff, 0xfe]) }, ["STOP"]],
      [["PROTO", 4], ["SHORT_BINSTRING", "os"], ["SHORT_BINSTRING", "system"], ["STACK_GLOBAL"], ["STOP"]],
    ];
    for (const ops of cases) same(buildPickle(ops));
  });

  it("framing violations and payloads in a second pickle", () => {
    const inner = buildPickle([str("abc"), ["STOP"]]);
    same(buildPickle([["PROTO", 4], ["FRAME", inner.length - 2], { raw: inner }]));
    same(buildPickle([["PROTO", 4], ["FRAME", inner.length + 5], { raw: inner }, ["NONE"], ["NONE"], ["STOP"]]));
    same(concat(buildPickle([["PROTO", 4], ["NONE"], ["STOP"]]), buildPickle([["PROTO", 4], ...callOf("os", "system", "id", "STACK_GLOBAL"), ["STOP"]])));
    same(concat(buildPickle([["PROTO", 4], ["NONE"], ["STOP"]]), Uint8Array.from([0x50, 0x4b, 0x03, 0x04])));
  });

  it("every limit at and past its bound", () => {
    const bytes = buildPickle([
      ["PROTO", 4],
      ["MARK"],
      ["MARK"],
      str("abcd"),
      ["MEMOIZE"],
      ["BINUNICODE", "xy"],
      ["MEMOIZE"],
      ["BINBYTES", "zz"],
      ["TUPLE"],
      ["TUPLE"],
      ["STOP"],
    ]);
    for (const n of [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12]) {
      same(bytes, { maxOpsPerStream: n });
      same(bytes, { maxMemoEntries: n });
      same(bytes, { maxStackDepth: n });
      same(bytes, { maxMarkDepth: n });
      same(bytes, { maxDecodedStringBytes: n });
      same(bytes, { maxRetainedArgumentBytes: n });
      same(concat(bytes, bytes, bytes), { maxStreamsPerSequence: n });
    }
  });

  it("deep stacks (the scanner's stack grows) at and past maxStackDepth, memo indices across pages", () => {
    const deep: PickleOp[] = [["PROTO", 4], ["MARK"], ...Array.from({ length: 5000 }, (): PickleOp => ["NONE"]), ["TUPLE"], ["STOP"]];
    const bytes = buildPickle(deep);
    expect(same(bytes).fastValues).toBe(1);
    same(bytes, { maxStackDepth: 5000 });
    same(bytes, { maxStackDepth: 4999 });
    const memo = buildPickle([
      ["PROTO", 4],
      str("os"),
      ["LONG_BINPUT", 100_000],
      ["POP"],
      str("system"),
      ["LONG_BINPUT", 40_000],
      ["LONG_BINGET", 100_000],
      ["LONG_BINGET", 40_000],
      ["STACK_GLOBAL"],
      ["STOP"],
    ]);
    same(memo);
    same(buildPickle([["PROTO", 4], ["NONE"], ["LONG_BINPUT", 0x7fffffff], ["STOP"]]));
  });

  it("with an onBuild hook limited by onBuildFor (joblib): same report, same arrays", () => {
    const hooked = new Set([
      "joblib.numpy_pickle.NumpyArrayWrapper",
      "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
      "copyreg._reconstructor",
      "copy_reg._reconstructor",
    ]);
    const onBuildFor = (module: string, name: string): boolean => hooked.has(`${module}.${name}`);
    const dumps = fixtureFiles.filter((p) => p.endsWith(".joblib") || p.endsWith(".pkl"));
    expect(dumps.some((p) => p.endsWith("arrays.joblib"))).toBe(true);
    const policy = makePicklePolicy(DEFAULT_CONTENT_POLICY);
    const run = (bytes: Uint8Array, valueFree: boolean): string => {
      const joblib = createJoblibReader({ policy, location: "t" });
      const a = analyzePickle(Cursor.ofBytes(bytes, { errorCode: "malformed_pickle" }), {
        policy,
        location: "t",
        onBuild: joblib.onBuild,
        valueFree,
        onBuildFor,
      });
      return JSON.stringify({ node: a.node, end: a.end, ops: a.ops, arrays: joblib.arrays, findings: joblib.findings, nodes: joblib.nodes });
    };
    for (const p of dumps) {
      const bytes = new Uint8Array(readFileSync(p));
      expect(run(bytes, true)).toBe(run(bytes, false));
    }
  });

  it("random and mutated bytes", () => {
    const OPS = [
      0x80, 0x95, 0x94, 0x93, 0x8c, 0x28, 0x2e, 0x4b, 0x58, 0x63, 0x52, 0x62, 0x71, 0x68, 0x65, 0x75, 0x7d, 0x5d, 0x29, 0x4e, 0x30, 0x32, 0x85, 0x86, 0x87,
      0x81, 0x92, 0x73, 0x61,
    ];
    const pickleish = fc.array(fc.oneof(fc.constantFrom(...OPS), fc.integer({ min: 0, max: 255 })), { maxLength: 200 }).map((a) => Uint8Array.from(a));
    fc.assert(
      fc.property(pickleish, (b) => {
        same(b);
      }),
      { numRuns: 1000 },
    );
    const edit = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: pickleUnit.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 4 }), (i, edits) => {
        const b = Uint8Array.from(pickleUnit[i] as Uint8Array);
        for (const e of edits) if (b.length > 0) b[e.at % b.length] = e.value;
        same(b);
      }),
      { numRuns: 600 },
    );
  });
});

/**
 * One well-formed stream per opcode, using it the way a data pickle does. The scanner must finish
 * the stream of every opcode in VALUE_LIGHT_OPCODES and hand back the stream of every other
 * opcode; either way the analysis equals the full machine's.
 */
const STREAM_OF: Record<OpName, PickleOp[]> = {
  MARK: [["PROTO", 4], ["MARK"], ["NONE"], ["TUPLE"], ["STOP"]],
  STOP: [["PROTO", 4], ["NONE"], ["STOP"]],
  POP: [["PROTO", 4], ["NONE"], ["NONE"], ["POP"], ["STOP"]],
  POP_MARK: [["PROTO", 4], ["NONE"], ["MARK"], ["NONE"], ["POP_MARK"], ["STOP"]],
  DUP: [["PROTO", 4], ["NONE"], ["DUP"], ["TUPLE2"], ["STOP"]],
  FLOAT: [["FLOAT", "1.5"], ["STOP"]],
  INT: [["INT", 7], ["STOP"]],
  BININT: [["PROTO", 4], ["BININT", 70000], ["STOP"]],
  BININT1: [["PROTO", 4], ["BININT1", 7], ["STOP"]],
  LONG: [["LONG", 7], ["STOP"]],
  BININT2: [["PROTO", 4], ["BININT2", 700], ["STOP"]],
  NONE: [["PROTO", 4], ["NONE"], ["STOP"]],
  PERSID: [["PERSID", "pid"], ["STOP"]],
  BINPERSID: [["PROTO", 4], str("pid"), ["BINPERSID"], ["STOP"]],
  REDUCE: [["PROTO", 4], ...callOf("collections", "OrderedDict", "x"), ["STOP"]],
  STRING: [["STRING", "abc"], ["STOP"]],
  BINSTRING: [["PROTO", 4], ["BINSTRING", "abc"], ["STOP"]],
  SHORT_BINSTRING: [["PROTO", 4], ["SHORT_BINSTRING", "abc"], ["STOP"]],
  UNICODE: [["UNICODE", "abc"], ["STOP"]],
  BINUNICODE: [["PROTO", 4], ["BINUNICODE", "abc"], ["STOP"]],
  APPEND: [["PROTO", 4], ["EMPTY_LIST"], ["NONE"], ["APPEND"], ["STOP"]],
  BUILD: [["PROTO", 4], ["GLOBAL", "collections", "OrderedDict"], ["EMPTY_TUPLE"], ["REDUCE"], ["EMPTY_DICT"], ["BUILD"], ["STOP"]],
  GLOBAL: [["PROTO", 4], ["GLOBAL", "collections", "OrderedDict"], ["STOP"]],
  DICT: [["PROTO", 4], ["MARK"], str("k"), ["NONE"], ["DICT"], ["STOP"]],
  EMPTY_DICT: [["PROTO", 4], ["EMPTY_DICT"], ["STOP"]],
  APPENDS: [["PROTO", 4], ["EMPTY_LIST"], ["MARK"], ["NONE"], ["NONE"], ["APPENDS"], ["STOP"]],
  GET: [["NONE"], ["PUT", "0"], ["GET", "0"], ["TUPLE2"], ["STOP"]],
  BINGET: [["PROTO", 4], ["NONE"], ["BINPUT", 0], ["BINGET", 0], ["TUPLE2"], ["STOP"]],
  INST: [["MARK"], ["INST", "collections", "OrderedDict"], ["STOP"]],
  LONG_BINGET: [["PROTO", 4], ["NONE"], ["BINPUT", 0], ["LONG_BINGET", 0], ["TUPLE2"], ["STOP"]],
  LIST: [["PROTO", 4], ["MARK"], ["NONE"], ["LIST"], ["STOP"]],
  EMPTY_LIST: [["PROTO", 4], ["EMPTY_LIST"], ["STOP"]],
  OBJ: [["PROTO", 1], ["MARK"], ["GLOBAL", "collections", "OrderedDict"], ["OBJ"], ["STOP"]],
  PUT: [["NONE"], ["PUT", "0"], ["STOP"]],
  BINPUT: [["PROTO", 4], ["NONE"], ["BINPUT", 0], ["STOP"]],
  LONG_BINPUT: [["PROTO", 4], ["NONE"], ["LONG_BINPUT", 0], ["STOP"]],
  SETITEM: [["PROTO", 4], ["EMPTY_DICT"], str("k"), ["NONE"], ["SETITEM"], ["STOP"]],
  TUPLE: [["PROTO", 4], ["MARK"], ["NONE"], ["TUPLE"], ["STOP"]],
  EMPTY_TUPLE: [["PROTO", 4], ["EMPTY_TUPLE"], ["STOP"]],
  SETITEMS: [["PROTO", 4], ["EMPTY_DICT"], ["MARK"], str("k"), ["NONE"], ["SETITEMS"], ["STOP"]],
  BINFLOAT: [["PROTO", 4], ["BINFLOAT", 1.5], ["STOP"]],
  PROTO: [["PROTO", 2], ["NONE"], ["STOP"]],
  NEWOBJ: [["PROTO", 4], ["GLOBAL", "collections", "OrderedDict"], ["EMPTY_TUPLE"], ["NEWOBJ"], ["STOP"]],
  EXT1: [["PROTO", 4], ["EXT1", 7], ["STOP"]],
  EXT2: [["PROTO", 4], ["EXT2", 700], ["STOP"]],
  EXT4: [["PROTO", 4], ["EXT4", 70000], ["STOP"]],
  TUPLE1: [["PROTO", 4], ["NONE"], ["TUPLE1"], ["STOP"]],
  TUPLE2: [["PROTO", 4], ["NONE"], ["NONE"], ["TUPLE2"], ["STOP"]],
  TUPLE3: [["PROTO", 4], ["NONE"], ["NONE"], ["NONE"], ["TUPLE3"], ["STOP"]],
  NEWTRUE: [["PROTO", 4], ["NEWTRUE"], ["STOP"]],
  NEWFALSE: [["PROTO", 4], ["NEWFALSE"], ["STOP"]],
  LONG1: [["PROTO", 4], ["LONG1", 300n], ["STOP"]],
  LONG4: [["PROTO", 4], ["LONG4", 300n], ["STOP"]],
  BINBYTES: [["PROTO", 4], ["BINBYTES", "abc"], ["STOP"]],
  SHORT_BINBYTES: [["PROTO", 4], ["SHORT_BINBYTES", "abc"], ["STOP"]],
  SHORT_BINUNICODE: [["PROTO", 4], str("abc"), ["STOP"]],
  BINUNICODE8: [["PROTO", 4], ["BINUNICODE8", "abc"], ["STOP"]],
  BINBYTES8: [["PROTO", 4], ["BINBYTES8", "abc"], ["STOP"]],
  EMPTY_SET: [["PROTO", 4], ["EMPTY_SET"], ["STOP"]],
  ADDITEMS: [["PROTO", 4], ["EMPTY_SET"], ["MARK"], ["NONE"], ["ADDITEMS"], ["STOP"]],
  FROZENSET: [["PROTO", 4], ["MARK"], ["NONE"], ["FROZENSET"], ["STOP"]],
  NEWOBJ_EX: [["PROTO", 4], ["GLOBAL", "collections", "OrderedDict"], ["EMPTY_TUPLE"], ["EMPTY_DICT"], ["NEWOBJ_EX"], ["STOP"]],
  STACK_GLOBAL: [["PROTO", 4], str("collections"), str("OrderedDict"), ["STACK_GLOBAL"], ["STOP"]],
  MEMOIZE: [["PROTO", 4], ["NONE"], ["MEMOIZE"], ["STOP"]],
  FRAME: [["PROTO", 4], ...framed([["NONE"], ["STOP"]])],
  BYTEARRAY8: [["PROTO", 5], ["BYTEARRAY8", "abc"], ["STOP"]],
  NEXT_BUFFER: [["PROTO", 5], ["NEXT_BUFFER"], ["STOP"]],
  READONLY_BUFFER: [["PROTO", 5], ["NEXT_BUFFER"], ["READONLY_BUFFER"], ["STOP"]],
};

describe("value-light scanner: the opcodes it handles (VALUE_LIGHT_OPCODES)", () => {
  /** Whether the scanner itself reaches STOP on `bytes` (true) or hands the stream to the machine (false). */
  function scannerFinishes(bytes: Uint8Array): boolean {
    const scanner = new ValueLightScanner(new BufferSource(bytes), bytes.length, DEFAULT_PICKLE_LIMITS, Date.now() + 60_000);
    return scanner.run(0, 0) >= 0;
  }

  it("names only opcodes of the table", () => {
    const known = new Set(OPCODES.map((o) => o.code));
    expect([...VALUE_LIGHT_OPCODES].filter((code) => !known.has(code))).toEqual([]);
    expect(VALUE_LIGHT_OPCODES.has(OP.STACK_GLOBAL)).toBe(true);
    expect(VALUE_LIGHT_OPCODES.has(OP.INST)).toBe(false);
  });

  it.each((Object.keys(OP) as OpName[]).map((name) => [name, OP[name]] as const))(
    "%s: finished by the scanner exactly when it is in the set, same report as the machine",
    (name, code) => {
      const bytes = buildPickle(STREAM_OF[name]);
      expect(bytes.includes(code)).toBe(true);
      expect({ name, finished: scannerFinishes(bytes) }).toEqual({ name, finished: VALUE_LIGHT_OPCODES.has(code) });
      same(bytes);
    },
  );
});
