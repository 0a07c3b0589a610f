import { readFileSync } from "node:fs";
import { join } from "node:path";
import { scanCommand } from "../../src/cli/commands/scan";
import { ContentPolicySchema, contentPolicyDigest } from "../../src/inspect/policy";
import type { InspectionReport } from "../../src/inspect/report";
import { useInspectBytes } from "../support/inspectBytes";
import { buildTar } from "./builders/tar";
import { buildZip } from "./zipBuilder";

/**
 * Keras v3 `.keras` (issue 12 item 3): config.json judged object by object at every depth
 * (src/formats/models/keras.ts). Fixtures: test/fixtures/generate.py gen_keras (h5py weights).
 * On main every one of these zips was `unsupported_format`.
 */

const inspectBytes = useInspectBytes("keras");

function fixture(name: string): Uint8Array {
  return readFileSync(join(__dirname, "..", "fixtures", "other", name));
}

function rejecting(r: InspectionReport): string[] {
  return [...new Set(r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code))].sort();
}

const dense = { module: "keras.layers", class_name: "Dense", config: { name: "dense", units: 2 }, registered_name: null };

function kerasZip(config: unknown): Uint8Array {
  return buildZip([
    { name: "metadata.json", data: JSON.stringify({ keras_version: "3.6.0", date_saved: "2000-01-01@00:00:00" }) },
    { name: "config.json", data: typeof config === "string" ? config : JSON.stringify(config) },
  ]);
}

function sequential(layers: unknown[], extra: Record<string, unknown> = {}): unknown {
  return { module: "keras", class_name: "Sequential", config: { name: "s", layers }, registered_name: null, ...extra };
}

describe("Keras v3 .keras", () => {
  it("a benign Sequential Dense model with h5 weights and a compile config is accepted as keras", async () => {
    const r = await inspectBytes(fixture("keras3_dense.keras"), "m.keras");
    expect([r.verdict, r.format, rejecting(r)]).toEqual(["accept", "keras", []]);
  });

  it("the npz-weights .keras of saving_lib is inspected, not refused as unsupported", async () => {
    const r = await inspectBytes(fixture("keras_v3.keras"), "m.keras");
    expect(r.format).toBe("keras");
    expect(rejecting(r)).not.toContain("unsupported_format");
  });

  it.each([
    ["keras3_lambda.keras", "embedded_code"],
    ["keras3_nested_lambda.keras", "embedded_code"],
    ["keras3_tfsmlayer.keras", "dangerous_class"],
    ["keras3_custom_module.keras", "unknown_class"],
  ])("%s is rejected with %s", async (name, code) => {
    const r = await inspectBytes(fixture(name), "m.keras");
    expect([r.verdict, r.format, rejecting(r)]).toEqual(["reject", "keras", [code]]);
  });

  it("a Lambda is admitted by allowEmbeddedCode, and still reported", async () => {
    const r = await inspectBytes(fixture("keras3_lambda.keras"), "m.keras", { allowEmbeddedCode: true });
    expect(r.verdict).toBe("accept");
    expect(r.findings.map((f) => f.code)).toContain("embedded_code");
  });

  it("keras.allowClasses admits a custom class by exact name or module wildcard, and no other", async () => {
    for (const pattern of ["mypkg.layers.MyLayer", "mypkg.layers.*", "mypkg.*"]) {
      const r = await inspectBytes(fixture("keras3_custom_module.keras"), "m.keras", { keras: { allowClasses: [pattern] } });
      expect([pattern, r.verdict]).toEqual([pattern, "accept"]);
    }
    const other = await inspectBytes(fixture("keras3_custom_module.keras"), "m.keras", { keras: { allowClasses: ["mypkg.layers.Other", "mypkg.lay.*"] } });
    expect(rejecting(other)).toEqual(["unknown_class"]);
  });

  it("a custom loss or optimizer in compile_config is unknown_class", async () => {
    const loss = { module: "evil.losses", class_name: "Loss", config: {}, registered_name: "evil>Loss" };
    const r = await inspectBytes(kerasZip(sequential([dense], { compile_config: { optimizer: "adam", loss, metrics: [] } })), "m.keras");
    expect(rejecting(r)).toEqual(["unknown_class"]);
  });

  it("a __lambda__ function object anywhere (e.g. an activation) is embedded_code", async () => {
    const act = { class_name: "__lambda__", config: { code: "AAAA", defaults: null, closure: null } };
    const r = await inspectBytes(kerasZip(sequential([{ ...dense, config: { name: "d", units: 2, activation: act } }])), "m.keras");
    expect(rejecting(r)).toEqual(["embedded_code"]);
  });

  it("a config asking for safe_mode off is unsafe_option", async () => {
    const r = await inspectBytes(kerasZip(sequential([dense], { config: { name: "s", layers: [dense], safe_mode: false } })), "m.keras");
    expect(rejecting(r)).toEqual(["unsafe_option"]);
  });

  it.each([
    ["not JSON", "{"],
    ["NaN", '{"class_name": "Sequential", "config": {"x": NaN}}'],
  ])("a config.json that is %s is malformed_container", async (_what, text) => {
    const r = await inspectBytes(kerasZip(text), "m.keras");
    expect([r.verdict, r.format, rejecting(r)]).toEqual(["reject", "keras", ["malformed_container"]]);
  });

  it("a model.weights.h5 that is not HDF5 is malformed_container", async () => {
    const zip = buildZip([
      { name: "config.json", data: JSON.stringify(sequential([dense])) },
      { name: "model.weights.h5", data: "not hdf5 at all" },
    ]);
    const r = await inspectBytes(zip, "m.keras");
    expect(rejecting(r)).toEqual(["malformed_container"]);
  });

  it("an invalid allowClasses pattern is refused by the policy schema", async () => {
    await expect(inspectBytes(fixture("keras3_dense.keras"), "m.keras", { keras: { allowClasses: ["mypkg"] } })).rejects.toThrow();
  });
});

describe("Keras v3 archives: every folder and member judged", () => {
  it("a second Keras folder in the same tar has its config judged too", async () => {
    const lambda = { module: "keras.layers", class_name: "Lambda", config: { function: { class_name: "__lambda__", config: { code: "AAAA" } } } };
    const tar = buildTar([
      { name: "a/config.json", data: JSON.stringify(sequential([dense])) },
      { name: "a/metadata.json", data: "{}" },
      { name: "b/config.json", data: JSON.stringify(sequential([lambda])) },
      { name: "b/metadata.json", data: "{}" },
    ]);
    const r = await inspectBytes(tar, "m.tar");
    expect([r.format, rejecting(r)]).toEqual(["keras", ["embedded_code"]]);
  });

  it("a Python member next to a Keras model is embedded_code", async () => {
    const zip = buildZip([
      { name: "config.json", data: JSON.stringify(sequential([dense])) },
      { name: "metadata.json", data: "{}" },
      { name: "custom_layers.py", data: "import os\n" },
    ]);
    const r = await inspectBytes(zip, "m.zip");
    expect([r.format, rejecting(r)]).toEqual(["keras", ["embedded_code"]]);
  });

  it("a SavedModel next to a Keras folder is still unsupported_format", async () => {
    const tar = buildTar([
      { name: "k/config.json", data: JSON.stringify(sequential([dense])) },
      { name: "k/metadata.json", data: "{}" },
      { name: "tf/saved_model.pb", data: "x" },
    ]);
    const r = await inspectBytes(tar, "m.tar");
    expect([r.format, rejecting(r)]).toEqual(["tensorflow-savedmodel", ["unsupported_format"]]);
  });

  it("a Keras config.json inside an MLflow bundle stays unsupported_format", async () => {
    const tar = buildTar([
      { name: "model/MLmodel", data: "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n" },
      { name: "model/config.json", data: JSON.stringify(sequential([dense])) },
      { name: "model/metadata.json", data: "{}" },
    ]);
    const r = await inspectBytes(tar, "m.tar");
    expect([r.format, rejecting(r)]).toEqual(["keras", ["unsupported_format"]]);
  });
});

describe("policy and CLI", () => {
  const run = async (args: string[]): Promise<number> =>
    scanCommand.run(args, { stdout: () => undefined, stderr: () => undefined, env: {}, cwd: join(__dirname, "..", "fixtures", "other") });

  it("keras is optional: a policy without it (or with no classes) keeps its digest", () => {
    const parsed = ContentPolicySchema.parse({});
    expect(contentPolicyDigest(ContentPolicySchema.parse({ keras: { allowClasses: [] } }))).toBe(contentPolicyDigest(parsed));
    expect(contentPolicyDigest(ContentPolicySchema.parse({ keras: { allowClasses: ["mypkg.*"] } }))).not.toBe(contentPolicyDigest(parsed));
  });

  it("modelgate scan rejects a custom Keras class by default and admits it with --allow-keras-class", async () => {
    expect(await run(["keras3_custom_module.keras"])).toBe(1);
    expect(await run(["--allow-keras-class", "mypkg.layers.MyLayer", "keras3_custom_module.keras"])).toBe(0);
    await expect(run(["--allow-keras-class", "mypkg", "keras3_custom_module.keras"])).rejects.toMatchObject({ code: "usage" });
  });
});

describe("bounds", () => {
  it("a Lambda nested 100000 levels deep is found, with a short location in the message", async () => {
    const lambda = JSON.stringify({ module: "keras.layers", class_name: "Lambda", config: {} });
    const config = `{"module": "keras", "class_name": "Sequential", "config": {"layers": [${"[".repeat(100000)}${lambda}${"]".repeat(100000)}]}}`;
    const r = await inspectBytes(kerasZip(config), "m.keras");
    expect(rejecting(r)).toEqual(["embedded_code"]);
    expect(r.findings.every((f) => f.message.length < 1000)).toBe(true);
  });
});
