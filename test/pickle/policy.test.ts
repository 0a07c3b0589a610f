import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { FLOOR_GROUPS, SAFE_SET, classifyGlobal, floorGroupOf, invalidGlobalPattern, makePicklePolicy } from "../../src/pickle";
import { analyzeOps, codesOf, verdictOf, type PickleOp } from "./builders";

const policy = (allow: string[] = []) => makePicklePolicy(DEFAULT_CONTENT_POLICY, allow);

/** One representative import per floor group: [module, name]. */
const FLOOR_SAMPLES: Record<string, [string, string]> = {
  "code-execution": ["builtins", "eval"],
  processes: ["subprocess", "Popen"],
  "import-machinery": ["importlib", "import_module"],
  "nested-deserialization": ["torch.storage", "_load_from_bytes"],
  "debuggers-profilers": ["pdb", "run"],
  "package-tools": ["pip._internal", "main"],
  network: ["urllib.request", "urlopen"],
  filesystem: ["shutil", "rmtree"],
  "interpreter-state": ["sys", "modules"],
};

/** The ways a pickle can import (and call) module.name. */
function importVia(via: string, module: string, name: string): PickleOp[] {
  switch (via) {
    case "GLOBAL":
      return [["PROTO", 2], ["GLOBAL", module, name], ["SHORT_BINUNICODE", "x"], ["TUPLE1"], ["REDUCE"], ["STOP"]];
    case "STACK_GLOBAL inline":
      return [["PROTO", 4], ["SHORT_BINUNICODE", module], ["BINUNICODE8", name], ["STACK_GLOBAL"], ["EMPTY_TUPLE"], ["REDUCE"], ["STOP"]];
    case "STACK_GLOBAL memo":
      // The CVE-style memo trick: the strings are memoized under innocent-looking values, then fetched.
      return [
        ["PROTO", 4],
        ["SHORT_BINUNICODE", module],
        ["MEMOIZE"],
        ["POP"],
        ["BINUNICODE", name],
        ["BINPUT", 5],
        ["POP"],
        ["SHORT_BINUNICODE", "collections"],
        ["SHORT_BINUNICODE", "OrderedDict"],
        ["STACK_GLOBAL"],
        ["POP"],
        ["BINGET", 0],
        ["BINGET", 5],
        ["STACK_GLOBAL"],
        ["EMPTY_TUPLE"],
        ["REDUCE"],
        ["STOP"],
      ];
    case "INST":
      return [["MARK"], ["STRING", "x"], ["INST", module, name], ["STOP"]];
    case "OBJ":
      return [["MARK"], ["GLOBAL", module, name], ["STRING", "x"], ["OBJ"], ["STOP"]];
    case "NEWOBJ":
      return [["PROTO", 2], ["GLOBAL", module, name], ["EMPTY_TUPLE"], ["NEWOBJ"], ["STOP"]];
    case "NEWOBJ_EX":
      return [
        ["PROTO", 4],
        ["SHORT_BINUNICODE", module],
        ["SHORT_BINUNICODE", name],
        ["STACK_GLOBAL"],
        ["EMPTY_TUPLE"],
        ["EMPTY_DICT"],
        ["NEWOBJ_EX"],
        ["STOP"],
      ];
    default:
      throw new Error(via);
  }
}

const VIAS = ["GLOBAL", "STACK_GLOBAL inline", "STACK_GLOBAL memo", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"];

describe("hard floor: every group rejected through every import path, even when a pattern allows it", () => {
  const cases = Object.entries(FLOOR_SAMPLES).flatMap(([group, [m, n]]) => VIAS.map((via) => [group, via, m, n] as const));
  it.each(cases)("%s via %s (%s.%s)", (_group, via, module, name) => {
    const a = analyzeOps(importVia(via, module, name), { allow: [`${module.split(".")[0] ?? module}.*`, `${module}.${name}`] });
    expect(verdictOf(a)).toBe("reject");
    expect(a.node.findings).toContainEqual(expect.objectContaining({ code: "dangerous_global", severity: "dangerous", global: `${module}.${name}` }));
    expect(a.node.imports).toContainEqual(expect.objectContaining({ module, name, safety: "dangerous" }));
  });

  it("the samples cover every floor group", () => {
    expect(Object.keys(FLOOR_SAMPLES).sort()).toEqual(FLOOR_GROUPS.map((g) => g.name).sort());
    for (const [group, [m, n]] of Object.entries(FLOOR_SAMPLES)) expect(floorGroupOf(`${m}.${n}`)).toBe(group);
  });

  it.each([
    ["__builtin__", "eval"],
    ["__builtin__", "getattr"],
    ["__builtin__", "execfile"],
    ["commands", "getoutput"],
    ["cPickle", "loads"],
    ["urllib2", "urlopen"],
    ["httplib", "HTTPConnection"],
    ["posix", "system"],
    ["nt", "system"],
    ["os.path", "join"],
    ["torch.hub", "load"],
    ["torch", "load"],
    ["numpy", "load"],
    ["joblib", "load"],
    ["operator", "attrgetter"],
    ["_operator", "methodcaller"],
    ["builtins", "open"],
    ["io", "open"],
    ["types", "CodeType"],
    ["ctypes", "CDLL"],
    ["webbrowser", "open"],
    ["asyncio.subprocess", "create_subprocess_shell"],
    ["runpy", "run_path"],
    ["marshal", "loads"],
    ["dill", "loads"],
    ["cloudpickle", "loads"],
    ["_pickle", "loads"],
    ["requests", "get"],
    ["socket", "socket"],
    ["gc", "get_referrers"],
    ["inspect", "getsource"],
  ])("%s.%s is dangerous whatever is allowed", (module, name) => {
    const c = classifyGlobal(
      module,
      name,
      policy([`${module}.${name}`, `${module.split(".")[0] ?? ""}.*`].filter((p) => invalidGlobalPattern(p) === undefined)),
    );
    expect(c).toEqual(expect.objectContaining({ safety: "dangerous", code: "dangerous_global" }));
  });
});

describe("safe set", () => {
  it("accepts every entry and documents each with a reason", () => {
    for (const e of SAFE_SET) {
      expect(e.reason.length).toBeGreaterThan(5);
      const dot = e.global.lastIndexOf(".");
      expect(classifyGlobal(e.global.slice(0, dot), e.global.slice(dot + 1), policy())).toEqual(expect.objectContaining({ safety: "innocuous" }));
      expect(floorGroupOf(e.global)).toBeUndefined();
    }
  });

  it.each([
    ["torch._utils", "_rebuild_tensor_v2"],
    ["torch._utils", "_rebuild_parameter"],
    ["torch._utils", "_rebuild_parameter_with_state"],
    ["torch", "FloatStorage"],
    ["torch", "float32"],
    ["torch", "device"],
    ["torch", "Size"],
    ["collections", "OrderedDict"],
    ["numpy.core.multiarray", "_reconstruct"],
    ["numpy._core.multiarray", "scalar"],
    ["numpy.core.numeric", "_frombuffer"],
    ["numpy", "dtype"],
    ["numpy", "ndarray"],
    ["joblib.numpy_pickle", "NumpyArrayWrapper"],
    ["_codecs", "encode"],
    ["__builtin__", "set"],
    ["__builtin__", "frozenset"],
    ["__builtin__", "bytearray"],
    ["copy_reg", "_reconstructor"],
  ])("includes %s.%s", (module, name) => {
    expect(classifyGlobal(module, name, policy()).safety).toBe("innocuous");
  });
});

describe("patterns", () => {
  it("default is reject: anything not in the safe set is unknown_global (suspicious)", () => {
    expect(classifyGlobal("sklearn.tree", "DecisionTreeClassifier", policy())).toEqual(expect.objectContaining({ safety: "unknown", code: "unknown_global" }));
    const a = analyzeOps(importVia("GLOBAL", "sklearn.tree", "DecisionTreeClassifier"));
    expect(a.node.findings).toEqual([
      expect.objectContaining({ code: "unknown_global", severity: "suspicious", global: "sklearn.tree.DecisionTreeClassifier" }),
    ]);
  });

  it("module.* matches the module and its submodules by dotted prefix only", () => {
    const p = policy(["sklearn.*"]);
    expect(classifyGlobal("sklearn", "X", p).safety).toBe("innocuous");
    expect(classifyGlobal("sklearn.tree._classes", "DecisionTreeClassifier", p).safety).toBe("innocuous");
    expect(classifyGlobal("sklearnx", "X", p).safety).toBe("unknown");
  });

  it("module.name matches exactly that import", () => {
    const p = policy(["xgboost.core.Booster"]);
    expect(classifyGlobal("xgboost.core", "Booster", p).safety).toBe("innocuous");
    expect(classifyGlobal("xgboost.core", "DMatrix", p).safety).toBe("unknown");
    expect(classifyGlobal("xgboost", "core.Booster", p).safety).toBe("unknown");
  });

  it("dotted names (attribute traversal) and dunder names are never matched by a pattern", () => {
    const p = policy(["sklearn.*", "collections.*"]);
    expect(classifyGlobal("sklearn.tree", "DecisionTreeClassifier.fit", p).safety).toBe("unknown");
    expect(classifyGlobal("sklearn.tree", "__reduce__", p).safety).toBe("unknown");
    expect(classifyGlobal("collections", "OrderedDict.__init__.__globals__", p)).toEqual(
      expect.objectContaining({ safety: "dangerous", code: "dangerous_global" }),
    );
    expect(classifyGlobal("torch._utils", "_rebuild_tensor.__globals__", policy())).toEqual(expect.objectContaining({ safety: "dangerous" }));
  });

  it("checks the name the loader imports after the Python 2 fixes as well as the one in the bytes", () => {
    // __builtin__.reduce is imported as functools.reduce: allowing "__builtin__.*" does not allow it.
    expect(classifyGlobal("__builtin__", "reduce", policy(["UserDict.*"])).safety).toBe("dangerous");
    expect(classifyGlobal("UserDict", "UserDict", policy(["UserDict.*"])).safety).toBe("unknown");
    expect(classifyGlobal("UserDict", "UserDict", policy(["UserDict.*", "collections.UserDict"])).safety).toBe("innocuous");
  });

  it("rejects malformed patterns", () => {
    for (const bad of ["*", "os*", "a..b", "sklearn", "", "a.__dict__", "__builtin__.*", "a.b.*.c", "a b"]) {
      expect(invalidGlobalPattern(bad)).toBeDefined();
      expect(() => policy([bad])).toFailWithCode("invalid_config");
    }
    for (const good of ["sklearn.*", "xgboost.core.Booster", "a_b.c1.*"]) expect(invalidGlobalPattern(good)).toBeUndefined();
  });

  it("allowGlobals of the content policy and extra patterns both apply", () => {
    const p = makePicklePolicy({ ...DEFAULT_CONTENT_POLICY, allowGlobals: ["a.*"] }, ["b.C"]);
    expect(classifyGlobal("a.x", "Y", p).safety).toBe("innocuous");
    expect(classifyGlobal("b", "C", p).safety).toBe("innocuous");
  });
});

describe("imports the analyzer cannot prove, and EXT opcodes", () => {
  it.each<[string, PickleOp[]]>([
    [
      "a module from a call result",
      [["PROTO", 4], ["GLOBAL", "builtins", "str"], ["EMPTY_TUPLE"], ["REDUCE"], ["SHORT_BINUNICODE", "system"], ["STACK_GLOBAL"], ["STOP"]],
    ],
    ["a name that is bytes", [["PROTO", 4], ["SHORT_BINUNICODE", "os"], ["SHORT_BINBYTES", new TextEncoder().encode("system")], ["STACK_GLOBAL"], ["STOP"]]],
    ["a name that is an int", [["PROTO", 4], ["SHORT_BINUNICODE", "os"], ["BININT1", 1], ["STACK_GLOBAL"], ["STOP"]]],
    ["a name from an EXT opcode", [["PROTO", 4], ["SHORT_BINUNICODE", "os"], ["EXT1", 1], ["STACK_GLOBAL"], ["STOP"]]],
  ])("STACK_GLOBAL with %s is unresolved_global (dangerous)", (_name, ops) => {
    const a = analyzeOps(ops);
    expect(a.node.findings).toContainEqual(expect.objectContaining({ code: "unresolved_global", severity: "dangerous" }));
  });

  it("a STACK_GLOBAL string longer than the retained bound cannot be proven", () => {
    const a = analyzeOps([["PROTO", 4], ["SHORT_BINUNICODE", "collections"], ["BINUNICODE", "OrderedDict"], ["STACK_GLOBAL"], ["STOP"]], {
      limits: { maxRetainedArgumentBytes: 8 },
    });
    expect(codesOf(a)).toContain("unresolved_global");
  });

  it.each<[string, PickleOp]>([
    ["EXT1", ["EXT1", 1]],
    ["EXT2", ["EXT2", 0x1234]],
    ["EXT4", ["EXT4", 0x7fffffff]],
  ])("%s is extension_opcode (dangerous) and still reported when followed by a call", (_n, op) => {
    const a = analyzeOps([["PROTO", 2], op, ["EMPTY_TUPLE"], ["REDUCE"], ["STOP"]]);
    expect(a.node.findings).toEqual([expect.objectContaining({ code: "extension_opcode", severity: "dangerous" })]);
    expect(a.node.imports?.[0]).toEqual(expect.objectContaining({ safety: "dangerous", opcode: _n }));
  });

  it("BUILD, APPEND or SETITEM applied to an imported object itself is dangerous (module state)", () => {
    for (const op of [
      [["EMPTY_DICT"], ["BUILD"]],
      [["NONE"], ["APPEND"]],
      [["NONE"], ["NONE"], ["SETITEM"]],
    ] as PickleOp[][]) {
      const a = analyzeOps([["PROTO", 2], ["GLOBAL", "collections", "OrderedDict"], ...op, ["STOP"]]);
      expect(a.node.findings).toContainEqual(expect.objectContaining({ code: "dangerous_global", severity: "dangerous", global: "collections.OrderedDict" }));
    }
  });

  it("a call on something that is not an import is reported", () => {
    const a = analyzeOps([["PROTO", 2], ["SHORT_BINUNICODE", "x"], ["EMPTY_TUPLE"], ["REDUCE"], ["STOP"]]);
    expect(a.node.findings).toEqual([expect.objectContaining({ code: "unresolved_global", severity: "suspicious" })]);
  });

  it("records every import once per stream with its opcode and offset, and every problem", () => {
    const a = analyzeOps([
      ["PROTO", 2],
      ["GLOBAL", "os", "system"],
      ["POP"],
      ["GLOBAL", "os", "system"],
      ["POP"],
      ["GLOBAL", "sklearn", "X"],
      ["POP"],
      ["GLOBAL", "collections", "OrderedDict"],
      ["STOP"],
    ]);
    expect(a.node.imports?.map((i) => [i.module, i.name, i.safety, i.opcode, i.offset])).toEqual([
      ["os", "system", "dangerous", "GLOBAL", 2],
      ["sklearn", "X", "unknown", "GLOBAL", 26],
      ["collections", "OrderedDict", "innocuous", "GLOBAL", 38],
    ]);
    expect(codesOf(a)).toEqual(["dangerous_global", "unknown_global"]);
  });
});

describe("attribute traversal", () => {
  it("a dotted name is not allowed even when it spells a safe-set entry", () => {
    expect(classifyGlobal("torch", "_utils._rebuild_tensor_v2", policy()).safety).toBe("unknown");
    expect(classifyGlobal("collections", "OrderedDict.fromkeys", policy(["collections.*"])).safety).toBe("unknown");
  });
});
