import { readFileSync } from "node:fs";
import { join } from "node:path";
import { MAX_MEMO_VALUES_KEPT, type PickleLimits } from "../../src/limits";
import { PickleMachine } from "../../src/pickle/machine";
import { analyzeBytes, buildPickle, callOf, codesOf, concat, framed, type PickleOp } from "./builders";

/**
 * Issue 10: the memo index rule, and limits reached by the value-light scanner reported by the
 * scanner itself (the full machine never re-runs a stream built to reach a limit), with the
 * machine's own finding. Inputs are built at each limit and one opcode past it, under lowered
 * limits; the same shapes at the default limits are measured by bench/pickleMemory.ts.
 */

const FIXTURES = join(__dirname, "..", "fixtures", "pickle");
const str = (s: string): PickleOp => ["SHORT_BINUNICODE", s];
const times = (n: number, ...ops: PickleOp[]): PickleOp[] => Array.from({ length: n }, () => ops).flat();

/** Runs of the full machine during `f` (PickleMachine.run is entered once per stream it analyzes). */
function machineRuns<T>(f: () => T): { result: T; runs: number } {
  const spy = jest.spyOn(PickleMachine.prototype, "run");
  try {
    const result = f();
    return { result, runs: spy.mock.calls.length };
  } finally {
    spy.mockRestore();
  }
}

/**
 * Analyze with the value-light scanner (valueFree) and with the full machine only; the reports
 * must be identical. Returns the scanner-side analysis and how many streams the machine re-ran.
 */
function scanned(bytes: Uint8Array, limits: Partial<PickleLimits> = {}): { codes: string[]; machineRuns: number; offset: number | undefined } {
  const opts = { limits: { timeBudgetMs: 60_000, ...limits } };
  const full = analyzeBytes(bytes, opts);
  const { result: fast, runs } = machineRuns(() => analyzeBytes(bytes, { ...opts, valueFree: true }));
  expect(JSON.stringify(fast.node)).toBe(JSON.stringify(full.node));
  expect(fast.end).toBe(full.end);
  expect(fast.ops).toBe(full.ops);
  const ending = fast.node.findings.find((f) => f.severity === "malformed");
  return { codes: codesOf(fast), machineRuns: runs, offset: ending?.offset };
}

describe("memo index rule: a PUT index beyond the opcodes before it is limit_exceeded", () => {
  it("the real fixture: LONG_BINPUT 0xffffffff (the C unpickler would allocate a 64 GiB memo table)", () => {
    const r = scanned(new Uint8Array(readFileSync(join(FIXTURES, "memo_index_far.pkl"))));
    expect(r.codes).toEqual(["limit_exceeded"]);
    expect(r.offset).toBe(3);
    expect(r.machineRuns).toBe(0);
  });

  it("admits what a real Pickler writes: two dump() calls of one Pickler number the second memo on", () => {
    const r = scanned(new Uint8Array(readFileSync(join(FIXTURES, "memo_index_reused_pickler.pkl"))));
    expect(r.codes).toEqual([]);
    expect(r.machineRuns).toBe(0);
  });

  it.each([
    ["BINPUT", (i: number): PickleOp => ["BINPUT", i]],
    ["LONG_BINPUT", (i: number): PickleOp => ["LONG_BINPUT", i]],
  ])("%s: index = opcodes before it accepted, one more rejected, by the scanner and the machine alike", (_name, put) => {
    // PROTO, 4 x (NONE, POP), NONE: 10 opcodes before the PUT.
    const ops = (i: number): PickleOp[] => [["PROTO", 4], ...times(4, ["NONE"], ["POP"]), ["NONE"], put(i), ["STOP"]];
    const at = scanned(buildPickle(ops(10)));
    expect(at.codes).toEqual([]);
    expect(at.machineRuns).toBe(0);
    const past = scanned(buildPickle(ops(11)));
    expect(past.codes).toEqual(["limit_exceeded"]);
    expect(past.machineRuns).toBe(0);
  });

  it("PUT (protocol 0 text) goes through the machine with the same rule", () => {
    const ops = (i: number): PickleOp[] => [["NONE"], ["POP"], ["NONE"], ["PUT", i], ["STOP"]];
    expect(scanned(buildPickle(ops(3))).codes).toEqual([]);
    expect(scanned(buildPickle(ops(4))).codes).toEqual(["limit_exceeded"]);
  });

  it("spans the pickles of a sequence (opcodes of earlier pickles count)", () => {
    const first = buildPickle([["PROTO", 2], ...times(10, ["NONE"], ["POP"]), ["NONE"], ["STOP"]]); // 23 opcodes
    const second = (i: number): Uint8Array => buildPickle([["PROTO", 2], ["NONE"], ["BINPUT", i], ["STOP"]]);
    expect(scanned(concat(first, second(25))).codes).toEqual([]);
    expect(scanned(concat(first, second(26))).codes).toEqual(["limit_exceeded"]);
    // Alone, the second pickle may not use that index.
    expect(scanned(second(25)).codes).toEqual(["limit_exceeded"]);
  });

  it("MEMOIZE never breaks it (its index is len(memo))", () => {
    expect(scanned(buildPickle([["PROTO", 4], ["NONE"], ...times(50, ["MEMOIZE"]), ["STOP"]])).codes).toEqual([]);
  });
});

describe("the value-light scanner reports the limits it reaches (the machine does not re-run the stream)", () => {
  /** [limit, limits, ops at the limit, ops one past it] (PROTO 4 first, STOP appended). */
  const cases: [string, Partial<PickleLimits>, PickleOp[], PickleOp[]][] = [
    ["maxMemoEntries", { maxMemoEntries: 100 }, times(100, str("abc"), ["MEMOIZE"], ["POP"]), times(101, str("abc"), ["MEMOIZE"], ["POP"])],
    [
      "maxMemoEntries (BINPUT)",
      { maxMemoEntries: 3 },
      [["NONE"], ["BINPUT", 0], ["BINPUT", 1], ["BINPUT", 2], ["BINPUT", 2]],
      [["NONE"], ["BINPUT", 0], ["BINPUT", 1], ["BINPUT", 2], ["BINPUT", 3]],
    ],
    // PROTO, 200 opcodes, NONE, STOP: 203.
    ["maxOpsPerStream", { maxOpsPerStream: 203 }, times(100, ["NONE"], ["POP"]), [...times(100, ["NONE"], ["POP"]), ["NONE"]]],
    ["maxStackDepth", { maxStackDepth: 300 }, [...times(299, ["NONE"]), ["MARK"], ["POP_MARK"]], [...times(300, ["NONE"])]],
    [
      "maxMarkDepth",
      { maxMarkDepth: 40 },
      [...times(40, ["MARK"]), ["NONE"], ...times(40, ["TUPLE"])],
      [...times(41, ["MARK"]), ["NONE"], ...times(41, ["TUPLE"])],
    ],
    ["maxDecodedStringBytes", { maxDecodedStringBytes: 300 }, times(100, str("abc"), ["POP"]), times(101, str("abc"), ["POP"])],
    [
      "maxDecodedStringBytes (bytes)",
      { maxDecodedStringBytes: 300 },
      times(100, ["SHORT_BINBYTES", "abc"], ["POP"]),
      times(101, ["SHORT_BINBYTES", "abc"], ["POP"]),
    ],
    [
      "maxDecodedStringBytes (GLOBAL)",
      { maxDecodedStringBytes: 24 },
      [["GLOBAL", "collections", "OrderedDict"], ["POP"]],
      [["GLOBAL", "collections", "OrderedDictXYZ"], ["POP"]],
    ],
  ];
  it.each(cases)("%s: at the limit accepted, one past it limit_exceeded, both without the machine", (_name, limits, atLimit, pastLimit) => {
    const build = (ops: PickleOp[]): Uint8Array => buildPickle([["PROTO", 4], ...ops, ["NONE"], ["STOP"]]);
    const at = scanned(build(atLimit), limits);
    expect(at.codes).toEqual([]);
    expect(at.machineRuns).toBe(0);
    const past = scanned(build(pastLimit), limits);
    expect(past.codes).toEqual(["limit_exceeded"]);
    expect(past.machineRuns).toBe(0);
  });

  it("keeps the imports and calls before the limit, counted as the machine counts them", () => {
    const ops: PickleOp[] = [
      ["PROTO", 4],
      ...callOf("os", "system", "id", "STACK_GLOBAL"),
      ["POP"],
      ...callOf("collections", "OrderedDict", "x"),
      ["POP"],
      ...times(20, ["NONE"]),
      ["STOP"],
    ];
    const r = scanned(buildPickle(ops), { maxStackDepth: 10 });
    expect(r.codes).toEqual(["dangerous_global", "limit_exceeded"]);
    expect(r.machineRuns).toBe(0);
  });

  it("inside frames, and in a later pickle of a sequence (the message names the stream's bytes after STOP)", () => {
    const body: PickleOp[] = [...times(30, str("abc"), ["MEMOIZE"], ["POP"]), ["NONE"], ["STOP"]];
    expect(scanned(buildPickle([["PROTO", 4], ...framed(body)]), { maxMemoEntries: 29 }).codes).toEqual(["limit_exceeded"]);
    const one = buildPickle([["PROTO", 4], ["NONE"], ["STOP"]]);
    const r = scanned(concat(one, buildPickle([["MARK"], ["NONE"], ["TUPLE"], ["STOP"]])), { maxMarkDepth: 0 });
    expect(r.codes).toEqual(["limit_exceeded"]);
    expect(r.machineRuns).toBe(0);
  });

  it("a malformed opcode that also reaches a limit stays malformed_pickle, as in the machine", () => {
    // A string that crosses the end of its frame and exceeds maxDecodedStringBytes.
    const crossing = buildPickle([["PROTO", 4], ["FRAME", 4], str("abcdef"), ["STOP"]]);
    expect(scanned(crossing, { maxDecodedStringBytes: 2 }).codes).toEqual(["malformed_pickle"]);
    // The opcode after maxOpsPerStream is unknown: the machine's reader fails on it first.
    const unknown = buildPickle([["PROTO", 4], ["NONE"], ["POP"], { raw: "\xff" }]);
    expect(scanned(unknown, { maxOpsPerStream: 3 }).codes).toEqual(["malformed_pickle"]);
    // A BINPUT past the rule whose argument crosses the frame end.
    const putCrossing = buildPickle([["PROTO", 4], ["FRAME", 2], ["NONE"], { raw: Uint8Array.from([0x71, 0x09]) }, ["STOP"]]);
    expect(scanned(putCrossing).codes).toEqual(["malformed_pickle"]);
  });
});

describe("the machine's memo keeps values up to MAX_MEMO_VALUES_KEPT per stream, then placeholders", () => {
  it("a list memoized within the budget is GET as a list, one past it as unknown; imports stay exact; strings fail closed", () => {
    // Built directly (not with buildPickle) to keep a 2M-entry pickle cheap: EMPTY_LIST, MEMOIZE, POP.
    const unit = Uint8Array.from([0x5d, 0x94, 0x30]);
    // Memo 0: collections.OrderedDict (a kept value); 1, 2: "os", "system" (kept as offsets, not counted).
    const head = buildPickle([
      ["PROTO", 4],
      ["GLOBAL", "collections", "OrderedDict"],
      ["MEMOIZE"],
      ["POP"],
      str("os"),
      ["MEMOIZE"],
      ["POP"],
      str("system"),
      ["MEMOIZE"],
      ["POP"],
    ]);
    const flood = new Uint8Array(unit.length * (MAX_MEMO_VALUES_KEPT - 1)); // memo 3 .. MAX + 1
    for (let i = 0; i < flood.length; i += unit.length) flood.set(unit, i);
    const u32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
    const get = (index: number): Uint8Array => Uint8Array.from([0x6a, ...u32(index)]); // LONG_BINGET
    const tail = concat(
      Uint8Array.from([0x5d, 0x94, 0x30]), // memo MAX + 2: a list past the budget
      Uint8Array.from([0x68, 0x01, 0x94, 0x30]), // BINGET 1 ("os" decoded again), MEMOIZE (memo MAX + 3), POP
      Uint8Array.from([0x28]), // MARK
      get(MAX_MEMO_VALUES_KEPT + 1), // the last list kept
      get(MAX_MEMO_VALUES_KEPT + 2), // the first placeholder
      Uint8Array.from([0x68, 0x00, 0x29, 0x52]), // BINGET 0 (the import), EMPTY_TUPLE, REDUCE
      get(MAX_MEMO_VALUES_KEPT + 3), // "os" memoized again past the budget: unknown
      Uint8Array.from([0x68, 0x02, 0x93]), // BINGET 2 ("system"), STACK_GLOBAL
      Uint8Array.from([0x74, 0x2e]), // TUPLE, STOP
    );
    const a = analyzeBytes(concat(head, flood, tail), { limits: { timeBudgetMs: 60_000 } });
    expect(codesOf(a)).toEqual(["unresolved_global"]);
    const v = a.values[0];
    expect(v?.kind === "tuple" ? v.items.map((x) => x.kind) : undefined).toEqual(["list", "unknown", "object", "unknown"]);
    expect(a.node.details?.calls).toEqual([expect.objectContaining({ callable: "collections.OrderedDict", count: 1 })]);
  });
});
