import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { Cursor } from "../../src/bytes/cursor";
import { createJoblibReader } from "../../src/formats/models/joblib";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import type { PickleLimits } from "../../src/limits";
import { analyzePickle } from "../../src/pickle/analyzer";
import { makePicklePolicy } from "../../src/pickle/policy";
import { analyzeBytes, buildPickle, callOf, concat, framed, type PickleOp } from "./builders";

/**
 * The value-light scanner (src/pickle/fast.ts) is an accelerator: with `valueFree` the analysis
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
