import fc from "fast-check";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BufferSource, type ByteSource } from "../../src/bytes/source";
import type { FormatContext } from "../../src/formats/context";
import { inspectCompressed } from "../../src/formats/codecs/decompress";
import { checkSkippedRegion } from "../../src/formats/models/joblib";
import { inspectPickleFile, inspectPickleFileSource, startsWithWellFormedPickleOrJoblib } from "../../src/formats/models/pickleFile";
import { DEFAULT_CONTENT_POLICY, type ContentPolicy } from "../../src/inspect/policy";
import { summarize, type InspectionNode, type InspectionReport } from "../../src/inspect/report";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS } from "../../src/limits";
import { makePicklePolicy } from "../../src/pickle/policy";
import { buildPickle, concat, type PickleOp } from "../pickle/builders";

// ---- a joblib dump builder: the bytes NumpyPickler writes, knob by knob ------------------------

interface DtypeSpec {
  type: string;
  byteorder?: string;
  elsize?: number;
  flags?: number;
  alignment?: number;
  /** Structured dtype: names and (dtype, offset) fields. */
  fields?: [string, DtypeSpec, number][];
  /** Omit the BUILD state entirely. */
  noState?: boolean;
  /** Replace the callable (numpy.dtype). */
  callable?: [string, string];
  args?: PickleOp[];
}

interface ArraySpec {
  dtype: DtypeSpec | string;
  shape: number[];
  order?: string;
  /** Raw array bytes; zeros of the right size by default. */
  data?: Uint8Array;
  /** 16 by default; null writes None; "absent" leaves the field out (joblib <= 1.1). */
  alignment?: number | null | "absent";
  /** Override the padding length byte and bytes. */
  padding?: number[];
  /** For object arrays: the nested pickle written after the wrapper. */
  nested?: Uint8Array;
  extraFields?: PickleOp[];
  /** Make the wrapper with a call (REDUCE) instead of NEWOBJ (). */
  createdWithArgs?: boolean;
  wrapperClass?: [string, string];
  allowMmap?: boolean;
  omit?: string[];
}

function itemsizeOf(type: string): number {
  const m = /^([a-zA-Z])(\d+)/.exec(type);
  if (!m) return 8;
  const n = Number(m[2]);
  return m[1] === "U" ? 4 * n : n;
}

function isFlexible(type: string): boolean {
  return /^[SUV]/.test(type);
}

/** The flags numpy writes: 63 for O8, 8 (NEEDS_INIT) for U, 16 | the fields' NPY_FROM_FIELDS bits for structs. */
function defaultFlags(spec: DtypeSpec): number {
  if (spec.fields) return spec.fields.reduce((f, [, d]) => f | (defaultFlags(d) & 0x1b), 16);
  return spec.type.startsWith("O") ? 63 : spec.type.startsWith("U") ? 8 : 0;
}

function dtypeOps(spec: DtypeSpec): PickleOp[] {
  const [module, name] = spec.callable ?? ["numpy", "dtype"];
  const ops: PickleOp[] = [["GLOBAL", module, name]];
  ops.push(...(spec.args ?? ([["SHORT_BINUNICODE", spec.type], ["NEWFALSE"], ["NEWTRUE"], ["TUPLE3"]] as PickleOp[])));
  ops.push(["REDUCE"]);
  if (spec.noState === true) return ops;
  const flags = spec.flags ?? defaultFlags(spec);
  ops.push(["MARK"], ["BININT1", 3], ["SHORT_BINUNICODE", spec.byteorder ?? (/^([SVO]|[biu]1$)/.test(spec.type) ? "|" : "<")], ["NONE"]);
  if (spec.fields) {
    ops.push(["MARK"], ...spec.fields.map(([n]) => ["SHORT_BINUNICODE", n] as PickleOp), ["TUPLE"]);
    ops.push(["EMPTY_DICT"], ["MARK"]);
    for (const [n, f, offset] of spec.fields) ops.push(["SHORT_BINUNICODE", n], ...dtypeOps(f), ["BININT1", offset], ["TUPLE2"]);
    ops.push(["SETITEMS"]);
  } else ops.push(["NONE"], ["NONE"]);
  // What numpy writes (scripts/gen_numpy_dtype_table.py): alignment 1 for S/V and structs, 4 for U, -1 for fixed types.
  const alignment = spec.alignment ?? (spec.type.startsWith("U") ? 4 : isFlexible(spec.type) ? 1 : -1);
  ops.push(["BININT", spec.elsize ?? (isFlexible(spec.type) ? itemsizeOf(spec.type) : -1)], ["BININT", alignment], ["BININT1", flags], ["TUPLE"], ["BUILD"]);
  return ops;
}

function wrapperOps(spec: ArraySpec): PickleOp[] {
  const dtype = typeof spec.dtype === "string" ? { type: spec.dtype } : spec.dtype;
  const [module, name] = spec.wrapperClass ?? ["joblib.numpy_pickle", "NumpyArrayWrapper"];
  const ops: PickleOp[] = [["SHORT_BINUNICODE", module], ["SHORT_BINUNICODE", name], ["STACK_GLOBAL"]];
  if (spec.createdWithArgs === true) ops.push(["GLOBAL", "numpy", "ndarray"], ["TUPLE1"], ["REDUCE"]);
  else ops.push(["EMPTY_TUPLE"], ["NEWOBJ"]);
  const omit = new Set(spec.omit ?? []);
  const field = (key: string, value: PickleOp[]): PickleOp[] => (omit.has(key) ? [] : [["SHORT_BINUNICODE", key], ...value]);
  ops.push(["EMPTY_DICT"], ["MARK"]);
  ops.push(...field("subclass", [["GLOBAL", "numpy", "ndarray"]]));
  ops.push(...field("shape", [["MARK"], ...spec.shape.map((d) => ["BININT", d] as PickleOp), ["TUPLE"]]));
  ops.push(...field("order", [["SHORT_BINUNICODE", spec.order ?? "C"]]));
  ops.push(...field("dtype", dtypeOps(dtype)));
  ops.push(...field("allow_mmap", [[spec.allowMmap === true ? "NEWTRUE" : "NEWFALSE"]]));
  const alignment = spec.alignment === undefined ? 16 : spec.alignment;
  if (alignment !== "absent") ops.push(["SHORT_BINUNICODE", "numpy_array_alignment_bytes"], alignment === null ? ["NONE"] : ["BININT1", alignment]);
  ops.push(...(spec.extraFields ?? []), ["SETITEMS"], ["BUILD"]);
  return ops;
}

/** A protocol 4 joblib dump of a list of arrays (optionally followed by more ops before STOP). */
function buildJoblib(arrays: ArraySpec[], after: PickleOp[] = [], proto = 4): Uint8Array {
  let out = buildPickle([["PROTO", proto], ["EMPTY_LIST"]]);
  for (const spec of arrays) {
    out = concat(out, buildPickle(wrapperOps(spec)));
    const dtype = typeof spec.dtype === "string" ? { type: spec.dtype } : spec.dtype;
    if (spec.nested) {
      out = concat(out, spec.nested);
    } else {
      const alignment = spec.alignment === undefined ? 16 : spec.alignment;
      if (typeof alignment === "number") {
        const p = alignment - ((out.length + 1) % alignment);
        out = concat(out, Uint8Array.from(spec.padding ?? [p, ...new Array<number>(p).fill(0xff)]));
      }
      const count = spec.shape.reduce((a, b) => a * b, 1);
      out = concat(out, spec.data ?? new Uint8Array(count * itemsizeOf(dtype.type)));
    }
    out = concat(out, buildPickle([["APPEND"]]));
  }
  return concat(out, buildPickle([...after, ["STOP"]]));
}

const f64 = (...values: number[]): Uint8Array => new Uint8Array(new Float64Array(values).buffer);

function inspect(bytes: Uint8Array, policy: Partial<ContentPolicy> = {}, maxArrays?: number): { node: InspectionNode; report: InspectionReport } {
  const node = inspectPickleFileSource(new BufferSource(bytes), "dump.joblib", {
    policy: makePicklePolicy({ ...DEFAULT_CONTENT_POLICY, ...policy }),
    ...(maxArrays === undefined ? {} : { maxArrays }),
  });
  return { node, report: summarize(node, node.format ?? "pickle") };
}

const codes = (r: InspectionReport): string[] => [...new Set(r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code))].sort();

// ---- tests -----------------------------------------------------------------------------------

describe("joblib dumps built byte by byte", () => {
  it("skips every array's padding and bytes exactly and accepts benign dumps", () => {
    const bytes = buildJoblib([
      { dtype: "f8", shape: [3, 4], data: f64(...Array.from({ length: 12 }, (_, i) => i)) },
      { dtype: "i4", shape: [10] },
      { dtype: "f4", shape: [2, 3], order: "F" },
      { dtype: "f8", shape: [] },
      { dtype: "f8", shape: [0, 3] },
      { dtype: "b1", shape: [2] },
      { dtype: { type: "f4", byteorder: ">" }, shape: [3] },
      { dtype: "U3", shape: [2] },
      { dtype: "S2", shape: [2] },
      { dtype: "c16", shape: [1] },
      { dtype: "V10", shape: [1] },
      {
        dtype: {
          type: "V8",
          fields: [
            ["x", { type: "i4" }, 0],
            ["y", { type: "f4" }, 4],
          ],
        },
        shape: [2],
      },
    ]);
    const { node, report } = inspect(bytes);
    expect(report.findings).toEqual([]);
    expect(report.verdict).toBe("accept");
    expect(node.format).toBe("joblib");
    const arrays = node.children.filter((c) => c.kind === "array").map((c) => c.details);
    expect(arrays).toHaveLength(12);
    expect(arrays[0]).toMatchObject({ dtype: "<f8", shape: ["3", "4"], dataBytes: 96 });
    expect(arrays[2]).toMatchObject({ order: "F", dataBytes: 24 });
    expect(arrays[3]).toMatchObject({ shape: [], dataBytes: 8 });
    expect(arrays[4]).toMatchObject({ dataBytes: 0 });
    expect(arrays[6]).toMatchObject({ dtype: ">f4" });
    expect(arrays[7]).toMatchObject({ dtype: "<U3", dataBytes: 24 });
    expect(arrays[11]).toMatchObject({ dtype: "V8", dataBytes: 16 });
    for (const a of arrays) expect((a?.paddingBytes as number) >= 2 && (a?.paddingBytes as number) <= 17).toBe(true);
  });

  it("reads dumps without alignment (joblib <= 1.1, or None) and protocol 2 dumps", () => {
    for (const alignment of ["absent", null] as const) {
      const { node, report } = inspect(buildJoblib([{ dtype: "f8", shape: [4], data: f64(1, 2, 3, 4), alignment }], [], 2));
      expect(report.verdict).toBe("accept");
      expect(node.children[0]?.details).toMatchObject({ paddingBytes: 0, dataBytes: 32 });
    }
  });

  it("keeps parsing after the array bytes: a payload after an array is found", () => {
    const bytes = buildJoblib([{ dtype: "f8", shape: [2] }], [["GLOBAL", "os", "system"], ["POP"]]);
    const { report } = inspect(bytes);
    expect(codes(report)).toEqual(["dangerous_global"]);
    expect(report.findings[0]?.global).toBe("os.system");
  });

  it("reads a plain pickle the same as the pickle analyzer", () => {
    const { node, report } = inspect(buildPickle([["PROTO", 4], ["BININT1", 7], ["STOP"]]));
    expect(node.format).toBe("pickle");
    expect(report.verdict).toBe("accept");
  });

  it("does not read opcodes out of the array bytes joblib skips", () => {
    // The array data is a complete pickle payload; joblib reads it as 27 uint8 values.
    const payload = buildPickle([["GLOBAL", "os", "system"], ["SHORT_BINUNICODE", "id"], ["TUPLE1"], ["REDUCE"], ["STOP"]]);
    const { report } = inspect(buildJoblib([{ dtype: `u1`, shape: [payload.length], data: payload }]));
    // With alignment, pickle.load stops at the padding-length byte (no opcode): nothing runs.
    expect(report.verdict).toBe("accept");
    expect(report.imports.map((i) => i.name)).not.toContain("system");
  });

  describe("loader disagreement (joblib.load vs pickle.load)", () => {
    const payload = buildPickle([["GLOBAL", "os", "system"], ["SHORT_BINUNICODE", "id"], ["TUPLE1"], ["REDUCE"], ["STOP"]]);

    it("flags array bytes pickle.load would run as opcodes (no alignment padding before them)", () => {
      const { report } = inspect(buildJoblib([{ dtype: "u1", shape: [payload.length], data: payload, alignment: "absent" }]));
      expect(codes(report)).toEqual(["polyglot"]);
      expect(report.findings[0]?.severity).toBe("dangerous");
    });

    it("flags array bytes that are valid opcodes to the end of the region", () => {
      const nones = new Uint8Array(64).fill(0x4e); // NONE NONE ...: pickle.load would go on into the next bytes
      expect(codes(inspect(buildJoblib([{ dtype: "u1", shape: [64], data: nones, alignment: null }])).report)).toEqual(["polyglot"]);
      const stopped = concat(Uint8Array.from([0x4e, 0x2e]), new Uint8Array(6)); // NONE STOP: pickle.load returns
      expect(inspect(buildJoblib([{ dtype: "u1", shape: [8], data: stopped, alignment: null }])).report.verdict).toBe("accept");
    });

    it("accepts ordinary array data without padding (it is no opcode stream)", () => {
      const { report } = inspect(buildJoblib([{ dtype: "f8", shape: [3], data: f64(1.5, -2, 1e300), alignment: "absent" }]));
      expect(report.verdict).toBe("accept");
    });

    it("walks regions with a bound", () => {
      const source = new BufferSource(new Uint8Array(1_200_000).fill(0x4e));
      expect(checkSkippedRegion(source, 0, 1_100_000)).toMatch(/more than/);
      expect(checkSkippedRegion(source, 5, 5)).toBeUndefined();
      expect(checkSkippedRegion(new BufferSource(Uint8Array.from([0x0e, 0x63])), 0, 2)).toBeUndefined();
    });
  });

  describe("object arrays", () => {
    const nestedOf = (ops: PickleOp[]): Uint8Array => buildPickle([["PROTO", 2], ...ops, ["STOP"]]);
    const benignNested = nestedOf([
      ["GLOBAL", "numpy.core.multiarray", "_reconstruct"],
      ["BINPUT", 0],
      ["GLOBAL", "numpy", "ndarray"],
      ["BININT1", 0],
      ["TUPLE1"],
      ["SHORT_BINBYTES", "b"],
      ["TUPLE3"],
      ["REDUCE"],
      ["BINPUT", 1],
      ["POP"],
      ["MARK"],
      ["BININT1", 1],
      ["SHORT_BINUNICODE", "a"],
      ["LIST"],
    ]);

    it("scans the nested pickle and resumes after it", () => {
      const { node, report } = inspect(
        buildJoblib([
          { dtype: "O8", shape: [1], nested: benignNested },
          { dtype: "f8", shape: [2] },
        ]),
      );
      expect(report.findings).toEqual([]);
      const arrays = node.children.filter((c) => c.kind === "array");
      expect(arrays[0]?.details).toMatchObject({ objectArray: true, dataBytes: benignNested.length, paddingBytes: 0 });
      expect(arrays[0]?.children[0]?.kind).toBe("pickle");
      expect(arrays[1]?.details).toMatchObject({ dataBytes: 16 });
    });

    it("finds a payload in the nested pickle", () => {
      const nested = nestedOf([["GLOBAL", "os", "system"], ["SHORT_BINUNICODE", "id"], ["TUPLE1"], ["REDUCE"]]);
      const { report } = inspect(buildJoblib([{ dtype: "O8", shape: [1], nested }]));
      expect(codes(report)).toEqual(["dangerous_global"]);
      expect(report.findings[0]?.location).toBe("dump.joblib#array[0]#pickle[0]");
    });

    it("treats a structured dtype with an object field as an object array", () => {
      const dtype: DtypeSpec = {
        type: "V16",
        fields: [
          ["o", { type: "O8" }, 0],
          ["x", { type: "f8" }, 8],
        ],
      };
      const { node, report } = inspect(buildJoblib([{ dtype, shape: [1], nested: benignNested }]));
      expect(report.verdict).toBe("accept");
      expect(node.children[0]?.details).toMatchObject({ objectArray: true });
    });

    it("rejects a malformed nested pickle and stops there", () => {
      const { report } = inspect(buildJoblib([{ dtype: "O8", shape: [1], nested: Uint8Array.from([0x80, 0x02, 0xff]) }]));
      expect(codes(report)).toEqual(["malformed_pickle"]);
    });

    it("flags MEMOIZE in a nested pickle: its memo index depends on the loader", () => {
      const nested = nestedOf([["BININT1", 1], ["MEMOIZE"]]);
      expect(codes(inspect(buildJoblib([{ dtype: "O8", shape: [1], nested }])).report)).toEqual(["polyglot"]);
    });

    it("rejects allow_mmap on an object array", () => {
      expect(codes(inspect(buildJoblib([{ dtype: "O8", shape: [1], nested: benignNested, allowMmap: true }])).report)).toEqual(["malformed_container"]);
    });
  });

  describe("what cannot be sized the way joblib sizes it is rejected", () => {
    it.each<[string, ArraySpec, string]>([
      ["a wrong padding length", { dtype: "f8", shape: [1], padding: [3, 0xff, 0xff, 0xff] }, "malformed_container"],
      ["padding that is not 0xff", { dtype: "f8", shape: [1], alignment: 1, padding: [1, 0x2e] }, "malformed_container"],
      ["more array bytes than the file holds", { dtype: "f8", shape: [1000], data: new Uint8Array(8) }, "malformed_container"],
      ["a huge shape", { dtype: "f8", shape: [2 ** 31 - 1, 2 ** 31 - 1], data: new Uint8Array(8) }, "malformed_container"],
      ["a negative dimension", { dtype: "f8", shape: [-1], data: new Uint8Array() }, "malformed_container"],
      ["an unknown order", { dtype: "f8", shape: [1], order: "K" }, "malformed_container"],
      ["an unknown dtype kind", { dtype: "x8", shape: [1] }, "unsafe_dtype"],
      ["a dtype size numpy has no type for", { dtype: "f3", shape: [1] }, "unsafe_dtype"],
      ["a dtype name instead of a type string", { dtype: { type: "float64", elsize: -1 }, shape: [1] }, "unsafe_dtype"],
      ["a zero-size dtype", { dtype: "S0", shape: [1] }, "unsupported_format"],
      ["a dtype that is not numpy.dtype", { dtype: { type: "f8", callable: ["numpy", "float64"] }, shape: [1] }, "unsupported_format"],
      ["dtype align=True", { dtype: { type: "f8", args: [["SHORT_BINUNICODE", "f8"], ["NEWTRUE"], ["NEWTRUE"], ["TUPLE3"]] }, shape: [1] }, "unsafe_dtype"],
      ["hasobject flags on a float dtype", { dtype: { type: "f8", flags: 63 }, shape: [1] }, "unsafe_dtype"],
      ["an object dtype without the hasobject flag", { dtype: { type: "O8", flags: 0 }, shape: [1] }, "unsafe_dtype"],
      ["a flexible dtype whose elsize disagrees", { dtype: { type: "U3", elsize: 24 }, shape: [1] }, "unsafe_dtype"],
      ["elsize on a fixed-size dtype", { dtype: { type: "f8", elsize: 16 }, shape: [1] }, "unsafe_dtype"],
      ["a byte order numpy does not know", { dtype: { type: "f8", byteorder: "!" }, shape: [1] }, "unsafe_dtype"],
      ["a field outside its item", { dtype: { type: "V8", fields: [["x", { type: "f8" }, 4]] }, shape: [1] }, "unsafe_dtype"],
      ["an unknown wrapper field", { dtype: "f8", shape: [1], extraFields: [["SHORT_BINUNICODE", "read_array"], ["NONE"]] }, "malformed_container"],
      [
        "a field set twice",
        {
          dtype: "f8",
          shape: [1],
          extraFields: [
            ["SHORT_BINUNICODE", "order"],
            ["SHORT_BINUNICODE", "F"],
          ],
        },
        "malformed_container",
      ],
      ["a missing dtype", { dtype: "f8", shape: [1], omit: ["dtype"] }, "malformed_container"],
      ["a missing shape", { dtype: "f8", shape: [1], omit: ["shape"] }, "malformed_container"],
      ["a wrapper made by a call (its __init__ arguments are attributes)", { dtype: "f8", shape: [1], createdWithArgs: true }, "malformed_container"],
    ])("rejects %s", (_name, spec, code) => {
      expect(codes(inspect(buildJoblib([spec])).report)).toContain(code);
    });

    it("sizes memo-shared structured dtypes once (no exponential walk)", () => {
      // A dtype with 64 fields that all refer to one dtype of 64 fields, that all refer to ...
      const levels = 5;
      const ops: PickleOp[] = [["PROTO", 4], ["EMPTY_LIST"]];
      const dtypeWithFields = (fieldRef: PickleOp[] | undefined, size: number): PickleOp[] => {
        const out: PickleOp[] = [
          ["GLOBAL", "numpy", "dtype"],
          ["SHORT_BINUNICODE", fieldRef ? `V${size.toString()}` : "u1"],
          ["NEWFALSE"],
          ["NEWTRUE"],
          ["TUPLE3"],
          ["REDUCE"],
        ];
        if (!fieldRef) return out;
        out.push(["MARK"], ["BININT1", 3], ["SHORT_BINUNICODE", "|"], ["NONE"], ["MARK"]);
        for (let i = 0; i < 64; i++) out.push(["SHORT_BINUNICODE", `f${i.toString()}`]);
        out.push(["TUPLE"], ["EMPTY_DICT"], ["MARK"]);
        for (let i = 0; i < 64; i++) out.push(["SHORT_BINUNICODE", `f${i.toString()}`], ...fieldRef, ["BININT1", 0], ["TUPLE2"]);
        out.push(["SETITEMS"], ["BININT", size], ["BININT", 1], ["BININT1", 16], ["TUPLE"], ["BUILD"]);
        return out;
      };
      // memo[k] holds level k's dtype.
      ops.push(...dtypeWithFields(undefined, 1), ["BINPUT", 0], ["POP"]);
      for (let k = 1; k <= levels; k++) ops.push(...dtypeWithFields([["BINGET", k - 1]], 1), ["BINPUT", k], ["POP"]);
      const head = buildPickle(ops);
      // A wrapper whose dtype is a fetch of the top level, then two raw bytes (no alignment).
      const started = Date.now();
      const bytes = concat(
        head,
        buildPickle([
          ["SHORT_BINUNICODE", "joblib.numpy_pickle"],
          ["SHORT_BINUNICODE", "NumpyArrayWrapper"],
          ["STACK_GLOBAL"],
          ["EMPTY_TUPLE"],
          ["NEWOBJ"],
          ["EMPTY_DICT"],
          ["MARK"],
          ["SHORT_BINUNICODE", "subclass"],
          ["GLOBAL", "numpy", "ndarray"],
          ["SHORT_BINUNICODE", "shape"],
          ["BININT1", 2],
          ["TUPLE1"],
          ["SHORT_BINUNICODE", "order"],
          ["SHORT_BINUNICODE", "C"],
          ["SHORT_BINUNICODE", "dtype"],
          ["BINGET", levels],
          ["SETITEMS"],
          ["BUILD"],
        ]),
        Uint8Array.from([0x0f, 0x0f]),
        buildPickle([["APPEND"], ["STOP"]]),
      );
      const { node, report } = inspect(bytes);
      expect(report.findings).toEqual([]);
      expect(node.children[0]?.details).toMatchObject({ dtype: "V1", dataBytes: 2 });
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it("reads a wrapper's dtype without BUILD state by its type string", () => {
      const { node, report } = inspect(buildJoblib([{ dtype: { type: "f8", noState: true }, shape: [2] }]));
      expect(report.verdict).toBe("accept");
      expect(node.children[0]?.details).toMatchObject({ dtype: "f8", dataBytes: 16 });
    });

    it("rejects raw array bytes read from inside a FRAME that goes on after the BUILD", () => {
      // Python's unpickler reads the array from the file, after the frame: the bytes left in
      // the frame would be read later, out of order.
      const body = concat(buildPickle(wrapperOps({ dtype: "f8", shape: [1], alignment: "absent" })), buildPickle([["APPEND"]]));
      const framed = concat(buildPickle([["PROTO", 4], ["EMPTY_LIST"], ["FRAME", body.length]]), body, new Uint8Array(8), buildPickle([["STOP"]]));
      expect(codes(inspect(framed).report)).toContain("malformed_pickle");
    });

    it("rejects a wrapper built twice (Python merges the second state into the first)", () => {
      const spec: ArraySpec = { dtype: "f8", shape: [1] };
      const once = buildJoblib([spec]);
      // Memoize the wrapper right after NEWOBJ, then fetch it and BUILD it again with a state
      // that leaves the alignment out: joblib would still pad (merged), a replace model would not.
      const wrapper = buildPickle(wrapperOps(spec));
      const newobj = wrapper.indexOf(0x81);
      const memoized = concat(wrapper.subarray(0, newobj + 1), Uint8Array.from([0x94]), wrapper.subarray(newobj + 1));
      const head = buildPickle([["PROTO", 4], ["EMPTY_LIST"]]);
      const p1 = 16 - ((head.length + memoized.length + 1) % 16);
      let bytes = concat(head, memoized, Uint8Array.from([p1, ...new Array<number>(p1).fill(0xff)]), new Uint8Array(8), buildPickle([["APPEND"]]));
      const again = buildPickle([["BINGET", 0], ...wrapperOps({ ...spec, alignment: "absent" }).slice(5)]);
      bytes = concat(bytes, again, new Uint8Array(8), buildPickle([["APPEND"], ["STOP"]]));
      expect(inspect(once).report.verdict).toBe("accept");
      expect(
        inspect(bytes)
          .report.findings.map((f) => f.message)
          .join(),
      ).toMatch(/built twice/);
    });

    it("ignores wrappers that joblib's unpickler does not treat as arrays", () => {
      // A lookalike class is just an unknown import; no bytes are skipped for it.
      const { report } = inspect(buildJoblib([{ dtype: "f8", shape: [0], alignment: "absent", wrapperClass: ["evil", "NumpyArrayWrapper"] }]));
      expect(codes(report)).toEqual(["unknown_global"]);
      expect(report.root.format).toBe("pickle");
    });
  });

  it("bounds the number of arrays: at the limit and past it", () => {
    const bytes = buildJoblib([
      { dtype: "f8", shape: [1] },
      { dtype: "f8", shape: [1] },
    ]);
    expect(inspect(bytes, {}, 2).report.verdict).toBe("accept");
    expect(codes(inspect(bytes, {}, 1).report)).toEqual(["limit_exceeded"]);
  });

  it("lists raw arrays as nodes up to a bound and counts the rest; object arrays always get a node", () => {
    const nested = buildPickle([["PROTO", 2], ["NONE"], ["STOP"]]);
    const bytes = buildJoblib([
      { dtype: "f8", shape: [1] },
      { dtype: "f8", shape: [1] },
      { dtype: "O8", shape: [1], nested },
      { dtype: "f8", shape: [1] },
    ]);
    const policy = makePicklePolicy(DEFAULT_CONTENT_POLICY);
    const atBound = inspectPickleFileSource(new BufferSource(bytes), "", { policy, maxArrayNodes: 3 });
    expect(atBound.children.filter((c) => c.kind === "array")).toHaveLength(4);
    expect(atBound.details?.arraysNotListed).toBeUndefined();
    const past = inspectPickleFileSource(new BufferSource(bytes), "", { policy, maxArrayNodes: 1 });
    expect(past.children.filter((c) => c.kind === "array").map((c) => c.details?.index)).toEqual([0, 2]);
    expect(past.details).toMatchObject({ arrays: 4, arraysNotListed: 2 });
  });

  it("reads every pickle of a sequence the joblib way", () => {
    const first = buildPickle([["PROTO", 4], ["NONE"], ["STOP"]]);
    const second = buildJoblib([{ dtype: "f8", shape: [2] }], [["GLOBAL", "os", "system"], ["POP"]]);
    // Padding depends on the position in the file: rebuild the second stream at its offset.
    const { report } = inspect(concat(first, second));
    expect(codes(report)).toContain("malformed_container");
    const aligned = buildJoblib([{ dtype: "f8", shape: [2], alignment: "absent" }], [["GLOBAL", "os", "system"], ["POP"]]);
    const r2 = inspect(concat(first, aligned)).report;
    expect(codes(r2)).toEqual(["dangerous_global"]);
    expect(r2.findings[0]?.location).toBe("dump.joblib#pickle[1]");
  });

  it("never throws and always ends on mutated dumps", () => {
    const base = buildJoblib([
      { dtype: "f8", shape: [3], data: f64(1, 2, 3) },
      { dtype: "O8", shape: [1], nested: buildPickle([["PROTO", 2], ["MARK"], ["BININT1", 1], ["LIST"], ["STOP"]]) },
      { dtype: "U2", shape: [2] },
    ]);
    expect(inspect(base).report.verdict).toBe("accept");
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (edits) => {
        const bytes = base.slice();
        for (const [at, value] of edits) bytes[at] = value;
        const { report } = inspect(bytes);
        expect(["accept", "reject"]).toContain(report.verdict);
      }),
      { numRuns: 400 },
    );
  });
});

// ---- real joblib dumps (test/fixtures/joblib, generated by test/fixtures/generate.py) -----------

/** joblib.dump({"x": np.arange(3.0), "o": np.array([1, "a"], dtype=object)}, BytesIO(), protocol=p) */
const OLD_PROTOCOLS: Record<string, string> = {
  p0: "KGRwMApWeApwMQpjY29weV9yZWcKX3JlY29uc3RydWN0b3IKcDIKKGNqb2JsaWIubnVtcHlfcGlja2xlCk51bXB5QXJyYXlXcmFwcGVyCnAzCmNfX2J1aWx0aW5fXwpvYmplY3QKcDQKTnRwNQpScDYKKGRwNwpWc3ViY2xhc3MKcDgKY251bXB5Cm5kYXJyYXkKcDkKc1ZzaGFwZQpwMTAKKEkzCnRwMTEKc1ZvcmRlcgpwMTIKVkMKcDEzCnNWZHR5cGUKcDE0CmNudW1weQpkdHlwZQpwMTUKKFZmOApwMTYKSTAwCkkwMQp0cDE3ClJwMTgKKEkzClY8CnAxOQpOTk5JLTEKSS0xCkkwCnRwMjAKYnNWYWxsb3dfbW1hcApwMjEKSTAxCnNWbnVtcHlfYXJyYXlfYWxpZ25tZW50X2J5dGVzCnAyMgpJMTYKc2IN/////////////////wAAAAAAAAAAAAAAAAAA8D8AAAAAAAAAQHNWbwpwMjMKZzIKKGczCmc0Ck50cDI0ClJwMjUKKGRwMjYKZzgKZzkKc2cxMAooSTIKdHAyNwpzZzEyCmcxMwpzZzE0CmcxNQooVk84CnAyOApJMDAKSTAxCnRwMjkKUnAzMAooSTMKVnwKcDMxCk5OTkktMQpJLTEKSTYzCnRwMzIKYnNnMjEKSTAwCnNnMjIKSTE2CnNigAJjbnVtcHkuY29yZS5tdWx0aWFycmF5Cl9yZWNvbnN0cnVjdApxAGNudW1weQpuZGFycmF5CnEBSwCFcQJjX2NvZGVjcwplbmNvZGUKcQNYAQAAAGJxBFgGAAAAbGF0aW4xcQWGcQZScQeHcQhScQkoSwFLAoVxCmNudW1weQpkdHlwZQpxC1gCAAAATzhxDImIh3ENUnEOKEsDWAEAAAB8cQ9OTk5K/////0r/////Sz90cRBiiV1xEShLAVgBAAAAYXESZXRxE2Iucy4=",
  p1: "fXEAKFgBAAAAeHEBY2NvcHlfcmVnCl9yZWNvbnN0cnVjdG9yCnECKGNqb2JsaWIubnVtcHlfcGlja2xlCk51bXB5QXJyYXlXcmFwcGVyCnEDY19fYnVpbHRpbl9fCm9iamVjdApxBE50cQVScQZ9cQcoWAgAAABzdWJjbGFzc3EIY251bXB5Cm5kYXJyYXkKcQlYBQAAAHNoYXBlcQooSwN0cQtYBQAAAG9yZGVycQxYAQAAAENxDVgFAAAAZHR5cGVxDmNudW1weQpkdHlwZQpxDyhYAgAAAGY4cRBJMDAKSTAxCnRxEVJxEihLA1gBAAAAPHETTk5OSv////9K/////0sAdHEUYlgKAAAAYWxsb3dfbW1hcHEVSTAxClgbAAAAbnVtcHlfYXJyYXlfYWxpZ25tZW50X2J5dGVzcRZLEHViC///////////////AAAAAAAAAAAAAAAAAADwPwAAAAAAAABAWAEAAABvcRdoAihoA2gETnRxGFJxGX1xGihoCGgJaAooSwJ0cRtoDGgNaA5oDyhYAgAAAE84cRxJMDAKSTAxCnRxHVJxHihLA1gBAAAAfHEfTk5OSv////9K/////0s/dHEgYmgVSTAwCmgWSxB1YoACY251bXB5LmNvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQBjbnVtcHkKbmRhcnJheQpxAUsAhXECY19jb2RlY3MKZW5jb2RlCnEDWAEAAABicQRYBgAAAGxhdGluMXEFhnEGUnEHh3EIUnEJKEsBSwKFcQpjbnVtcHkKZHR5cGUKcQtYAgAAAE84cQyJiIdxDVJxDihLA1gBAAAAfHEPTk5OSv////9K/////0s/dHEQYoldcREoSwFYAQAAAGFxEmV0cRNiLnUu",
};

describe("protocol 0 and 1 dumps (wrapper made by copyreg._reconstructor)", () => {
  it.each(Object.keys(OLD_PROTOCOLS))("accepts the %s dump and sizes both arrays", (key) => {
    const { node, report } = inspect(new Uint8Array(Buffer.from(OLD_PROTOCOLS[key] as string, "base64")));
    expect(report.findings).toEqual([]);
    const arrays = node.children.filter((c) => c.kind === "array").map((c) => c.details);
    expect(arrays).toEqual([expect.objectContaining({ dtype: "<f8", dataBytes: 24 }), expect.objectContaining({ objectArray: true })]);
  });

  it("does not treat _reconstructor with another base as a wrapper", () => {
    const ops: PickleOp[] = [
      ["PROTO", 2],
      ["GLOBAL", "copyreg", "_reconstructor"],
      ["GLOBAL", "joblib.numpy_pickle", "NumpyArrayWrapper"],
      ["GLOBAL", "builtins", "dict"],
      ["NONE"],
      ["TUPLE3"],
      ["REDUCE"],
      ["EMPTY_DICT"],
      ["BUILD"],
      ["STOP"],
    ];
    const { node, report } = inspect(buildPickle(ops));
    expect(node.format).toBe("pickle");
    expect(report.verdict).toBe("accept");
  });
});

const FIXTURES = join(__dirname, "..", "fixtures", "joblib");
const read = (name: string): Uint8Array => new Uint8Array(readFileSync(join(FIXTURES, name)));

describe("real joblib dumps", () => {
  it.each(["arrays.joblib", "arrays_p2.joblib", "object_array.joblib"])("accepts %s", (name) => {
    const bytes = read(name);
    const { node, report } = inspect(bytes);
    expect(report.findings).toEqual([]);
    expect(node.format).toBe("joblib");
    expect(startsWithWellFormedPickleOrJoblib(new BufferSource(bytes))).toBe(true);
  });

  it("accepts scikit-learn estimators when the policy allows sklearn", () => {
    for (const name of ["sklearn_pipeline.joblib", "sklearn_tree.joblib"]) {
      expect(inspect(read(name), { allowGlobals: ["sklearn.*"] }).report.verdict).toBe("accept");
      expect(codes(inspect(read(name)).report)).toEqual(["unknown_global"]);
    }
  });

  it("sizes every array of the arrays dump (dtypes, orders, 0-d, empty, structured, datetime)", () => {
    const { node } = inspect(read("arrays.joblib"));
    const details = node.children.filter((c) => c.kind === "array").map((c) => [c.details?.dtype, c.details?.dataBytes]);
    expect(details).toEqual(
      expect.arrayContaining([
        ["<f8", 96],
        ["<i4", 40],
        ["<U3", 24],
        ["<M8", 8],
        ["V10", 10],
      ]),
    );
  });

  it.each([
    ["malicious.joblib", "dangerous_global"],
    ["malicious_object_array.joblib", "dangerous_global"],
  ])("rejects %s with %s", (name, code) => {
    expect(codes(inspect(read(name)).report)).toContain(code);
  });

  describe("compressed, through inspectCompressed", () => {
    let tempDir: string;
    beforeEach(() => {
      tempDir = mkdtempSync(join(tmpdir(), "mg-joblib-"));
    });
    afterEach(() => {
      rmSync(tempDir, { recursive: true, force: true });
    });
    const ctx = (): FormatContext => ({
      policy: DEFAULT_CONTENT_POLICY,
      containerLimits: DEFAULT_CONTAINER_LIMITS,
      pickleLimits: DEFAULT_PICKLE_LIMITS,
      depth: 0,
      tempDir,
      budget: { uncompressedBytes: 0 },
      inspectMember: (source: ByteSource, path: string, c: FormatContext) => inspectPickleFile(source, path, c),
      inspectArchive: () => Promise.reject(new Error("not used")),
    });

    it.each(["z", "gz", "bz2", "xz", "lzma", "lz4"])("accepts arrays.joblib.%s as joblib", async (ext) => {
      const node = await inspectCompressed(new BufferSource(read(`arrays.joblib.${ext}`)), "", ctx());
      const report = summarize(node, node.format ?? "");
      expect(report.findings).toEqual([]);
      expect(node.format).toBe("joblib");
      expect(node.children[0]?.format).toBe("joblib");
      expect(readdirSync(tempDir)).toHaveLength(0);
    });

    it.each([
      ["malicious.joblib.z", "dangerous_global"],
      ["malicious.joblib.lz4", "dangerous_global"],
      ["bomb.joblib.bz2", "limit_exceeded"],
    ])("rejects %s with %s", async (name, code) => {
      const node = await inspectCompressed(new BufferSource(read(name)), "", ctx());
      expect(codes(summarize(node, node.format ?? ""))).toContain(code);
    });
  });
});
