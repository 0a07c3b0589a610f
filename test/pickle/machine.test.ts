import { Cursor } from "../../src/bytes/cursor";
import { GatewayError } from "../../src/errors";
import type { SymbolicValue } from "../../src/pickle";
import { analyzeBytes, analyzeOps, buildPickle, callOf, codesOf, concat, framed, verdictOf, type PickleOp } from "./builders";

function valueOf(ops: PickleOp[]): SymbolicValue | undefined {
  const a = analyzeOps([...ops, ["STOP"]]);
  expect(a.node.findings.filter((f) => f.severity === "malformed")).toEqual([]);
  return a.values[0];
}

/** `n` opcodes that leave the stack as it was (NONE, POP pairs). */
function filler(n: number): PickleOp[] {
  return Array.from({ length: n }, (_v, i): PickleOp => (i % 2 === 0 ? ["NONE"] : ["POP"]));
}

/** Plain JSON-ish view of a value for assertions. */
function plain(v: SymbolicValue | undefined): unknown {
  if (v === undefined) return undefined;
  switch (v.kind) {
    case "none":
      return null;
    case "bool":
    case "float":
      return v.value;
    case "int":
      return v.value;
    case "str":
      return v.value;
    case "bytes":
      return { bytes: v.length };
    case "tuple":
    case "list":
    case "set":
    case "frozenset":
      return { [v.kind]: v.items.map(plain) };
    case "dict":
      return { dict: v.entries.map(([k, x]) => [plain(k), plain(x)]) };
    case "global":
      return `${v.module}.${v.name}`;
    case "object":
      return { call: plain(v.callable), args: plain(v.args), ...(v.state ? { state: plain(v.state) } : {}) };
    case "persistent":
      return { persistent: plain(v.id) };
    default:
      return v.kind;
  }
}

describe("symbolic machine: values", () => {
  it("builds containers like the unpickler", () => {
    expect(
      plain(
        valueOf([
          ["PROTO", 4],
          ["EMPTY_DICT"],
          ["MEMOIZE"],
          ["MARK"],
          ["SHORT_BINUNICODE", "a"],
          ["EMPTY_LIST"],
          ["MARK"],
          ["BININT1", 1],
          ["BININT2", 300],
          ["APPENDS"],
          ["SHORT_BINUNICODE", "t"],
          ["NONE"],
          ["NEWTRUE"],
          ["BINFLOAT", 0.5],
          ["TUPLE3"],
          ["SHORT_BINUNICODE", "s"],
          ["EMPTY_SET"],
          ["MARK"],
          ["BININT", -5],
          ["ADDITEMS"],
          ["SHORT_BINUNICODE", "f"],
          ["MARK"],
          ["SHORT_BINBYTES", new Uint8Array(3)],
          ["FROZENSET"],
          ["SETITEMS"],
        ]),
      ),
    ).toEqual({
      dict: [
        ["a", { list: [1n, 300n] }],
        ["t", { tuple: [null, true, 0.5] }],
        ["s", { set: [-5n] }],
        ["f", { frozenset: [{ bytes: 3 }] }],
      ],
    });
  });

  it("protocol 0/1 forms: DICT, LIST, TUPLE, SETITEM, APPEND, INT bools, LONG, text strings", () => {
    expect(
      plain(
        valueOf([
          ["MARK"],
          ["STRING", "k"],
          ["MARK"],
          ["INT", true],
          ["LONG", 5n],
          ["FLOAT", "2.5"],
          ["UNICODE", "u"],
          ["LIST"],
          ["DICT"],
          ["STRING", "x"],
          ["MARK"],
          ["TUPLE"],
          ["SETITEM"],
        ]),
      ),
    ).toEqual({
      dict: [
        ["k", { list: [true, 5n, 2.5, "u"] }],
        ["x", { tuple: [] }],
      ],
    });
  });

  it("MEMOIZE stores the object on top of the stack, not the previous opcode's argument", () => {
    // FRAME's integer argument precedes MEMOIZE; the memo must hold the string, not the frame length.
    const v = valueOf([["PROTO", 4], ...framed([["SHORT_BINUNICODE", "x"], ["POP"], ["SHORT_BINUNICODE", "kept"]]), ["MEMOIZE"], ["POP"], ["BINGET", 0]]);
    expect(plain(v)).toBe("kept");
  });

  it("MEMOIZE indexes by len(memo), after PUTs at arbitrary indices", () => {
    const v = valueOf([["PROTO", 4], ["SHORT_BINUNICODE", "a"], ["BINPUT", 2], ["POP"], ["SHORT_BINUNICODE", "b"], ["MEMOIZE"], ["POP"], ["BINGET", 1]]);
    expect(plain(v)).toBe("b");
  });

  it("PUT/GET text forms and LONG_BINPUT/LONG_BINGET share one memo", () => {
    // Filler opcodes first: the memo index rule admits an index up to the opcodes before the PUT.
    expect(plain(valueOf([["NONE"], ["POP"], ["STRING", "v"], ["PUT", 3], ["POP"], ["GET", 3]]))).toBe("v");
    expect(plain(valueOf([["PROTO", 2], ...filler(100_000), ["SHORT_BINUNICODE", "w"], ["LONG_BINPUT", 100000], ["POP"], ["LONG_BINGET", 100000]]))).toBe("w");
  });

  it("POP on an empty frame after MARK pops the mark (CPython's load_pop)", () => {
    expect(plain(valueOf([["NONE"], ["MARK"], ["POP"], ["NEWTRUE"], ["TUPLE2"]]))).toEqual({ tuple: [null, true] });
  });

  it("POP_MARK discards items back to the mark; DUP duplicates", () => {
    expect(plain(valueOf([["PROTO", 2], ["NONE"], ["MARK"], ["NEWTRUE"], ["NEWFALSE"], ["POP_MARK"], ["DUP"], ["TUPLE2"]]))).toEqual({ tuple: [null, null] });
  });

  it("REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST and BUILD make objects with state", () => {
    const ops: PickleOp[] = [
      ["PROTO", 4],
      ["MARK"],
      ["GLOBAL", "collections", "OrderedDict"],
      ["EMPTY_TUPLE"],
      ["REDUCE"],
      ["GLOBAL", "builtins", "set"],
      ["EMPTY_TUPLE"],
      ["NEWOBJ"],
      ["GLOBAL", "builtins", "dict"],
      ["EMPTY_TUPLE"],
      ["EMPTY_DICT"],
      ["NEWOBJ_EX"],
      ["MARK"],
      ["GLOBAL", "builtins", "list"],
      ["BININT1", 1],
      ["OBJ"],
      ["MARK"],
      ["BININT1", 2],
      ["INST", "builtins", "tuple"],
      ["EMPTY_DICT"],
      ["BUILD"],
      ["LIST"],
    ];
    const a = analyzeOps([...ops, ["STOP"]]);
    expect(a.node.findings).toEqual([]);
    expect(plain(a.values[0])).toEqual({
      list: [
        { call: "collections.OrderedDict", args: { tuple: [] } },
        { call: "builtins.set", args: { tuple: [] } },
        { call: "builtins.dict", args: { tuple: [] } },
        { call: "builtins.list", args: { tuple: [1n] } },
        { call: "builtins.tuple", args: { tuple: [2n] }, state: { dict: [] } },
      ],
    });
    const calls = a.node.details?.calls as { opcode: string; callable: string }[];
    expect(calls.map((c) => `${c.opcode} ${c.callable}`)).toEqual([
      "REDUCE collections.OrderedDict",
      "NEWOBJ builtins.set",
      "NEWOBJ_EX builtins.dict",
      "OBJ builtins.list",
      "INST builtins.tuple",
      "BUILD builtins.tuple",
    ]);
  });

  it("PERSID and BINPERSID call onPersistentId with the decoded id and keep its findings", () => {
    const seen: unknown[] = [];
    const a = analyzeOps(
      [
        ["PROTO", 2],
        ["PERSID", "0"],
        ["SHORT_BINUNICODE", "storage"],
        ["GLOBAL", "torch", "FloatStorage"],
        ["BININT1", 4],
        ["TUPLE3"],
        ["BINPERSID"],
        ["TUPLE2"],
        ["STOP"],
      ],
      {
        onPersistentId: (id, offset) => {
          seen.push([plain(id), offset]);
          return offset === 2 ? [] : [{ code: "bad_persistent_id", severity: "malformed", message: "test" }];
        },
      },
    );
    expect(seen).toEqual([
      ["0", 2],
      [{ tuple: ["storage", "torch.FloatStorage", 4n] }, 37],
    ]);
    expect(a.node.findings).toEqual([expect.objectContaining({ code: "bad_persistent_id", offset: 37, location: "t#pickle[0]" })]);
    expect(a.node.details?.persistentIds).toBe(2);
  });

  it("onBuild sees the built object and may skip raw bytes after BUILD (joblib)", () => {
    const head = buildPickle([["PROTO", 2], ["GLOBAL", "builtins", "object"], ["EMPTY_TUPLE"], ["NEWOBJ"], ["EMPTY_DICT"], ["BUILD"]]);
    const raw = new Uint8Array([0xff, 0xfe, 0xfd, 0x00]);
    const bytes = concat(head, raw, buildPickle([["STOP"]]));
    const a = analyzeBytes(bytes, {
      onBuild: (event, cursor) => {
        expect(event.offset).toBe(head.length);
        expect(event.target.kind).toBe("object");
        cursor.skip(raw.length);
      },
    });
    expect(a.node.findings).toEqual([]);
    expect(a.end).toBe(bytes.length);
  });

  it("a GatewayError thrown by a callback becomes a finding, not an exception", () => {
    const a = analyzeOps([["PROTO", 2], ["GLOBAL", "builtins", "object"], ["EMPTY_TUPLE"], ["NEWOBJ"], ["EMPTY_DICT"], ["BUILD"], ["STOP"]], {
      onBuild: () => {
        throw new GatewayError("malformed_container", "bad wrapper");
      },
    });
    expect(codesOf(a)).toEqual(["malformed_container"]);
  });

  it("raw bytes skipped by onBuild inside an unfinished FRAME are malformed", () => {
    const a = analyzeOps(
      [["PROTO", 4], ...framed([["GLOBAL", "builtins", "object"], ["EMPTY_TUPLE"], ["NEWOBJ"], ["EMPTY_DICT"], ["BUILD"], ["NONE"], ["NONE"], ["STOP"]])],
      {
        onBuild: (_e, cursor) => {
          cursor.skip(1);
        },
      },
    );
    expect(codesOf(a)).toEqual(["malformed_pickle"]);
  });

  it("single: stops after the first STOP and reports where it ended", () => {
    const first = buildPickle([["PROTO", 2], ["NONE"], ["STOP"]]);
    const a = analyzeBytes(concat(first, new Uint8Array([1, 2, 3])), { single: true });
    expect(a.end).toBe(first.length);
    expect(a.streams).toBe(1);
    expect(a.node.findings).toEqual([]);
  });

  it("caps what containers retain and marks them truncated", () => {
    const ops: PickleOp[] = [["PROTO", 2], ["EMPTY_LIST"]];
    for (let i = 0; i < 5; i++) {
      ops.push(["MARK"]);
      for (let k = 0; k < 1000; k++) ops.push(["NONE"]);
      ops.push(["APPENDS"]);
    }
    const v = analyzeOps([...ops, ["STOP"]]).values[0];
    expect(v?.kind === "list" && v.items.length).toBe(4096);
    expect(v?.kind === "list" && v.truncated).toBe(true);
  });
});

describe("symbolic machine: malformed structure", () => {
  it.each<[string, PickleOp[]]>([
    ["stack underflow", [["PROTO", 2], ["POP"], ["STOP"]]],
    ["STOP on an empty stack", [["PROTO", 2], ["STOP"]]],
    ["consuming below the mark", [["NONE"], ["MARK"], ["TUPLE1"], ["STOP"]]],
    ["APPENDS without a mark", [["EMPTY_LIST"], ["APPENDS"], ["STOP"]]],
    ["odd SETITEMS", [["EMPTY_DICT"], ["MARK"], ["NONE"], ["SETITEMS"], ["STOP"]]],
    ["odd DICT", [["MARK"], ["NONE"], ["DICT"], ["STOP"]]],
    ["OBJ without a class", [["MARK"], ["OBJ"], ["STOP"]]],
    ["GET of a missing memo key", [["PROTO", 2], ["BINGET", 9], ["STOP"]]],
    ["PUT on an empty stack", [["PROTO", 2], ["BINPUT", 0], ["STOP"]]],
    ["MEMOIZE on an empty stack", [["PROTO", 4], ["MEMOIZE"], ["STOP"]]],
    ["a frame that extends past STOP", [["PROTO", 4], ["FRAME", 3], ["NONE"], ["STOP"], ["NONE"]]],
  ])("%s is malformed_pickle", (_name, ops) => {
    const a = analyzeOps(ops);
    expect(codesOf(a)).toEqual(["malformed_pickle"]);
    expect(a.node.findings[0]?.severity).toBe("malformed");
  });
});

describe("sequences: bytes after STOP", () => {
  const clean = buildPickle([["PROTO", 2], ["NONE"], ["STOP"]]);
  const payload = buildPickle([["PROTO", 2], ...callOf("os", "system", "echo x"), ["STOP"]]);

  it("scans every pickle of a sequence and keeps each top value", () => {
    const a = analyzeBytes(concat(clean, clean, clean));
    expect(a.streams).toBe(3);
    expect(a.values).toHaveLength(3);
    expect(verdictOf(a)).toBe("accept");
  });

  it("finds a payload in the second pickle", () => {
    const a = analyzeBytes(concat(clean, payload));
    expect(a.node.findings).toEqual([expect.objectContaining({ code: "dangerous_global", global: "os.system", location: "t#pickle[1]" })]);
  });

  it("garbage after STOP is malformed (a trailing newline too)", () => {
    expect(codesOf(analyzeBytes(concat(clean, new Uint8Array([0xff]))))).toEqual(["malformed_pickle"]);
    expect(codesOf(analyzeBytes(concat(clean, new Uint8Array([0x0a]))))).toEqual(["malformed_pickle"]);
  });

  it("a zip appended after STOP (polyglot) is rejected", () => {
    const zip = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00]);
    const a = analyzeBytes(concat(clean, zip));
    expect(codesOf(a)).toEqual(["malformed_pickle"]);
    expect(a.node.findings[0]?.offset).toBe(clean.length);
  });

  it("a payload followed by garbage reports both the import and the break (nullifAI)", () => {
    const broken = concat(payload.subarray(0, payload.length - 1), new Uint8Array([0xfe, 0x01]));
    const a = analyzeBytes(broken);
    expect(codesOf(a)).toEqual(["dangerous_global", "malformed_pickle"]);
    expect(a.node.imports?.map((i) => `${i.module}.${i.name}`)).toEqual(["os.system"]);
  });

  it("a payload before a lying frame is still reported", () => {
    const a = analyzeOps([["PROTO", 4], ...callOf("subprocess", "Popen", "x"), ["FRAME", 999], ["STOP"]]);
    expect(codesOf(a)).toEqual(["dangerous_global", "malformed_pickle"]);
  });

  it("analyzes only the cursor's range", () => {
    const bytes = concat(clean, payload);
    const a = analyzeBytes(bytes.subarray(0, clean.length));
    expect(verdictOf(a)).toBe("accept");
    const c = new Cursor(
      { size: bytes.length, readAt: (t, p) => (t.set(bytes.subarray(p, p + t.length)), Math.min(t.length, bytes.length - p)) },
      { start: clean.length, end: bytes.length },
    );
    expect(c.position).toBe(clean.length);
  });
});

describe("report size stays bounded", () => {
  it("caps import records and findings for a flood of distinct imports, and still rejects", () => {
    const ops: PickleOp[] = [["PROTO", 2]];
    for (let i = 0; i < 12_000; i++) ops.push(["GLOBAL", `m${i.toString()}`, "x"], ["POP"]);
    const a = analyzeOps([...ops, ["NONE"], ["STOP"]]);
    expect(a.node.imports).toHaveLength(10_000);
    expect(a.node.details?.importsOmitted).toBe(2_000);
    expect(a.node.findings).toHaveLength(1001);
    expect(a.node.findings[1000]).toEqual(expect.objectContaining({ code: "info", severity: "innocuous" }));
    expect(verdictOf(a)).toBe("reject");
  });

  it("keeps a few persistent ids as samples", () => {
    const a = analyzeOps([["PROTO", 2], ["SHORT_BINUNICODE", "k"], ["BINPERSID"], ["STOP"]]);
    expect(a.node.details?.persistentIdSamples).toEqual(['"k"']);
  });
});

describe("memoized strings decoded again on GET", () => {
  it("MEMOIZE after PUTs at high indices overwrites like CPython (memo[len(memo)])", () => {
    const v = valueOf([
      ["PROTO", 4],
      ["SHORT_BINUNICODE", "a"],
      ["BINPUT", 1],
      ["POP"],
      ["SHORT_BINUNICODE", "b"],
      ["MEMOIZE"],
      ["MEMOIZE"],
      ["POP"],
      ["BINGET", 1],
    ]);
    expect(plain(v)).toBe("b");
  });

  it("returns the exact string (ASCII, UTF-8, Python 2 str) after many opcodes", () => {
    const strings: PickleOp[] = [];
    for (let i = 0; i < 3000; i++) strings.push(["SHORT_BINUNICODE", `f${i.toString()}`], ["MEMOIZE"], ["POP"]);
    const v = valueOf([
      ["PROTO", 4],
      ...filler(100_000),
      ["SHORT_BINUNICODE", "ascii"],
      ["MEMOIZE"],
      ["POP"],
      ["BINUNICODE", "h\u00e9 \u2603"],
      ["LONG_BINPUT", 70000],
      ["POP"],
      ["BINSTRING", "py2"],
      ["LONG_BINPUT", 100000],
      ["POP"],
      ...strings,
      ["BINGET", 0],
      ["MARK"],
      ["LONG_BINGET", 70000],
      ["LONG_BINGET", 100000],
      ["BINGET", 0],
      ["TUPLE"],
      ["TUPLE2"],
    ]);
    expect(plain(v)).toEqual({ tuple: ["ascii", { tuple: ["h\u00e9 \u2603", "py2", "ascii"] }] });
  });

  it("keeps the truncated flag of a long memoized string", () => {
    const a = analyzeOps([["PROTO", 4], ["BINUNICODE", "abcdefgh"], ["MEMOIZE"], ["POP"], ["BINGET", 0], ["STOP"]], {
      limits: { maxRetainedArgumentBytes: 4 },
    });
    expect(a.values[0]).toEqual({ kind: "str", value: "abcd", truncated: true });
  });

  it("a memoized string fetched by GET resolves STACK_GLOBAL in a framed stream", () => {
    const a = analyzeOps([
      ["PROTO", 4],
      ...framed([["SHORT_BINUNICODE", "builtins"], ["MEMOIZE"], ["SHORT_BINUNICODE", "eval"], ["MEMOIZE"], ["POP"], ["POP"]]),
      ...framed([["BINGET", 0], ["BINGET", 1], ["STACK_GLOBAL"], ["STOP"]]),
    ]);
    expect(a.node.findings).toEqual([expect.objectContaining({ code: "dangerous_global", global: "builtins.eval" })]);
  });
});

describe("retention past the large-container budget", () => {
  it("small dicts and tuples stay whole, memoized objects keep their arguments", () => {
    const ops: PickleOp[] = [["PROTO", 2], ["EMPTY_LIST"]];
    for (let b = 0; b < 20; b++) {
      ops.push(["MARK"]);
      for (let k = 0; k < 4000; k++) ops.push(["NONE"]);
      ops.push(["APPENDS"]);
    }
    ops.push(["POP"]);
    ops.push(["GLOBAL", "numpy", "dtype"], ["SHORT_BINUNICODE", "f8"], ["TUPLE1"], ["REDUCE"], ["BINPUT", 1], ["POP"]);
    ops.push(
      ["EMPTY_DICT"],
      ["MARK"],
      ["SHORT_BINUNICODE", "shape"],
      ["BININT1", 3],
      ["BININT1", 4],
      ["TUPLE2"],
      ["SHORT_BINUNICODE", "dtype"],
      ["BINGET", 1],
      ["SETITEMS"],
    );
    const v = valueOf(ops);
    expect(plain(v)).toEqual({
      dict: [
        ["shape", { tuple: [3n, 4n] }],
        ["dtype", { call: "numpy.dtype", args: { tuple: ["f8"] } }],
      ],
    });
  });
});

describe("the finding that ends a stream is never dropped by the findings cap", () => {
  it("keeps malformed_pickle after 1000 import findings", () => {
    const ops: PickleOp[] = [["PROTO", 2]];
    for (let i = 0; i < 1100; i++) ops.push(["GLOBAL", `m${i.toString()}`, "x"], ["POP"]);
    const a = analyzeOps([...ops, { raw: "\xff" }]);
    expect(a.node.findings.map((f) => f.code)).toContain("malformed_pickle");
  });
});

describe("memo indices chosen by the input", () => {
  it("a string PUT at an index far past the opcodes before it is limit_exceeded (memo index rule)", () => {
    for (const index of [0xffffffff, (1 << 24) - 1, 3]) {
      const a = analyzeOps([["PROTO", 2], ["SHORT_BINUNICODE", "far"], ["LONG_BINPUT", index], ["POP"], ["LONG_BINGET", index], ["STOP"]]);
      expect(a.node.findings.map((f) => f.code)).toEqual(["limit_exceeded"]);
      expect(a.node.findings[0]?.offset).toBe(7);
    }
  });

  it("a string PUT at a high index the opcodes before it allow is kept without allocating for the index", () => {
    expect(plain(valueOf([["PROTO", 2], ...filler(70_000), ["SHORT_BINUNICODE", "mid"], ["LONG_BINPUT", 70_000], ["POP"], ["LONG_BINGET", 70_000]]))).toBe(
      "mid",
    );
  });
});
