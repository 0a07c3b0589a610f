import { DEFAULT_PICKLE_LIMITS } from "../../src/limits";
import { analyzeBytes, analyzeOps, buildPickle, codesOf, concat, type PickleOp } from "./builders";

function times(n: number, op: PickleOp): PickleOp[] {
  return Array.from({ length: n }, () => op);
}

describe("pickle limits: at the bound accepted, one past it limit_exceeded", () => {
  const cases: [string, Partial<typeof DEFAULT_PICKLE_LIMITS>, PickleOp[], PickleOp[]][] = [
    // [limit, limits, ops at the limit, ops one past it]
    ["maxOpsPerStream", { maxOpsPerStream: 5 }, [["PROTO", 2], ["NONE"], ["POP"], ["NONE"]], [["PROTO", 2], ["NONE"], ["POP"], ["NONE"], ["POP"], ["NONE"]]],
    [
      "maxMemoEntries",
      { maxMemoEntries: 2 },
      [["PROTO", 4], ["NONE"], ["MEMOIZE"], ["MEMOIZE"], ["BINPUT", 1]],
      [["PROTO", 4], ["NONE"], ["MEMOIZE"], ["MEMOIZE"], ["MEMOIZE"]],
    ],
    ["maxStackDepth", { maxStackDepth: 3 }, [["PROTO", 2], ...times(3, ["NONE"]), ["TUPLE3"]], [["PROTO", 2], ...times(4, ["NONE"]), ["TUPLE3"], ["TUPLE2"]]],
    ["maxMarkDepth", { maxMarkDepth: 2 }, [["MARK"], ["MARK"], ["TUPLE"], ["TUPLE"]], [["MARK"], ["MARK"], ["MARK"], ["TUPLE"], ["TUPLE"], ["TUPLE"]]],
    [
      "maxDecodedStringBytes",
      { maxDecodedStringBytes: 6 },
      [["PROTO", 2], ["SHORT_BINUNICODE", "abc"], ["SHORT_BINUNICODE", "def"], ["TUPLE2"]],
      [["PROTO", 2], ["SHORT_BINUNICODE", "abc"], ["SHORT_BINUNICODE", "defg"], ["TUPLE2"]],
    ],
  ];
  it.each(cases)("%s", (_name, limits, atLimit, pastLimit) => {
    expect(analyzeOps([...atLimit, ["STOP"]], { limits }).node.findings).toEqual([]);
    const past = analyzeOps([...pastLimit, ["STOP"]], { limits });
    expect(codesOf(past)).toEqual(["limit_exceeded"]);
    expect(past.node.findings[0]?.severity).toBe("malformed");
  });

  it("maxMemoEntries counts entries, not PUTs to the same index", () => {
    expect(analyzeOps([["PROTO", 2], ["NONE"], ...times(10, ["BINPUT", 0]), ["STOP"]], { limits: { maxMemoEntries: 1 } }).node.findings).toEqual([]);
  });

  it("maxStreamsPerSequence", () => {
    const one = buildPickle([["PROTO", 2], ["NONE"], ["STOP"]]);
    expect(analyzeBytes(concat(one, one), { limits: { maxStreamsPerSequence: 2 } }).node.findings).toEqual([]);
    expect(codesOf(analyzeBytes(concat(one, one, one), { limits: { maxStreamsPerSequence: 2 } }))).toEqual(["limit_exceeded"]);
  });

  it("maxRetainedArgumentBytes keeps a string of exactly the bound, truncates one past it", () => {
    const at = analyzeOps([["PROTO", 2], ["SHORT_BINUNICODE", "abcd"], ["STOP"]], { limits: { maxRetainedArgumentBytes: 4 } });
    expect(at.values[0]).toEqual({ kind: "str", value: "abcd" });
    const past = analyzeOps([["PROTO", 2], ["SHORT_BINUNICODE", "abcde"], ["STOP"]], { limits: { maxRetainedArgumentBytes: 4 } });
    expect(past.values[0]).toEqual({ kind: "str", value: "abcd", truncated: true });
  });

  it("timeBudgetMs: checked every 65536 opcodes; an exhausted budget is limit_exceeded", () => {
    const ops: PickleOp[] = [["PROTO", 2], ...times(40000, ["NONE"]), ...times(40000, ["POP"]), ["NONE"], ["STOP"]];
    const bytes = buildPickle(ops);
    expect(analyzeBytes(bytes, { limits: { timeBudgetMs: 60_000 } }).node.findings).toEqual([]);
    expect(codesOf(analyzeBytes(bytes, { limits: { timeBudgetMs: -1 } }))).toEqual(["limit_exceeded"]);
  });

  it("a huge declared length is checked against the bytes that remain before anything is allocated", () => {
    const bytes = buildPickle([["PROTO", 4], { raw: new Uint8Array([0x8e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]) }]);
    expect(codesOf(analyzeBytes(bytes))).toEqual(["malformed_pickle"]);
  });

  it("findings before a limit stay in the report", () => {
    const a = analyzeOps([["PROTO", 2], ["GLOBAL", "os", "system"], ...times(10, ["NONE"]), ["STOP"]], { limits: { maxOpsPerStream: 5 } });
    expect(codesOf(a)).toEqual(["dangerous_global", "limit_exceeded"]);
  });

  it("defaults are the documented ones", () => {
    expect(DEFAULT_PICKLE_LIMITS.maxRetainedArgumentBytes).toBe(64 * 1024);
    expect(DEFAULT_PICKLE_LIMITS.maxMemoEntries).toBeGreaterThanOrEqual(1_000_000);
  });
});
