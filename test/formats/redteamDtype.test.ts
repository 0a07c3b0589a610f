import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { inspectFile } from "../../src/formats/inspectFile";
import { ContentPolicySchema, DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import type { Finding } from "../../src/inspect/report";
import { checkNumpyDtype } from "../../src/pickle/numpyDtype";
import { NUMPY_FIXED_DTYPES, NUMPY_FLEXIBLE_DTYPES } from "../../src/pickle/numpyDtypeTable";
import { BufferSource } from "../../src/bytes/source";
import { inspectPickleSource } from "../../src/pickle/inspect";
import { analyzeOps, codesOf, verdictOf, type PickleOp } from "../pickle/builders";

/**
 * Red team, issue 10 family 2: forged numpy dtype states. numpy's dtype.__setstate__ takes the
 * flags, sizes and fields of the pickled state as written; an O8 dtype without the object flags
 * makes ndarray.__setstate__ / multiarray.scalar copy file bytes into object slots. Every forged
 * fixture (test/fixtures/generate.py, gen_dtype) uses only safe-set globals, so the import check
 * alone accepts the raw pickle, torch, npy/npz and MLflow ones.
 */

const FIXTURES = join(__dirname, "..", "fixtures");

interface Entry {
  file: string;
  expect: "accept" | "reject";
  code: string | null;
  policy?: Record<string, unknown>;
}

const manifest = (JSON.parse(readFileSync(join(FIXTURES, "manifest.json"), "utf8")) as Entry[]).filter((e) => basename(e.file).startsWith("dtype_"));

const show = (f: Finding): string => `${f.code}/${f.severity}: ${f.message}`;

describe("forged numpy dtype states in real files", () => {
  it("has forged fixtures for every container that holds pickles", () => {
    const rejected = manifest.filter((e) => e.expect === "reject").map((e) => e.file.split("/")[0]);
    expect(new Set(rejected)).toEqual(new Set(["pickle", "torch", "joblib", "numpy", "mlflow"]));
    expect(manifest.filter((e) => e.expect === "accept").length).toBeGreaterThanOrEqual(6);
  });

  it.each(manifest.map((e) => [e.file, e] as const))("%s", async (_file, entry) => {
    const policy = ContentPolicySchema.parse({ ...DEFAULT_CONTENT_POLICY, ...entry.policy });
    const report = await inspectFile(join(FIXTURES, entry.file), { policy, fileName: basename(entry.file) });
    const dtypeFindings = report.findings.filter((f) => f.code === "unsafe_dtype");
    if (entry.expect === "accept") {
      expect({ verdict: report.verdict, findings: report.findings.filter((f) => f.severity !== "innocuous").map(show) }).toEqual({
        verdict: "accept",
        findings: [],
      });
    } else {
      expect(report.verdict).toBe("reject");
      expect(entry.code).toBe("unsafe_dtype");
      // Dangerous, not malformed: the file is a well-formed pickle that numpy loads.
      expect(dtypeFindings.length > 0 ? dtypeFindings.every((f) => f.severity === "dangerous") : report.findings.map(show)).toBe(true);
    }
  });

  it("rejects the forged raw pickles through the value-light scanner's path too (it hands dtype BUILDs to the machine)", () => {
    for (const file of ["pickle/dtype_object_flags_cleared.pkl", "pickle/dtype_object_pointer_array.pkl", "pickle/dtype_struct_object_field_no_flags.pkl"]) {
      const node = inspectPickleSource(new BufferSource(readFileSync(join(FIXTURES, file))), file, { policy: DEFAULT_CONTENT_POLICY });
      expect({ file, codes: node.findings.map((f) => f.code) }).toEqual({ file, codes: ["unsafe_dtype"] });
    }
  });
});

/** numpy.dtype(<type string>, False, True) and, unless state is undefined, BUILD with the given state ops. */
function dtype(ts: string, state?: PickleOp[], via: "REDUCE" | "NEWOBJ" = "REDUCE"): PickleOp[] {
  const ops: PickleOp[] = [["GLOBAL", "numpy", "dtype"], ["SHORT_BINUNICODE", ts], ["NEWFALSE"], ["NEWTRUE"], ["TUPLE3"], [via]];
  if (state) ops.push(["MARK"], ...state, ["TUPLE"], ["BUILD"]);
  return ops;
}

/** A version 3 state: (3, byteorder, None, None, None, elsize, alignment, flags). */
function plainState(byteorder: string, elsize: number, alignment: number, flags: number): PickleOp[] {
  return [["BININT1", 3], ["SHORT_BINUNICODE", byteorder], ["NONE"], ["NONE"], ["NONE"], ["BININT", elsize], ["BININT", alignment], ["BININT", flags]];
}

const O8_STATE = plainState("|", -1, -1, 63);
const O8_NO_FLAGS = plainState("|", -1, -1, 0);

/** A struct state (3, '|', None, (names), {name: (dtype, offset)}, elsize, alignment, flags). */
function structState(fields: [string, PickleOp[], number][], elsize: number, alignment: number, flags: number): PickleOp[] {
  const ops: PickleOp[] = [
    ["BININT1", 3],
    ["SHORT_BINUNICODE", "|"],
    ["NONE"],
    ["MARK"],
    ...fields.map(([n]) => ["SHORT_BINUNICODE", n] as PickleOp),
    ["TUPLE"],
    ["EMPTY_DICT"],
    ["MARK"],
  ];
  for (const [n, d, offset] of fields) ops.push(["SHORT_BINUNICODE", n], ...d, ["BININT1", offset], ["TUPLE2"]);
  ops.push(["SETITEMS"], ["BININT", elsize], ["BININT", alignment], ["BININT", flags]);
  return ops;
}

/** numpy.core.multiarray.scalar(<dtype on the stack>, 8 bytes) */
const SCALAR_OF_TOP: PickleOp[] = [["SHORT_BINBYTES", new Uint8Array(8).fill(0x41)], ["TUPLE2"], ["REDUCE"]];
const SCALAR: PickleOp[] = [["GLOBAL", "numpy.core.multiarray", "scalar"]];

const run = (ops: PickleOp[]): ReturnType<typeof analyzeOps> => analyzeOps([["PROTO", 2], ...ops, ["STOP"]]);
const runFast = (ops: PickleOp[]): ReturnType<typeof analyzeOps> => analyzeOps([["PROTO", 2], ...ops, ["STOP"]], { valueFree: true });

describe("numpy dtype BUILD states (synthetic variants)", () => {
  it("accepts numpy's own object dtype state and rejects it without the object flags, on both analysis paths", () => {
    for (const analyze of [run, runFast]) {
      expect(verdictOf(analyze([...SCALAR, ...dtype("O8", O8_STATE), ...SCALAR_OF_TOP]))).toBe("accept");
      expect(codesOf(analyze([...SCALAR, ...dtype("O8", O8_NO_FLAGS), ...SCALAR_OF_TOP]))).toEqual(["unsafe_dtype"]);
    }
  });

  it.each([
    [
      "flags as a bool",
      plainState("|", -1, -1, 63)
        .slice(0, 7)
        .concat([["NEWTRUE"]] as PickleOp[]),
    ],
    ["a wrong byte order", plainState("<", -1, -1, 63)],
    ["a wrong elsize", plainState("|", 16, -1, 63)],
    ["a wrong alignment", plainState("|", -1, 8, 63)],
    ["flags with extra bits", plainState("|", -1, -1, 63 + 256)],
    ["a 7-item state (no flags: numpy still reads it)", plainState("|", -1, -1, 63).slice(0, 7)],
    ["version 2 (flags recomputed by numpy, but never written since 2011)", [["BININT1", 2], ...plainState("|", -1, -1, 63).slice(1)] as PickleOp[]],
  ])("rejects an O8 state with %s", (_name, state) => {
    expect(codesOf(run([...dtype("O8", state), ["POP"], ["NONE"]]))).toEqual(["unsafe_dtype"]);
  });

  it("checks a dtype made with NEWOBJ the same way", () => {
    expect(codesOf(run([...dtype("O8", O8_NO_FLAGS, "NEWOBJ"), ["POP"], ["NONE"]]))).toEqual(["unsafe_dtype"]);
  });

  it("rejects a dtype made by copyreg._reconstructor and then BUILT (numpy never writes it)", () => {
    const ops: PickleOp[] = [
      ["GLOBAL", "copyreg", "_reconstructor"],
      ["GLOBAL", "numpy", "dtype"],
      ["GLOBAL", "numpy", "dtype"],
      ["SHORT_BINUNICODE", "O8"],
      ["TUPLE3"],
      ["REDUCE"],
      ["MARK"],
      ...O8_NO_FLAGS,
      ["TUPLE"],
      ["BUILD"],
    ];
    for (const analyze of [run, runFast]) expect(codesOf(analyze([...SCALAR, ...ops, ...SCALAR_OF_TOP]))).toEqual(["unsafe_dtype"]);
  });

  it("rejects a BUILD after the dtype was used (plain V8 for a scalar, then rebuilt as a struct with an object field)", () => {
    const objectStruct = structState([["o", dtype("O8", O8_STATE), 0]], 8, 1, 27);
    const ops: PickleOp[] = [
      ...dtype("V8"),
      ["BINPUT", 0],
      ["POP"],
      ...SCALAR,
      ["BINGET", 0],
      ...SCALAR_OF_TOP,
      ["POP"],
      ["BINGET", 0],
      ["MARK"],
      ...objectStruct,
      ["TUPLE"],
      ["BUILD"],
    ];
    for (const analyze of [run, runFast]) expect(codesOf(analyze(ops))).toEqual(["unsafe_dtype"]);
  });

  /** State of `V8` with one field `x` (f8 at 0), its fields dict memoized at index 1 (what numpy writes, plus a BINPUT). */
  function structOfOneF8MemoizedFields(): PickleOp[] {
    return [
      ["BININT1", 3],
      ["SHORT_BINUNICODE", "|"],
      ["NONE"],
      ["SHORT_BINUNICODE", "x"],
      ["TUPLE1"],
      ["EMPTY_DICT"],
      ["BINPUT", 1],
      ["SHORT_BINUNICODE", "x"],
      ...dtype("f8", plainState("<", -1, -1, 0)),
      ["BININT1", 0],
      ["TUPLE2"],
      ["SETITEM"],
      ["BININT", 8],
      ["BININT", 1],
      ["BININT", 16],
    ];
  }

  it("rejects a change to a checked dtype's fields dict after its BUILD (numpy keeps the dict by reference)", () => {
    const state = structOfOneF8MemoizedFields();
    const plain: PickleOp[] = [...dtype("V8", state), ["POP"]];
    expect(verdictOf(run([...plain, ["NONE"]]))).toBe("accept");
    // After the BUILD: fields["x"] = (O8 dtype, 0), an object field under flags that say "no objects".
    const mutate: PickleOp[] = [["BINGET", 1], ["SHORT_BINUNICODE", "x"], ...dtype("O8", O8_STATE), ["BININT1", 0], ["TUPLE2"], ["SETITEM"], ["POP"], ["NONE"]];
    for (const analyze of [run, runFast]) expect(codesOf(analyze([...plain, ...mutate]))).toEqual(["unsafe_dtype"]);
    const mutateMany: PickleOp[] = [
      ["BINGET", 1],
      ["MARK"],
      ["SHORT_BINUNICODE", "x"],
      ...dtype("O8", O8_STATE),
      ["BININT1", 0],
      ["TUPLE2"],
      ["SETITEMS"],
      ["POP"],
      ["NONE"],
    ];
    expect(codesOf(run([...plain, ...mutateMany]))).toEqual(["unsafe_dtype"]);
  });

  it("still sees the change once the memo keeps the fields dict as a placeholder (past the retention budget)", () => {
    // 13 lists of 4096 items: past MAX_RETAINED_TOTAL, the memo stores dicts as unknown.
    const filler: PickleOp[] = [];
    for (let i = 0; i < 13; i++) filler.push(["EMPTY_LIST"], ["MARK"], ...Array.from({ length: 4096 }, (): PickleOp => ["BININT1", 1]), ["APPENDS"], ["POP"]);
    const state = structOfOneF8MemoizedFields();
    const mutate: PickleOp[] = [["BINGET", 1], ["SHORT_BINUNICODE", "x"], ...dtype("O8", O8_STATE), ["BININT1", 0], ["TUPLE2"], ["SETITEM"], ["POP"]];
    expect(verdictOf(run([...filler, ...dtype("V8", state), ["POP"], ["NONE"]]))).toBe("accept");
    expect(codesOf(run([...filler, ...dtype("V8", state), ["POP"], ...mutate, ["NONE"]]))).toEqual(["unsafe_dtype"]);
  });

  it("checks the dtype class reached through another module's attribute (np.dtype) as numpy.dtype", () => {
    const ops: PickleOp[] = [
      ["PROTO", 4],
      ["SHORT_BINUNICODE", "sklearn.utils.validation"],
      ["SHORT_BINUNICODE", "np.dtype"],
      ["STACK_GLOBAL"],
      ["SHORT_BINUNICODE", "O8"],
      ["NEWFALSE"],
      ["NEWTRUE"],
      ["TUPLE3"],
      ["REDUCE"],
      ["MARK"],
      ...O8_NO_FLAGS,
      ["TUPLE"],
      ["BUILD"],
      ["STOP"],
    ];
    for (const valueFree of [false, true]) expect(codesOf(analyzeOps(ops, { valueFree, allow: ["sklearn.*"] }))).toContain("unsafe_dtype");
  });

  it("rejects a second BUILD on the same dtype", () => {
    const ops: PickleOp[] = [
      ...dtype("V8", plainState("|", 8, 1, 0)),
      ["MARK"],
      ...structState([["o", dtype("O8", O8_STATE), 0]], 8, 1, 27),
      ["TUPLE"],
      ["BUILD"],
    ];
    expect(codesOf(run(ops))).toEqual(["unsafe_dtype"]);
  });

  it("accepts numpy's struct states (unaligned 16 / 27 with an object field; aligned -112 as numpy 1 writes, 144 as numpy 2 does)", () => {
    const f8 = (): PickleOp[] => dtype("f8", plainState("<", -1, -1, 0));
    const u1 = (): PickleOp[] => dtype("u1", plainState("|", -1, -1, 0));
    expect(
      verdictOf(
        run(
          dtype(
            "V16",
            structState(
              [
                ["o", dtype("O8", O8_STATE), 0],
                ["x", f8(), 8],
              ],
              16,
              1,
              27,
            ),
          ),
        ),
      ),
    ).toBe("accept");
    expect(
      verdictOf(
        run(
          dtype(
            "V16",
            structState(
              [
                ["a", u1(), 0],
                ["x", f8(), 8],
              ],
              16,
              8,
              -112,
            ),
          ),
        ),
      ),
    ).toBe("accept");
    expect(
      verdictOf(
        run(
          dtype(
            "V16",
            structState(
              [
                ["a", u1(), 0],
                ["x", f8(), 8],
              ],
              16,
              8,
              144,
            ),
          ),
        ),
      ),
    ).toBe("accept");
  });

  it.each([
    ["an object field without the struct's object flags", "V8", structState([["o", dtype("O8", O8_STATE), 0]], 8, 1, 16)],
    ["an object field whose own dtype lacks the flags", "V8", structState([["o", dtype("O8", O8_NO_FLAGS), 0]], 8, 1, 27)],
    [
      "a field overlapping an object field",
      "V12",
      structState(
        [
          ["o", dtype("O8", O8_STATE), 0],
          ["x", dtype("f8", plainState("<", -1, -1, 0)), 4],
        ],
        12,
        1,
        27,
      ),
    ],
    ["a field past the item", "V8", structState([["x", dtype("f8", plainState("<", -1, -1, 0)), 4]], 8, 1, 16)],
    ["an aligned struct with alignment 1", "V8", structState([["x", dtype("f8", plainState("<", -1, -1, 0)), 0]], 8, 1, -112)],
    ["an elsize other than its type string's", "V8", structState([["x", dtype("f8", plainState("<", -1, -1, 0)), 0]], 16, 1, 16)],
  ])("rejects a struct with %s", (_name, ts, state) => {
    expect(codesOf(run([...dtype(ts, state), ["POP"], ["NONE"]]))).toContain("unsafe_dtype");
  });

  it("rejects a subarray of objects without the object flags and accepts it with them", () => {
    const sub = (flags: number): PickleOp[] => [
      ["BININT1", 3],
      ["SHORT_BINUNICODE", "|"],
      ...dtype("O8", O8_STATE),
      ["MARK"],
      ["BININT1", 2],
      ["TUPLE"],
      ["TUPLE2"],
      ["NONE"],
      ["NONE"],
      ["BININT", 16],
      ["BININT", 8],
      ["BININT", flags],
    ];
    expect(codesOf(run(dtype("V16", sub(0))))).toEqual(["unsafe_dtype"]);
    expect(verdictOf(run(dtype("V16", sub(63))))).toBe("accept");
  });
});

describe("the generated table", () => {
  it("holds numpy's object flags and sizes", () => {
    expect(NUMPY_FIXED_DTYPES.O8).toMatchObject({ byteOrders: ["|"], itemsize: 8, flags: 63, version: 3 });
    expect(NUMPY_FIXED_DTYPES.M8).toMatchObject({ version: 4 });
    expect(NUMPY_FLEXIBLE_DTYPES.U).toMatchObject({ unit: 4, alignment: 4, flags: 8 });
  });

  it("describes a dtype without state as numpy makes it from its arguments", () => {
    const bare = {
      kind: "object",
      callable: { kind: "global", module: "numpy", name: "dtype" },
      args: {
        kind: "tuple",
        items: [
          { kind: "str", value: "O8" },
          { kind: "bool", value: false },
          { kind: "bool", value: true },
        ],
      },
    } as const;
    expect(checkNumpyDtype({ ...bare, args: { ...bare.args, items: [...bare.args.items] } })).toMatchObject({ itemsize: 8, hasObject: true });
  });
});
