import fc from "fast-check";
import { parsePyLiteral, renderPyLiteral, type PyLiteral } from "../../src/formats/models/pyLiteral";
import { codeOf } from "../support/errors";

describe("parsePyLiteral", () => {
  it("parses a numpy v1 header with its padding", () => {
    const text = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + " ".repeat(10) + "\n";
    const v = parsePyLiteral(text);
    expect(v).toEqual({
      kind: "dict",
      entries: [
        [
          { kind: "str", value: "descr" },
          { kind: "str", value: "<f4" },
        ],
        [
          { kind: "str", value: "fortran_order" },
          { kind: "bool", value: false },
        ],
        [
          { kind: "str", value: "shape" },
          {
            kind: "tuple",
            items: [
              { kind: "int", value: 2n },
              { kind: "int", value: 3n },
            ],
          },
        ],
      ],
    });
  });

  it("distinguishes (x) grouping from (x,) tuples and () ", () => {
    expect(parsePyLiteral("(3)")).toEqual({ kind: "int", value: 3n });
    expect(parsePyLiteral("(3,)")).toEqual({ kind: "tuple", items: [{ kind: "int", value: 3n }] });
    expect(parsePyLiteral("()")).toEqual({ kind: "tuple", items: [] });
    expect(parsePyLiteral("[]")).toEqual({ kind: "list", items: [] });
    expect(parsePyLiteral("{}")).toEqual({ kind: "dict", entries: [] });
  });

  it("decodes string escapes and prefixes, None, signs, big ints", () => {
    expect(parsePyLiteral(String.raw`'a\'b\\c\x41\u00e9\U0001F600\n\101'`)).toEqual({ kind: "str", value: "a'b\\cAé😀\nA" });
    expect(parsePyLiteral(`u"x"`)).toEqual({ kind: "str", value: "x" });
    expect(parsePyLiteral("None")).toEqual({ kind: "none" });
    expect(parsePyLiteral("-5")).toEqual({ kind: "int", value: -5n });
    expect(parsePyLiteral("+5")).toEqual({ kind: "int", value: 5n });
    expect(parsePyLiteral("123456789012345678901234567890")).toEqual({ kind: "int", value: 123456789012345678901234567890n });
  });

  it("treats newlines inside brackets as whitespace, outside as the end", () => {
    expect(parsePyLiteral("[1,\n 2]\n")).toEqual({
      kind: "list",
      items: [
        { kind: "int", value: 1n },
        { kind: "int", value: 2n },
      ],
    });
    expect(() => parsePyLiteral("1\n2")).toFailWithCode("malformed_container");
    // Python: "unexpected indent".
    expect(() => parsePyLiteral("1\n ")).toFailWithCode("malformed_container");
    expect(parsePyLiteral("1  \n\n")).toEqual({ kind: "int", value: 1n });
  });

  it("accepts the Python 2 L suffix only when asked", () => {
    expect(parsePyLiteral("(3L, 4)", { allowLongSuffix: true })).toEqual({
      kind: "tuple",
      items: [
        { kind: "int", value: 3n },
        { kind: "int", value: 4n },
      ],
    });
    expect(() => parsePyLiteral("(3L, 4)")).toFailWithCode("malformed_container");
  });

  it.each([
    ["__import__('os').system('id')"],
    ["{'a': 1, 'a': 2}"],
    ["{True: 1, 1: 2}"],
    ["{[1]: 2}"],
    ["{1, 2}"],
    ["1.5"],
    ["1e3"],
    ["0x10"],
    ["1_000"],
    ["007"],
    ["--1"],
    ["-'a'"],
    ["'a' 'b'"],
    ["'''a'''"],
    ["'unterminated"],
    ["'bad \\q escape'"],
    ["b'bytes'"],
    ["(1, 2"],
    ["[1 2]"],
    ["{'a' 1}"],
    ["{'a': 1} # comment"],
    ["{'a': 1} x"],
    ["f(1)"],
    [""],
    ["(,)"],
  ])("rejects %j", (text) => {
    expect(() => parsePyLiteral(text)).toFailWithCode("malformed_container");
  });

  it("uses the caller's error code for syntax errors", () => {
    expect(() => parsePyLiteral("nope", { errorCode: "malformed_pickle" })).toFailWithCode("malformed_pickle");
  });

  it("bounds nesting depth: at the limit and one past it", () => {
    expect(() => parsePyLiteral("[".repeat(4) + "]".repeat(4), { maxDepth: 4 })).not.toThrow();
    expect(() => parsePyLiteral("[".repeat(5) + "]".repeat(5), { maxDepth: 4 })).toFailWithCode("limit_exceeded");
    expect(() => parsePyLiteral("(".repeat(100_000))).toFailWithCode("limit_exceeded");
  });

  it("bounds the number of values: at the limit and one past it", () => {
    // A list of 9 ints is 10 values.
    const list = `[${Array.from({ length: 9 }, (_, i) => String(i)).join(",")}]`;
    expect(() => parsePyLiteral(list, { maxNodes: 10 })).not.toThrow();
    expect(() => parsePyLiteral(list, { maxNodes: 9 })).toFailWithCode("limit_exceeded");
  });

  it("round-trips rendered literals and never throws anything but GatewayError", () => {
    const leaf: fc.Arbitrary<PyLiteral> = fc.oneof(
      fc.string({ maxLength: 8 }).map((value) => ({ kind: "str" as const, value })),
      fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }).map((value) => ({ kind: "int" as const, value })),
      fc.boolean().map((value) => ({ kind: "bool" as const, value })),
      fc.constant({ kind: "none" as const }),
    );
    const tree = fc.letrec<{ v: PyLiteral }>((tie) => ({
      v: fc.oneof(
        { depthSize: "small" },
        leaf,
        fc.array(tie("v"), { maxLength: 4 }).map((items) => ({ kind: "tuple" as const, items })),
        fc.array(tie("v"), { maxLength: 4 }).map((items) => ({ kind: "list" as const, items })),
        fc.uniqueArray(fc.string({ maxLength: 6 }), { maxLength: 4 }).chain((keys) =>
          fc.tuple(...keys.map(() => tie("v"))).map((vals) => ({
            kind: "dict" as const,
            entries: keys.map((k, i): [PyLiteral, PyLiteral] => [{ kind: "str", value: k }, vals[i] as PyLiteral]),
          })),
        ),
      ),
    })).v;
    fc.assert(
      fc.property(tree, (v) => {
        expect(parsePyLiteral(renderPyLiteral(v))).toEqual(v);
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        const code = codeOf(() => parsePyLiteral(s));
        expect(code === undefined || code === "malformed_container" || code === "limit_exceeded").toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
