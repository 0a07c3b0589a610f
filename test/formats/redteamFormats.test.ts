import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BufferSource } from "../../src/bytes/source";
import { scanCommand } from "../../src/cli/commands/scan";
import { hdf5SignatureAt } from "../../src/formats/detect";
import type { ArchiveContents } from "../../src/formats/containers/archive";
import { codeReferences, parseClassReference, readLoaderConfigs } from "../../src/formats/models/loaderConfigs";
import { protobufModelFormat } from "../../src/formats/protobuf";
import type { Finding, InspectionReport } from "../../src/inspect/report";
import { MAX_PROTOBUF_SNIFF_FIELDS } from "../../src/limits";
import { buildTar } from "./builders/tar";
import { buildZip } from "./zipBuilder";
import { useInspectBytes } from "../support/inspectBytes";

/**
 * Red-team regressions of issue 10, families 4 and 5: formats recognised by what their loaders
 * read (Keras v3 config.json, SavedModel pbtxt, ONNX in any field order, HDF5 after any user
 * block, TFLite) and Hugging Face configs naming code by reference (remote_code). Real fixtures
 * come from test/fixtures/generate.py gen_formats (onnx, h5py, numpy); the rest is built here.
 * Every case here was accepted (or named another way) by the inspector before this change.
 */

const FIXTURES = join(__dirname, "..", "fixtures");

const inspectBytes = useInspectBytes("redteam-formats");

function fixture(name: string): Uint8Array {
  return readFileSync(join(FIXTURES, "other", name));
}

function rejecting(r: InspectionReport): string[] {
  return [...new Set(r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code))].sort();
}

function remoteCode(r: InspectionReport): Finding[] {
  return r.findings.filter((f) => f.code === "remote_code");
}

const enc = new TextEncoder();
const json = (v: unknown): string => JSON.stringify(v);

/** A protobuf key + payload (wire 0: varint value; wire 2: bytes). */
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
function pbField(field: number, wire: 0 | 2, payload: number | number[]): number[] {
  const key = varint(field * 8 + wire);
  if (wire === 0) return [...key, ...varint(payload as number)];
  const bytes = payload as number[];
  return [...key, ...varint(bytes.length), ...bytes];
}
const bytesOf = (s: string): number[] => Array.from(enc.encode(s));

describe("family 4: Keras v3 recognised by what keras.saving.load_model reads", () => {
  it.each([
    ["keras_v3_no_metadata.zip", "config.json + model.weights.npz, no metadata.json"],
    ["keras_v3_config_only.keras", "config.json alone"],
    ["keras_v3_dir.tar.gz", "a model directory in a tar.gz"],
  ])("%s (%s) is inspected as keras (benign config: accepted)", async (name) => {
    const r = await inspectBytes(fixture(name), name);
    expect([r.verdict, rejecting(r)]).toEqual(["accept", []]);
    expect(r.format).toBe("keras");
  });

  it("a generic zip whose member is a Keras zip is inspected by the member's content", async () => {
    const r = await inspectBytes(fixture("keras_v3_nested.zip"), "bundle.zip", { allowOpaqueMembers: true });
    expect(rejecting(r)).toEqual([]);
    expect(r.findings.map((f) => f.location)).toContain("models/model.keras/config.json");
  });

  it("a config.json Keras would instantiate, hidden inside an HF-looking config at any folder and any case, is Keras", async () => {
    const config = json({ model_type: "bert", hidden_size: 4, extra: [{ class_name: "Lambda", config: { function: "x" }, module: "keras.layers" }] });
    for (const name of ["config.json", "m/CONFIG.JSON"]) {
      const r = await inspectBytes(
        buildZip([
          { name, data: config },
          { name: "README.md", data: "# m\n" },
        ]),
        "m.zip",
      );
      expect([name, r.format, rejecting(r)]).toEqual([name, "keras", ["embedded_code"]]);
    }
  });

  it("a config.json next to a file saving_lib writes is Keras whatever it holds", async () => {
    const r = await inspectBytes(
      buildTar([
        { name: "k/config.json", data: "{}" },
        { name: "k/metadata.json", data: "{}" },
      ]),
      "k.tar",
    );
    expect([r.format, rejecting(r)]).toEqual(["keras", []]);
  });

  it("a zip of config.json alone is Keras whatever it holds (saving_lib deserializes it before it misses the weights)", async () => {
    const r = await inspectBytes(
      buildZip([{ name: "config.json", data: json({ model_type: "x", layer: { module: "evil", class_name: "X", config: {} } }) }]),
      "k.zip",
    );
    expect([r.format, rejecting(r)]).toEqual(["keras", ["unknown_class"]]);
  });

  it("a config.json with no Keras object and no Keras sibling stays data (a flat HF folder)", async () => {
    const r = await inspectBytes(fixture("hf_benign_flat.zip"), "hf.zip");
    expect([r.verdict, r.format]).toEqual(["accept", "zip"]);
  });
});

describe("family 4: other loaders' formats, alone and as members", () => {
  it("an ONNX model with its graph before ir_version is ONNX (onnx.load reads it), inspected and accepted", async () => {
    const r = await inspectBytes(fixture("onnx_graph_first.onnx"), "model.onnx");
    expect([r.format, r.verdict, rejecting(r)]).toEqual(["onnx", "accept", []]);
  });

  it("a field-reordered ONNX member is never an opaque member, even when the policy allows those", async () => {
    const r = await inspectBytes(fixture("onnx_graph_first_in.zip"), "m.zip", { allowOpaqueMembers: true });
    expect(rejecting(r)).toEqual([]);
    const member = r.root.children[0]?.children.find((c) => c.path === "weights.bin");
    expect([member?.kind, member?.format]).toEqual(["onnx", "onnx"]);
  });

  it("a SavedModel in text form (saved_model.pbtxt) is a SavedModel", async () => {
    const r = await inspectBytes(fixture("savedmodel_pbtxt.tar.gz"), "export.tar.gz");
    expect(rejecting(r)).toEqual(["unsupported_format"]);
    expect(JSON.stringify(r.root)).toContain('"format":"tensorflow-savedmodel"');
  });

  it("a TFLite flatbuffer member is unsupported_format, not opaque", async () => {
    const tflite = new Uint8Array(64);
    tflite.set([0x1c, 0, 0, 0, ...bytesOf("TFL3")]);
    const r = await inspectBytes(buildZip([{ name: "model.bin", data: tflite }]), "m.zip", { allowOpaqueMembers: true });
    expect(rejecting(r)).toEqual(["unsupported_format"]);
  });

  it("an HDF5 superblock after a 2 MiB user block is HDF5 (the HDF5 library searches every power of two)", async () => {
    const b = new Uint8Array(2 * 1024 * 1024 + 64);
    b.set([0x89, ...bytesOf("HDF\r\n\x1a\n")], 2 * 1024 * 1024);
    expect(hdf5SignatureAt(new BufferSource(b))).toBe(true);
    const r = await inspectBytes(b, "model.h5");
    expect([r.format, rejecting(r)]).toEqual(["hdf5", ["unsupported_format"]]);
  });

  it("a zip whose stored member puts an HDF5 superblock at a power-of-two offset of the zip is a polyglot", async () => {
    const hdf5 = fixture("keras_legacy_userblock.h5").subarray(512);
    const name = "notes.bin";
    const pad = 1024 - (30 + name.length);
    const blob = new Uint8Array(pad + hdf5.length);
    blob.set(hdf5, pad);
    const zip = buildZip([{ name, data: blob }]);
    expect(Array.from(zip.subarray(1024, 1028))).toEqual([0x89, 0x48, 0x44, 0x46]);
    const r = await inspectBytes(zip, "m.zip", { allowOpaqueMembers: true });
    expect(rejecting(r)).toEqual(["polyglot"]);
  });

  it("a Keras config.json spelled with a trailing dot (Windows opens it as config.json) is still read", async () => {
    const config = json({ class_name: "Sequential", config: { layers: [{ module: "evil.layers", class_name: "X", config: {} }] }, module: "keras" });
    const r = await inspectBytes(buildTar([{ name: "k/config.json.", data: config }]), "k.tar");
    expect([r.format, rejecting(r)]).toEqual(["keras", ["unknown_class"]]);
  });

  it("a safetensors file that h5py also opens (HDF5 after a user block) is a polyglot", async () => {
    const r = await inspectBytes(fixture("safetensors_hdf5_polyglot.safetensors"), "m.safetensors");
    expect(rejecting(r)).toEqual(["polyglot"]);
  });
});

describe("protobufModelFormat", () => {
  const onnx = (): number[] => Array.from(fixture("onnx_real.onnx"));
  const src = (b: number[] | Uint8Array): BufferSource => new BufferSource(Uint8Array.from(b));

  it("names ONNX in the serializer's order and in any other", () => {
    expect(protobufModelFormat(src(onnx()))).toBe("onnx");
    expect(protobufModelFormat(src(fixture("onnx_graph_first.onnx")))).toBe("onnx");
    const graph = pbField(7, 2, [...pbField(1, 2, [...pbField(4, 2, bytesOf("Relu"))])]);
    expect(protobufModelFormat(src([...pbField(2, 2, bytesOf("p")), ...graph, ...pbField(1, 0, 8)]))).toBe("onnx");
  });

  it("keeps naming ONNX with an unknown field (protobuf keeps those), and stops at a wrong wire type or trailing bytes", () => {
    expect(protobufModelFormat(src([...pbField(99, 2, [1, 2, 3]), ...onnx()]))).toBe("onnx");
    expect(protobufModelFormat(src([...pbField(7, 0, 5), ...pbField(1, 0, 8)]))).toBeUndefined();
    expect(protobufModelFormat(src([...onnx(), 0xff]))).toBeUndefined();
    expect(protobufModelFormat(src(onnx().slice(0, -1)))).toBeUndefined();
    expect(protobufModelFormat(src([]))).toBeUndefined();
  });

  it("skips an unknown group as protobuf parsers do (onnx.load reads a model prefixed by one), and refutes broken groups", () => {
    const group = [...varint(99 * 8 + 3), ...pbField(1, 0, 5), ...varint(99 * 8 + 4)];
    expect(protobufModelFormat(src([...group, ...onnx()]))).toBe("onnx");
    expect(protobufModelFormat(src([...varint(99 * 8 + 3), ...onnx()]))).toBeUndefined();
    expect(protobufModelFormat(src([...varint(99 * 8 + 4), ...onnx()]))).toBeUndefined();
    expect(protobufModelFormat(src([...varint(7 * 8 + 3), ...varint(7 * 8 + 4), ...onnx()]))).toBeUndefined();
    const deep = (n: number): number[] => [
      ...Array.from({ length: n }, () => varint(98 * 8 + 3)).flat(),
      ...Array.from({ length: n }, () => varint(98 * 8 + 4)).flat(),
    ];
    expect(protobufModelFormat(src([...deep(100), ...onnx()]))).toBe("onnx");
    expect(protobufModelFormat(src([...deep(101), ...onnx()]))).toBeUndefined();
  });

  it("does not name pickles, JSON or text", () => {
    expect(protobufModelFormat(src([0x80, 0x04, 0x95, 0x05, 0, 0, 0, 0, 0, 0, 0, 0x4b, 0x01, 0x2e]))).toBeUndefined();
    expect(protobufModelFormat(src(bytesOf("(lp0\nI1\na.")))).toBeUndefined();
    expect(protobufModelFormat(src(bytesOf('{"a": 1}')))).toBeUndefined();
    expect(protobufModelFormat(src(bytesOf("hello world\n")))).toBeUndefined();
  });

  it("names a SavedModel (schema version, one MetaGraphDef)", () => {
    const metaGraph = [...pbField(1, 2, pbField(4, 2, bytesOf("serve"))), ...pbField(2, 2, [])];
    expect(protobufModelFormat(src([...pbField(1, 0, 1), ...pbField(2, 2, metaGraph)]))).toBe("tensorflow-savedmodel");
    // field order does not matter either
    expect(protobufModelFormat(src([...pbField(2, 2, metaGraph), ...pbField(1, 0, 1)]))).toBe("tensorflow-savedmodel");
  });

  it("reads at most MAX_PROTOBUF_SNIFF_FIELDS fields: a longer ModelProto-shaped prefix is named ONNX (fail closed)", () => {
    const field = pbField(5, 0, 1);
    const atLimit = [...pbField(1, 0, 8), ...Array.from({ length: MAX_PROTOBUF_SNIFF_FIELDS - 1 }, () => field).flat()];
    expect(protobufModelFormat(src(atLimit))).toBe("onnx");
    // Garbage within the limit is read and refutes the message; past the limit it is never read.
    expect(protobufModelFormat(src([...atLimit.slice(0, -field.length), 0xff]))).toBeUndefined();
    expect(protobufModelFormat(src([...atLimit, 0xff]))).toBe("onnx");
  });
});

describe("family 5: code by reference in Hugging Face folders (remote_code)", () => {
  it("a local auto_map with no .py member is remote_code, with module and class in its details", async () => {
    const r = await inspectBytes(fixture("hf_auto_map_local.tar.gz"), "tiny.tar.gz");
    expect(rejecting(r)).toEqual(["remote_code"]);
    expect(remoteCode(r).map((f) => [f.severity, f.details])).toEqual([
      ["suspicious", { file: "tiny/config.json", key: "auto_map.AutoConfig", module: "configuration_tiny", class: "TinyConfig" }],
      ["suspicious", { file: "tiny/config.json", key: "auto_map.AutoModel", module: "modeling_tiny", class: "TinyModel" }],
    ]);
  });

  it("a cross-repository reference names the repository", async () => {
    const r = await inspectBytes(fixture("hf_auto_map_cross_repo.zip"), "m.zip");
    expect(rejecting(r)).toEqual(["remote_code"]);
    expect(remoteCode(r).map((f) => f.details)).toContainEqual({
      file: "config.json",
      key: "auto_map.AutoModelForCausalLM",
      module: "modeling_x",
      class: "XForCausalLM",
      repository: "modelgate-fixture/payload",
    });
  });

  it("tokenizer_config.json auto_map lists and custom_pipelines impl are references too", async () => {
    const tok = await inspectBytes(fixture("hf_tokenizer_auto_map.tar.gz"), "t.tar.gz");
    expect(remoteCode(tok).map((f) => f.details)).toEqual([
      {
        file: "tiny/tokenizer_config.json",
        key: "auto_map.AutoTokenizer[0]",
        module: "tokenization_x",
        class: "XTokenizer",
        repository: "modelgate-fixture/tok",
      },
    ]);
    const pipe = await inspectBytes(fixture("hf_custom_pipeline.zip"), "p.zip");
    expect(remoteCode(pipe).map((f) => f.details)).toEqual([
      { file: "tiny/config.json", key: "custom_pipelines.tiny-classification.impl", module: "pipeline_tiny", class: "TinyPipeline" },
    ]);
  });

  it("preprocessor/processor configs, a legacy list auto_map and a BOM are read too", async () => {
    const bundle = buildTar([
      { name: "m/config.json", data: json({ model_type: "x" }) },
      { name: "m/preprocessor_config.json", data: `\uFEFF${json({ auto_map: { AutoImageProcessor: "image_processing_x.XImageProcessor" } })}` },
      { name: "m/Processor_Config.json", data: json({ auto_map: ["processing_x.XProcessor", null] }) },
    ]);
    const r = await inspectBytes(bundle, "m.tar");
    expect(remoteCode(r).map((f) => f.details?.key)).toEqual(["auto_map.AutoImageProcessor", "auto_map[0]"]);
  });

  it("an auto_map of a nested sub-config (text_config) is a reference too", async () => {
    const config = json({ model_type: "x", text_config: { model_type: "y", auto_map: { AutoModel: "org/r--modeling_y.Y" } } });
    const r = await inspectBytes(buildTar([{ name: "m/config.json", data: config }]), "m.tar");
    expect(remoteCode(r).map((f) => f.details)).toEqual([
      { file: "m/config.json", key: "text_config.auto_map.AutoModel", module: "modeling_y", class: "Y", repository: "org/r" },
    ]);
  });

  it("allowRemoteCode admits the references (innocuous, still reported with their details)", async () => {
    const r = await inspectBytes(fixture("hf_auto_map_local.tar.gz"), "tiny.tar.gz", { allowRemoteCode: true });
    expect(r.verdict).toBe("accept");
    expect(remoteCode(r).map((f) => [f.severity, f.details?.class])).toEqual([
      ["innocuous", "TinyConfig"],
      ["innocuous", "TinyModel"],
    ]);
  });

  it("allowEmbeddedCode does not admit an auto_map: the .py member and the reference are two findings", async () => {
    const r = await inspectBytes(fixture("hf_remote_code.tar.gz"), "hf.tar.gz", { allowEmbeddedCode: true });
    expect(rejecting(r)).toEqual(["remote_code"]);
  });

  it.each([
    ["auto_map value a number", { auto_map: { AutoModel: 7 } }],
    ["auto_map a string", { auto_map: "modeling_x.X" }],
    ["auto_map list item an object", { auto_map: { AutoTokenizer: [{ a: 1 }, null] } }],
    ["custom_pipelines task without impl", { custom_pipelines: { t: { pt: [] } } }],
    ["custom_pipelines a list", { custom_pipelines: ["x.Y"] }],
  ])("%s is malformed_container", async (_label, config) => {
    const r = await inspectBytes(buildTar([{ name: "m/config.json", data: json(config) }]), "m.tar");
    expect(rejecting(r)).toEqual(["malformed_container"]);
  });

  it.each([
    ["NaN (Python's json reads it)", "hf_config_nan.tar.gz"],
    ["a number as auto_map value", "hf_auto_map_malformed.tar.gz"],
  ])("a config.json with %s is malformed_container", async (_label, name) => {
    const r = await inspectBytes(fixture(name), name);
    expect(rejecting(r)).toEqual(["malformed_container"]);
  });

  it("a config.json that is not UTF-8 is malformed_container (Keras' json.loads(bytes) also reads UTF-16)", async () => {
    const utf16 = Buffer.from(json({ auto_map: { AutoModel: "modeling_x.X" } }), "utf16le");
    const r = await inspectBytes(buildTar([{ name: "m/config.json", data: utf16 }]), "m.tar", { allowOpaqueMembers: true });
    expect(rejecting(r)).toEqual(["malformed_container"]);
  });

  it("null auto_map entries and configs without references are accepted", async () => {
    const r = await inspectBytes(
      buildTar([
        { name: "m/config.json", data: json({ model_type: "x", auto_map: null }) },
        { name: "m/tokenizer_config.json", data: json({ auto_map: { AutoTokenizer: [null, null] } }) },
        { name: "m/generation_config.json", data: json({ max_length: 8 }) },
      ]),
      "m.tar",
    );
    expect(r.verdict).toBe("accept");
  });

  it("splits class references as get_class_from_dynamic_module does", () => {
    expect(parseClassReference("modeling_x.XModel")).toEqual({ module: "modeling_x", class: "XModel" });
    expect(parseClassReference("org/repo--modeling_x.XModel")).toEqual({ module: "modeling_x", class: "XModel", repository: "org/repo" });
    expect(codeReferences([1, 2], "config.json")).toEqual([]);
  });

  it("a loader config at MAX_LOADER_CONFIG_BYTES is parsed, one byte more is limit_exceeded", async () => {
    const member = (text: string) => ({
      path: "m/config.json",
      size: enc.encode(text).length,
      isDirectory: false,
      open: () => Promise.resolve({ source: new BufferSource(enc.encode(text)), close: () => undefined }),
    });
    const archive = (text: string): ArchiveContents => ({ kind: "tar", members: [member(text)], node: { kind: "tar", path: "", findings: [], children: [] } });
    const atLimit = `{"a":"${"x".repeat(56)}"}`;
    const findings: Finding[] = [];
    const configs = await readLoaderConfigs(archive(atLimit), "", findings, atLimit.length);
    expect([findings, configs[0]?.value]).toEqual([[], { a: "x".repeat(56) }]);
    await readLoaderConfigs(archive(`${atLimit} `), "", findings, atLimit.length);
    expect(findings.map((f) => f.code)).toEqual(["limit_exceeded"]);
  });

  it("the benign HF folder is accepted as tar.gz and as zip", async () => {
    for (const name of ["hf_benign.tar.gz", "hf_benign.zip"]) {
      const r = await inspectBytes(fixture(name), name);
      expect([name, r.verdict]).toEqual([name, "accept"]);
    }
  });
});

describe("modelgate scan --allow-remote-code", () => {
  async function scan(args: string[]): Promise<{ code: number; stdout: string }> {
    let stdout = "";
    const code = await scanCommand.run(args, { stdout: (t) => (stdout += t), stderr: () => undefined, env: {}, cwd: join(FIXTURES, "other") });
    return { code, stdout };
  }

  it("rejects a remote_code folder by default and accepts it with the flag", async () => {
    const without = await scan(["--json", "hf_auto_map_local.tar.gz"]);
    expect(without.code).toBe(1);
    const withFlag = await scan(["--json", "--allow-remote-code", "hf_auto_map_local.tar.gz"]);
    expect(withFlag.code).toBe(0);
    const doc = JSON.parse(withFlag.stdout) as { files: { findings: Finding[] }[] };
    expect(doc.files[0]?.findings.filter((f) => f.code === "remote_code").map((f) => f.severity)).toEqual(["innocuous", "innocuous"]);
  });
});
