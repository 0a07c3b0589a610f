import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { scanCommand } from "../../src/cli/commands/scan";
import { locationProblem } from "../../src/formats/models/onnx";
import { ContentPolicySchema, contentPolicyDigest, DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import type { InspectionNode, InspectionReport } from "../../src/inspect/report";
import { rejectionCode } from "../../src/inspect/report";
import { ONNX_MAX_MESSAGE_DEPTH, ONNX_MAX_STRING_BYTES } from "../../src/limits";
import { useInspectBytes } from "../support/inspectBytes";
import { buildZip } from "./zipBuilder";

/**
 * The ONNX inspector (src/formats/models/onnx.ts) on real models made by the onnx package
 * (test/fixtures/generate.py gen_onnx) and on protobuf written here field by field. Before it,
 * every ONNX model was `unsupported_format`: each rejection below was that code, and each accept
 * was a rejection.
 */

const FIXTURES = join(__dirname, "..", "fixtures", "other");
const fixture = (name: string): Uint8Array => readFileSync(join(FIXTURES, name));
const inspectBytes = useInspectBytes("onnx");

function rejecting(r: InspectionReport): string[] {
  return [...new Set(r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code))].sort();
}

function find(node: InspectionNode, pred: (n: InspectionNode) => boolean): InspectionNode | undefined {
  if (pred(node)) return node;
  for (const c of node.children) {
    const hit = find(c, pred);
    if (hit !== undefined) return hit;
  }
  return undefined;
}

// ---- protobuf written by hand ----------------------------------------------------------------

const enc = new TextEncoder();
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}
const len = (field: number, payload: number[] | string): number[] => {
  const bytes = typeof payload === "string" ? Array.from(enc.encode(payload)) : payload;
  return [...varint(field * 8 + 2), ...varint(bytes.length), ...bytes];
};
const int = (field: number, value: number): number[] => [...varint(field * 8), ...varint(value)];

const node = (opType: string, domain = "", attrs: number[][] = []): number[] => [
  ...len(1, "x"),
  ...len(2, "y"),
  ...len(4, opType),
  ...(domain === "" ? [] : len(7, domain)),
  ...attrs.flatMap((a) => len(5, a)),
];
const graph = (nodes: number[][], initializers: number[][] = []): number[] => [
  ...nodes.flatMap((n) => len(1, n)),
  ...len(2, "g"),
  ...initializers.flatMap((t) => len(5, t)),
];
const model = (g: number[], extra: number[] = []): Uint8Array =>
  Uint8Array.from([...int(1, 8), ...len(7, g), ...len(8, [...len(1, ""), ...int(2, 13)]), ...extra]);
const entry = (key: string, value: string): number[] => len(13, [...len(1, key), ...len(2, value)]);
const externalTensor = (entries: [string, string][], location = true): number[] => [
  ...int(1, 4),
  ...int(2, 1),
  ...len(8, "W"),
  ...entries.flatMap(([k, v]) => entry(k, v)),
  ...(location ? int(14, 1) : []),
];
const subgraphAttr = (g: number[]): number[] => [...len(1, "then_branch"), ...len(6, g), ...int(20, 5)];

// ---- real models -------------------------------------------------------------------------------

describe("ONNX models made by the onnx package", () => {
  it.each(["onnx_gemm_relu.onnx", "onnx_if.onnx", "onnx_local_function.onnx", "onnx_com_microsoft.onnx", "onnx_reordered.onnx", "onnx_real.onnx"])(
    "accepts %s",
    async (name) => {
      const r = await inspectBytes(fixture(name), name);
      expect([r.format, r.verdict, rejecting(r)]).toEqual(["onnx", "accept", []]);
    },
  );

  it("walks every graph: the If node's two subgraphs are counted", async () => {
    const r = await inspectBytes(fixture("onnx_if.onnx"), "m.onnx");
    const onnx = find(r.root, (n) => n.kind === "onnx");
    expect([onnx?.details?.graphs, onnx?.details?.nodes]).toEqual([3, 3]);
  });

  it("reads the hand-reordered model as the canonical one", async () => {
    const a = await inspectBytes(fixture("onnx_gemm_relu.onnx"), "a.onnx");
    const b = await inspectBytes(fixture("onnx_reordered.onnx"), "b.onnx");
    expect(b.root.details).toEqual(a.root.details);
  });
});

describe("custom operators", () => {
  it.each([
    ["onnx_custom_op.onnx", "#graph.node[0]"],
    ["onnx_custom_op_in_if.onnx", "subgraph[0]"],
    ["onnx_custom_op_in_function.onnx", "functions['custom.local:ScaledRelu']"],
    ["onnx_function_domain_undefined_op.onnx", "#graph.node[0]"],
    ["onnx_graph_twice.onnx", "#graph.node[2]"],
    ["onnx_custom_op_reordered.onnx", "#graph.node[0]"],
  ])("rejects %s (custom_operator, suspicious, at %s)", async (name, where) => {
    const r = await inspectBytes(fixture(name), name);
    expect([r.format, rejecting(r), rejectionCode(r)]).toEqual(["onnx", ["custom_operator"], "unsafe_artifact"]);
    const f = r.findings.find((x) => x.code === "custom_operator" && x.details?.opType !== undefined);
    expect(f?.severity).toBe("suspicious");
    expect(f?.location).toContain(where);
  });

  it("admits them when the policy sets allowCustomOperators, still reported", async () => {
    const r = await inspectBytes(fixture("onnx_custom_op.onnx"), "m.onnx", { allowCustomOperators: true });
    expect(r.verdict).toBe("accept");
    expect(r.findings.filter((f) => f.code === "custom_operator").map((f) => f.severity)).toEqual(["innocuous", "innocuous"]);
  });

  it("flags an opset_import of a domain nothing implements, even with no node using it", async () => {
    const r = await inspectBytes(model(graph([node("Relu")]), len(8, [...len(1, "com.example.x"), ...int(2, 1)])), "m.onnx");
    expect(rejecting(r)).toEqual(["custom_operator"]);
  });

  it("accepts every built-in domain: '', ai.onnx, ai.onnx.ml, ai.onnx.preview.training, com.microsoft", async () => {
    const nodes = ["", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft"].map((d) => node("Relu", d));
    const r = await inspectBytes(model(graph(nodes)), "m.onnx");
    expect([r.verdict, find(r.root, (n) => n.kind === "onnx")?.details?.nodes]).toEqual(["accept", 5]);
  });

  it("finds a custom node in a Loop body nested in an If branch, and in a graphs (repeated) attribute", async () => {
    const inner = graph([node("Evil", "com.example.x")]);
    const loop = node("Loop", "", [subgraphAttr(inner)]);
    const r1 = await inspectBytes(model(graph([node("If", "", [subgraphAttr(graph([loop]))])])), "m.onnx");
    expect(rejecting(r1)).toEqual(["custom_operator"]);
    const graphsAttr = [...len(1, "branches"), ...len(11, graph([node("Relu")])), ...len(11, inner), ...int(20, 10)];
    const r2 = await inspectBytes(model(graph([node("Scan", "", [graphsAttr])])), "m.onnx");
    expect(rejecting(r2)).toEqual(["custom_operator"]);
  });

  it("reads the last domain when a node repeats the field (protobuf: last one wins)", async () => {
    const twice = [...node("Relu", "com.example.x"), ...len(7, "")];
    expect((await inspectBytes(model(graph([twice])), "a.onnx")).verdict).toBe("accept");
    const twiceBad = [...node("Relu", ""), ...len(7, "com.example.x")];
    expect(rejecting(await inspectBytes(model(graph([twiceBad])), "b.onnx"))).toEqual(["custom_operator"]);
  });

  it("skips a known field number written with another wire type, as protobuf keeps it as an unknown field", async () => {
    // GraphProto.node (1) and NodeProto.domain (7) as varints: unknown fields to the parser.
    const r = await inspectBytes(model([...int(1, 3), ...graph([[...node("Relu"), ...int(7, 1)]])]), "m.onnx");
    expect([r.verdict, find(r.root, (n) => n.kind === "onnx")?.details?.nodes]).toEqual(["accept", 1]);
  });
});

describe("external data", () => {
  it("accepts the onnx.save_model(save_as_external_data=True) folder as a zip and as a tar.gz; the data file is the model's", async () => {
    for (const name of ["onnx_external.zip", "onnx_external.tar.gz"]) {
      const r = await inspectBytes(fixture(name), name);
      expect([name, r.verdict, rejecting(r)]).toEqual([name, "accept", []]);
      const onnx = find(r.root, (n) => n.kind === "onnx");
      expect(onnx?.details?.externalDataFiles).toEqual(["model/weights.data"]);
      expect(find(r.root, (n) => n.path.endsWith("model/weights.data"))?.kind).toBe("onnx-external-data");
    }
  });

  it.each([
    ["onnx_external_dotdot.zip", "path_traversal"],
    ["onnx_external_absolute.zip", "path_traversal"],
    ["onnx_external_memaddr.zip", "path_traversal"],
    ["onnx_external_offset.zip", "malformed_container"],
    ["onnx_external_truncated.zip", "malformed_container"],
    ["onnx_external_missing.zip", "malformed_container"],
    ["onnx_external_alone.onnx", "malformed_container"],
  ])("rejects %s (%s)", async (name, code) => {
    const r = await inspectBytes(fixture(name), name);
    expect(rejecting(r)).toContain(code);
    if (code === "path_traversal") expect(r.findings.find((f) => f.code === code)?.severity).toBe("dangerous");
  });

  it("refuses every location that leaves the model's folder or is not a plain relative path", () => {
    for (const bad of ["../w", "a/../../w", "a/..", "/etc/passwd", "C:/w", "c:w", "a\\..\\w", "w\0", "w\n", "", "*/_ORT_MEM_ADDR_/*"]) {
      expect([bad, locationProblem(bad) !== undefined]).toEqual([bad, true]);
    }
    for (const good of ["weights.data", "./weights.data", "sub/weights.data", "a..b"]) expect([good, locationProblem(good)]).toEqual([good, undefined]);
  });

  async function inZip(tensor: number[], data = new Uint8Array(100)): Promise<InspectionReport> {
    const zip = buildZip([
      { name: "m/model.onnx", data: model(graph([node("Relu")], [tensor])) },
      { name: "m/w.bin", data },
    ]);
    return inspectBytes(zip, "m.zip");
  }

  it("resolves the location against the model's folder, lexically normalised", async () => {
    expect(
      await inzipVerdict([
        ["location", "./w.bin"],
        ["offset", "10"],
        ["length", "90"],
      ]),
    ).toEqual(["accept", []]);
    expect((await inzipVerdict([["location", "m/w.bin"]]))[1]).toEqual(["malformed_container"]);
  });

  /** Verdict and rejecting codes; an unreferenced w.bin is also an opaque member, left out here. */
  async function inzipVerdict(entries: [string, string][], location = true): Promise<[string, string[]]> {
    const r = await inZip(externalTensor(entries, location));
    return [r.verdict, rejecting(r).filter((c) => c !== "opaque_member")];
  }

  it("checks offset + length against the data file (at the end is fine, one past is not)", async () => {
    expect(
      await inzipVerdict([
        ["location", "w.bin"],
        ["offset", "100"],
        ["length", "0"],
      ]),
    ).toEqual(["accept", []]);
    expect(
      await inzipVerdict([
        ["location", "w.bin"],
        ["offset", "50"],
        ["length", "51"],
      ]),
    ).toEqual(["reject", ["malformed_container"]]);
    expect(
      await inzipVerdict([
        ["location", "w.bin"],
        ["offset", "101"],
      ]),
    ).toEqual(["reject", ["malformed_container"]]);
  });

  it("refuses keys onnxruntime refuses, values that are not decimal integers, and disagreeing repeats", async () => {
    expect(
      await inzipVerdict([
        ["location", "w.bin"],
        ["basepath", "/"],
      ]),
    ).toEqual(["reject", ["malformed_container"]]);
    expect(
      await inzipVerdict([
        ["location", "w.bin"],
        ["offset", "-1"],
      ]),
    ).toEqual(["reject", ["malformed_container"]]);
    expect(
      await inzipVerdict([
        ["location", "w.bin"],
        ["offset", "0x10"],
      ]),
    ).toEqual(["reject", ["malformed_container"]]);
    expect(
      await inzipVerdict([
        ["location", "w.bin"],
        ["offset", "1"],
        ["offset", "2"],
      ]),
    ).toEqual(["reject", ["malformed_container"]]);
    expect(await inzipVerdict([["offset", "1"]])).toEqual(["reject", ["malformed_container"]]);
  });

  it("checks every location written for a tensor (onnx and onnxruntime keep the last one)", async () => {
    expect(
      (
        await inzipVerdict([
          ["location", "../x"],
          ["location", "w.bin"],
        ])
      )[1],
    ).toEqual(["path_traversal"]);
    expect(
      (
        await inzipVerdict([
          ["location", "w.bin"],
          ["location", "/etc/passwd"],
        ])
      )[1],
    ).toEqual(["path_traversal"]);
  });

  it("checks external_data entries even when data_location is not EXTERNAL (fail closed)", async () => {
    expect(await inzipVerdict([["location", "../w.bin"]], false)).toEqual(["reject", ["path_traversal"]]);
  });

  it("checks tensors of attributes (Constant value) and inside subgraphs and sparse initializers", async () => {
    const t = externalTensor([["location", "../w.bin"]]);
    const constant = node("Constant", "", [[...len(1, "value"), ...len(5, t), ...int(20, 4)]]);
    expect(rejecting(await inspectBytes(model(graph([constant])), "a.onnx"))).toEqual(["path_traversal"]);
    const sub = node("If", "", [subgraphAttr(graph([node("Relu")], [t]))]);
    expect(rejecting(await inspectBytes(model(graph([sub])), "b.onnx"))).toEqual(["path_traversal"]);
    const sparse = Uint8Array.from([...int(1, 8), ...len(7, [...graph([node("Relu")]), ...len(15, len(1, t))])]);
    expect(rejecting(await inspectBytes(sparse, "c.onnx"))).toEqual(["path_traversal"]);
  });

  it("does not let a model inside a compressed member use the archive's files", async () => {
    const onnx = model(graph([node("Relu")], [externalTensor([["location", "w.bin"]])]));
    const zip = buildZip([
      { name: "model.onnx.gz", data: gzipSync(onnx) },
      { name: "w.bin", data: new Uint8Array(100) },
    ]);
    const r = await inspectBytes(zip, "m.zip", { allowOpaqueMembers: true });
    expect(rejecting(r)).toEqual(["malformed_container"]);
  });
});

describe("bounds and malformed models", () => {
  it("rejects graphs nested past protobuf's recursion limit (ONNX_MAX_MESSAGE_DEPTH)", async () => {
    let g = graph([node("Relu")]);
    for (let i = 0; i < ONNX_MAX_MESSAGE_DEPTH; i++) g = graph([node("If", "", [subgraphAttr(g)])]);
    const r = await inspectBytes(model(g), "deep.onnx");
    expect([r.format, rejecting(r)]).toEqual(["onnx", ["malformed_container"]]);
  });

  it("rejects a string longer than ONNX_MAX_STRING_BYTES (limit_exceeded)", async () => {
    const r = await inspectBytes(model(graph([node("x".repeat(ONNX_MAX_STRING_BYTES + 1), "com.example")])), "m.onnx");
    expect(rejecting(r)).toEqual(["limit_exceeded"]);
  });

  it("rejects a nested message whose field runs past its end, and a bad wire type inside the graph", async () => {
    const broken = [...len(1, [...varint(4 * 8 + 2), ...varint(50), 0x41])];
    expect(rejecting(await inspectBytes(model(broken), "a.onnx"))).toEqual(["malformed_container"]);
    expect(rejecting(await inspectBytes(model([...len(1, node("Relu")), 0x0f]), "b.onnx"))).toEqual(["malformed_container"]);
  });

  it("rejects a truncated model (no longer a whole protobuf message)", async () => {
    const r = await inspectBytes(fixture("onnx_truncated.onnx"), "m.onnx");
    expect(r.verdict).toBe("reject");
  });
});

describe("policy and CLI", () => {
  it("allowCustomOperators is optional: a policy without it keeps its digest", () => {
    const parsed = ContentPolicySchema.parse({});
    expect(contentPolicyDigest(parsed)).toBe(contentPolicyDigest({ ...DEFAULT_CONTENT_POLICY }));
    expect(contentPolicyDigest(ContentPolicySchema.parse({ allowCustomOperators: true }))).not.toBe(contentPolicyDigest(parsed));
  });

  it("modelgate scan rejects a custom operator by default and admits it with --allow-custom-operators", async () => {
    const run = async (args: string[]): Promise<number> => scanCommand.run(args, { stdout: () => undefined, stderr: () => undefined, env: {}, cwd: FIXTURES });
    expect(await run(["onnx_custom_op.onnx"])).toBe(1);
    expect(await run(["--allow-custom-operators", "onnx_custom_op.onnx"])).toBe(0);
  });
});

describe("external data in other layouts that walk their members", () => {
  it("an MLflow onnx-flavor bundle (mlflow.onnx.save_model keeps external data next to model.onnx) sees its data file", async () => {
    const mlmodel =
      "artifact_path: model\nflavors:\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.12.0\n    providers:\n    - CPUExecutionProvider\n";
    const onnxModel = model(
      graph(
        [node("Relu")],
        [
          externalTensor([
            ["location", "weights.data"],
            ["offset", "0"],
            ["length", "64"],
          ]),
        ],
      ),
    );
    const zip = buildZip([
      { name: "model/MLmodel", data: mlmodel },
      { name: "model/model.onnx", data: onnxModel },
      { name: "model/weights.data", data: new Uint8Array(64).fill(7) },
    ]);
    const r = await inspectBytes(zip, "bundle.zip");
    expect([r.format, r.verdict, rejecting(r)]).toEqual(["mlflow", "accept", []]);
    expect(find(r.root, (n) => n.path.endsWith("model/weights.data"))?.kind).toBe("onnx-external-data");
  });
});
