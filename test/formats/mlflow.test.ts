import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import fc from "fast-check";
import { inspectPath } from "../../src/formats/inspectFile";
import { BufferSource } from "../../src/bytes/source";
import type { ArchiveContents, ArchiveMember } from "../../src/formats/containers/archive";
import type { FormatContext } from "../../src/formats/context";
import { inspectArchive, inspectMember } from "../../src/formats/dispatch";
import { embeddedCodeIn, inspectMlflow, isMlflowLayout, parseSafeYaml } from "../../src/formats/models/mlflow";
import { readTar } from "../../src/formats/containers/tar";
import { readZip } from "../../src/formats/containers/zip";
import { GatewayError } from "../../src/errors";
import { DEFAULT_CONTENT_POLICY, type ContentPolicy } from "../../src/inspect/policy";
import type { Finding, InspectionNode } from "../../src/inspect/report";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, MAX_YAML_ALIAS_COUNT, type ContainerLimits } from "../../src/limits";
import { buildTar, type TarSpec } from "./builders/tar";

const FIXTURES = join(__dirname, "..", "fixtures", "mlflow");
let tempDir: string;
beforeAll(() => {
  tempDir = mkdtempSync(join(tmpdir(), "mlflow-test-"));
});
afterAll(() => {
  rmSync(tempDir, { recursive: true, force: true });
});

function ctxWith(policy: Partial<ContentPolicy> = {}, limits: Partial<ContainerLimits> = {}): FormatContext {
  return {
    policy: { ...DEFAULT_CONTENT_POLICY, ...policy },
    containerLimits: { ...DEFAULT_CONTAINER_LIMITS, ...limits },
    pickleLimits: DEFAULT_PICKLE_LIMITS,
    depth: 0,
    tempDir,
    budget: { uncompressedBytes: 0 },
    inspectMember,
    inspectArchive,
  };
}

function all(node: InspectionNode): Finding[] {
  return [...node.findings, ...node.children.flatMap(all)];
}
function rejecting(node: InspectionNode): string[] {
  return all(node)
    .filter((f) => f.severity !== "innocuous")
    .map((f) => f.code);
}

// Protocol 2 pickle of [1, 2] and a protocol 0 os.system call.
const BENIGN_PICKLE = Uint8Array.from([0x80, 0x02, 0x5d, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x65, 0x2e]);
const EVIL_PICKLE = new Uint8Array(Buffer.from("cos\nsystem\n(S'id'\ntR.", "latin1"));

const SKLEARN_MLMODEL = `artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.2
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.2.1
mlflow_version: 2.9.2
model_uuid: 5f1c0d6e8a3b4c2d9e7f6a5b4c3d2e1f
utc_time_created: '2024-01-01 00:00:00.000000'
`;
const CONDA = "channels:\n- conda-forge\ndependencies:\n- python=3.11.2\n- pip:\n  - mlflow==2.9.2\n  - scikit-learn==1.2.1\nname: mlflow-env\n";
const REQUIREMENTS = "# generated\nmlflow==2.9.2\nscikit-learn==1.2.1  # pinned\n\nnumpy==1.24.2\n";

function bundle(files: Record<string, string | Uint8Array>, root = "model"): TarSpec[] {
  const prefix = root === "" ? "" : `${root}/`;
  const parts: TarSpec[] = root === "" ? [] : [{ name: `${root}/`, type: "5" }];
  for (const [name, data] of Object.entries(files)) parts.push({ name: `${prefix}${name}`, data });
  return parts;
}

const BASE = { MLmodel: SKLEARN_MLMODEL, "conda.yaml": CONDA, "requirements.txt": REQUIREMENTS, "model.pkl": BENIGN_PICKLE };

async function inspectTarBundle(parts: TarSpec[], policy: Partial<ContentPolicy> = {}, limits: Partial<ContainerLimits> = {}): Promise<InspectionNode> {
  const ctx = ctxWith(policy, limits);
  const archive = await readTar(new BufferSource(buildTar(parts)), "bundle.tar", ctx);
  const root = isMlflowLayout(archive.members);
  if (root === undefined) throw new Error("not an MLflow layout");
  return inspectMlflow(archive, root, "", ctx);
}

describe("isMlflowLayout", () => {
  const m = (path: string, isDirectory = false): ArchiveMember => ({ path, size: 0, isDirectory, open: () => Promise.reject(new Error("unused")) });
  it("returns the folder holding the shallowest MLmodel", () => {
    expect(isMlflowLayout([m("model", true), m("model/MLmodel"), m("model/model.pkl")])).toBe("model");
    expect(isMlflowLayout([m("MLmodel"), m("model.pkl")])).toBe("");
    expect(isMlflowLayout([m("a/b/MLmodel"), m("x/MLmodel")])).toBe("x");
    expect(isMlflowLayout([m("model/model.pkl"), m("MLmodel", true)])).toBeUndefined();
    expect(isMlflowLayout([m("model/MLmodel.bak")])).toBeUndefined();
  });
});

describe("parseSafeYaml", () => {
  const codeOf = (text: string): string | undefined => {
    try {
      parseSafeYaml(text, "t");
    } catch (err) {
      return err instanceof GatewayError ? err.code : "other";
    }
    return undefined;
  };
  it("bounds alias expansion: at the limit and one past it", () => {
    const aliases = (n: number): string => `a: &x 1\nb: [${Array(n).fill("*x").join(", ")}]\n`;
    expect(codeOf(aliases(MAX_YAML_ALIAS_COUNT))).toBeUndefined();
    expect(codeOf(aliases(MAX_YAML_ALIAS_COUNT + 1))).toBe("limit_exceeded");
  });
  it("reads YAML 1.1 like PyYAML's safe_load", () => {
    expect(parseSafeYaml("a: yes\nb: 0777\nc: !!str 1\nd: ~\n", "t")).toEqual({ a: true, b: 511, c: "1", d: null });
  });
  it.each([
    ["a python tag", "a: !!python/object/apply:os.system ['id']\n", "malformed_container"],
    ["a local tag", "a: !custom 1\n", "malformed_container"],
    ["duplicate keys", "a: 1\na: 2\n", "malformed_container"],
    ["two documents", "a: 1\n---\nb: 2\n", "malformed_container"],
    ["bad syntax", "a: [1\n", "malformed_container"],
    [
      "an alias flood",
      `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [${Array(11).fill("*a").join(", ")}]\nc: [${Array(11).fill("*b").join(", ")}]\n`,
      "limit_exceeded",
    ],
  ])("rejects %s", (_name, text, code) => {
    expect(codeOf(text)).toBe(code);
  });
});

describe("embeddedCodeIn", () => {
  it("flags custom loaders, PythonModels, code paths and models from code", () => {
    expect(embeddedCodeIn({ flavors: { python_function: { loader_module: "mlflow.sklearn" }, sklearn: { code: null } } })).toEqual([]);
    expect(embeddedCodeIn({ flavors: { python_function: { loader_module: "evil.loader" } } })).toHaveLength(1);
    expect(embeddedCodeIn({ flavors: { python_function: { loader_module: "mlflow.pyfunc.model", python_model: "python_model.pkl" } } })).toHaveLength(2);
    expect(embeddedCodeIn({ flavors: { python_function: { loader_module: "mlflow.sklearn", code: "code" } } })).toHaveLength(1);
    expect(embeddedCodeIn({ flavors: { python_function: { model_code_path: "m.py" } } })).toHaveLength(2);
    expect(embeddedCodeIn({ flavors: { python_function: { loader_module: "mlflow.sklearn.__init__" } } })).toHaveLength(1);
  });
});

describe("inspectMlflow", () => {
  it("accepts a benign sklearn bundle and reports flavors and environment as data", async () => {
    const node = await inspectTarBundle(bundle(BASE));
    expect(rejecting(node)).toEqual([]);
    expect(node.format).toBe("mlflow");
    const details = node.details?.mlflow as Record<string, unknown>;
    expect(details).toMatchObject({ root: "model", flavors: ["python_function", "sklearn"], loaderModule: "mlflow.sklearn", mlflow_version: "2.9.2" });
    expect(details.environment).toMatchObject({
      "requirements.txt": ["mlflow==2.9.2", "scikit-learn==1.2.1", "numpy==1.24.2"],
      "conda.yaml": { name: "mlflow-env", channels: ["conda-forge"] },
    });
    // Every member but MLmodel is inspected by content; the pickle among them.
    expect(node.children.map((c) => c.path).sort()).toEqual(["model/conda.yaml", "model/model.pkl", "model/requirements.txt"]);
    expect(all(node).some((f) => f.code === "data_member")).toBe(true);
  });

  it("accepts path references to folders and with a ./ prefix", async () => {
    const mlmodel = SKLEARN_MLMODEL.replace("model_path: model.pkl", "model_path: ./model.pkl").replace("pickled_model: model.pkl", "pickled_model: data/");
    expect(rejecting(await inspectTarBundle(bundle({ ...BASE, MLmodel: mlmodel, "data/weights.pkl": BENIGN_PICKLE })))).toEqual([]);
  });

  it("accepts a bundle at the archive's top level", async () => {
    expect(rejecting(await inspectTarBundle(bundle(BASE, "")))).toEqual([]);
  });

  it("scans every pickle, whatever its name", async () => {
    expect(rejecting(await inspectTarBundle(bundle({ ...BASE, "model.pkl": EVIL_PICKLE })))).toContain("dangerous_global");
    expect(rejecting(await inspectTarBundle(bundle({ ...BASE, "extra/notes.txt": EVIL_PICKLE })))).toContain("dangerous_global");
  });

  it.each([
    ["a custom loader_module", { MLmodel: SKLEARN_MLMODEL.replace("loader_module: mlflow.sklearn", "loader_module: my_company.loader") }],
    ["a PythonModel loader", { MLmodel: SKLEARN_MLMODEL.replace("loader_module: mlflow.sklearn", "loader_module: mlflow.pyfunc.model") }],
    ["a code path in MLmodel", { MLmodel: SKLEARN_MLMODEL.replace("    code: null", "    code: src"), "src/helpers.py": "import os\n" }],
    ["a code/ directory", { "code/preprocess.py": "import os\n" }],
    ["a python_model.pkl", { "python_model.pkl": BENIGN_PICKLE }],
  ])("rejects %s as embedded_code unless the policy allows it", async (_name, extra) => {
    const files = { ...BASE, ...extra };
    const denied = await inspectTarBundle(bundle(files));
    expect(rejecting(denied)).toContain("embedded_code");
    expect(all(denied).find((f) => f.code === "embedded_code")?.severity).toBe("dangerous");
    const allowed = await inspectTarBundle(bundle(files), { allowEmbeddedCode: true });
    expect(rejecting(allowed)).toEqual([]);
    expect(all(allowed).some((f) => f.code === "embedded_code" && f.severity === "innocuous")).toBe(true);
  });

  it.each([
    ["a python YAML tag", { MLmodel: `${SKLEARN_MLMODEL}predict: !!python/object/apply:os.system ['id']\n` }],
    ["an MLmodel that is not a mapping", { MLmodel: "- a\n- b\n" }],
    ["an MLmodel without flavors", { MLmodel: "artifact_path: model\n" }],
    ["a flavor that is not a mapping", { MLmodel: "flavors:\n  sklearn: 3\n" }],
    ["an MLmodel that is not UTF-8", { MLmodel: Uint8Array.from([0x61, 0x3a, 0x20, 0xff, 0x0a]) }],
    ["a second MLmodel", { "nested/MLmodel": SKLEARN_MLMODEL }],
    ["a model_path outside the bundle", { MLmodel: SKLEARN_MLMODEL.replace("model_path: model.pkl", "model_path: ../../tmp/evil.pkl") }],
    ["an absolute pickled_model", { MLmodel: SKLEARN_MLMODEL.replace("pickled_model: model.pkl", "pickled_model: /tmp/evil.pkl") }],
    ["a model_path naming no member", { MLmodel: SKLEARN_MLMODEL.replace("model_path: model.pkl", "model_path: missing.pkl") }],
  ])("rejects %s as malformed_container", async (_name, extra) => {
    expect(rejecting(await inspectTarBundle(bundle({ ...BASE, ...extra })))).toContain("malformed_container");
  });

  it("bounds MLmodel's size: at the limit and one past it", async () => {
    const size = Buffer.byteLength(SKLEARN_MLMODEL);
    expect(rejecting(await inspectTarBundle(bundle({ MLmodel: SKLEARN_MLMODEL, "model.pkl": BENIGN_PICKLE }), {}, { maxTextMemberBytes: size }))).toEqual([]);
    expect(rejecting(await inspectTarBundle(bundle({ MLmodel: SKLEARN_MLMODEL, "model.pkl": BENIGN_PICKLE }), {}, { maxTextMemberBytes: size - 1 }))).toContain(
      "limit_exceeded",
    );
  });
});

describe("inspectMlflow on the committed bundles", () => {
  async function openFixture(file: string, ctx: FormatContext): Promise<ArchiveContents> {
    const bytes = readFileSync(join(FIXTURES, file));
    if (file.endsWith(".tar.gz")) return readTar(new BufferSource(gunzipSync(bytes)), file, ctx);
    return readZip(new BufferSource(bytes), file, ctx);
  }
  const sklearn = { allowGlobals: ["sklearn.*"] };
  it.each([
    ["sklearn_model.zip", sklearn, []],
    ["sklearn_model.tar.gz", sklearn, []],
    ["sklearn_with_signature.zip", sklearn, []],
    ["sklearn_model.zip", {}, ["unknown_global"]],
    ["malicious_model_pkl.zip", sklearn, ["dangerous_global"]],
    ["malicious_model_pkl.tar.gz", sklearn, ["dangerous_global"]],
    ["pyfunc_python_model.zip", {}, ["embedded_code"]],
    ["code_dir.zip", sklearn, ["embedded_code"]],
    ["code_dir.zip", { ...sklearn, allowEmbeddedCode: true }, []],
    ["custom_loader.zip", sklearn, ["embedded_code"]],
    ["python_yaml_tag.zip", sklearn, ["malformed_container"]],
  ] as const)("%s with %j", async (file, policy, expected) => {
    const ctx = ctxWith(policy);
    const archive = await openFixture(file, ctx);
    const root = isMlflowLayout(archive.members);
    expect(root).toBe("model");
    const node = await inspectMlflow(archive, root ?? "", file, ctx);
    const found = rejecting(node);
    if (expected.length === 0) expect(found).toEqual([]);
    else for (const code of expected) expect(found).toContain(code);
  });
});

describe("MLflow bundles through inspectFile", () => {
  it("reads a tar.gz bundle end to end: gzip, tar, MLflow layout, pickles", async () => {
    const file = join(tempDir, "bundle.tar.gz");
    writeFileSync(file, gzipSync(buildTar(bundle(BASE))));
    const ok = await inspectPath(file, { policy: { ...DEFAULT_CONTENT_POLICY }, fileName: "bundle.tar.gz" });
    expect(ok.verdict).toBe("accept");
    expect(ok.format).toBe("mlflow");
    writeFileSync(file, gzipSync(buildTar(bundle({ ...BASE, "model.pkl": EVIL_PICKLE }))));
    const bad = await inspectPath(file, { policy: { ...DEFAULT_CONTENT_POLICY }, fileName: "bundle.tar.gz" });
    expect(bad.verdict).toBe("reject");
    expect(bad.findings.some((f) => f.code === "dangerous_global")).toBe(true);
  });

  it("never crashes on mutated MLmodel text", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(SKLEARN_MLMODEL.length - 1), fc.constantFrom(":", " ", "\n", "-", "!", "&", "*", "{", "[", "'", "x", "#")), {
          minLength: 1,
          maxLength: 5,
        }),
        async (edits) => {
          const bytes = Buffer.from(SKLEARN_MLMODEL, "latin1");
          for (const [at, c] of edits) bytes[at] = c.charCodeAt(0);
          const node = await inspectTarBundle(bundle({ ...BASE, MLmodel: new Uint8Array(bytes) }));
          expect(node.kind).toBe("tar");
        },
      ),
      { numRuns: 200 },
    );
  });
});
