import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { isGatewayError } from "../../src/errors";
import { inspectFile } from "../../src/formats/inspectFile";
import { ContentPolicySchema, contentPolicyDigest, DEFAULT_CONTENT_POLICY, type ContentPolicy } from "../../src/inspect/policy";
import { aliasMap, aliasOf, devendoredName } from "../../src/pickle/aliasMap";
import { floorGroupOf } from "../../src/pickle/floor";
import { classifyGlobal, makePicklePolicy, wildcardAdmits } from "../../src/pickle/policy";
import { presetGlobals } from "../../src/pickle/presets";
import { SAFE_GLOBALS } from "../../src/pickle/safeSet";
import { SKLEARN_PRESET } from "../../src/pickle/sklearnPreset.generated";
import { WILDCARD_PRIVATE_NAMES } from "../../src/pickle/wildcardNames.generated";
import { parseAllowlistFile } from "../../src/trust/allowlist";
import { runCli } from "../support/cli";
import { makePublisher, publicKeyBase64 } from "../support/publisher";

/**
 * Issue 10, family 3: names under an allowed prefix that are aliases of dangerous callables
 * (pickle's find_class reads `module.name` as an attribute, so sklearn.utils._testing.check_output
 * *is* subprocess.check_output). Real fixtures from test/fixtures/generate.py (gen_aliases); on
 * main every alias fixture below was accepted under its wildcard and `presets` did not exist.
 */

const FIXTURES = path.join(__dirname, "..", "fixtures");
const SKLEARN_WILD: ContentPolicy = ContentPolicySchema.parse({ allowGlobals: ["sklearn.*"] });
const SKLEARN_PRESET_POLICY: ContentPolicy = ContentPolicySchema.parse({ presets: ["sklearn"] });

function policyOf(json: unknown): ContentPolicy {
  return ContentPolicySchema.parse(json);
}

async function codesOf(file: string, policy: ContentPolicy): Promise<{ verdict: string; codes: string[] }> {
  const report = await inspectFile(path.join(FIXTURES, file), { policy, fileName: path.basename(file) });
  return { verdict: report.verdict, codes: [...new Set(report.findings.map((f) => f.code))].sort() };
}

describe("aliases of dangerous callables under an allowed prefix (real fixtures)", () => {
  const cases: [string, unknown][] = [
    ["pickle/alias_sklearn_check_output.pkl", { allowGlobals: ["sklearn.*"] }],
    ["pickle/alias_sklearn_check_output.pkl", { presets: ["sklearn"] }],
    ["pickle/alias_sklearn_check_output.pkl", { allowGlobals: ["sklearn.utils._testing.check_output"] }],
    ["pickle/alias_sklearn_import_module.pkl", { allowGlobals: ["sklearn.*"] }],
    ["pickle/alias_sklearn_import_module.pkl", { presets: ["sklearn"] }],
    ["pickle/alias_sklearn_joblib_load.pkl", { allowGlobals: ["sklearn.*"] }],
    ["pickle/alias_sklearn_joblib_load.pkl", { allowGlobals: ["sklearn.utils._joblib.load"] }],
    ["pickle/alias_sklearn_run_python_script.pkl", { allowGlobals: ["sklearn.*"] }],
    ["pickle/alias_sklearn_module_object.pkl", { allowGlobals: ["sklearn.*"] }],
    ["pickle/alias_sklearn_externals_joblib_load.pkl", { allowGlobals: ["sklearn.*"] }],
    ["pickle/alias_sklearn_externals_joblib_load.pkl", { allowGlobals: ["sklearn.externals.joblib.load"] }],
    ["pickle/alias_sklearn_six_moves_eval.pkl", { allowGlobals: ["sklearn.*"] }],
    ["pickle/alias_numpy_ufunc_reconstruct.pkl", { allowGlobals: ["numpy.*"] }],
    ["pickle/alias_scipy_load.pkl", { allowGlobals: ["scipy.*"] }],
    ["pickle/alias_torch_import_dotted_name.pkl", { allowGlobals: ["torch._utils._import_dotted_name"] }],
    ["pickle/alias_pandas_read_pickle.pkl", { allowGlobals: ["pandas.*"] }],
    ["pickle/alias_pandas_urlopen.pkl", { allowGlobals: ["pandas.*"] }],
  ];
  it.each(cases)("%s under %j is dangerous_global", async (file, json) => {
    const got = await codesOf(file, policyOf(json));
    expect(got.verdict).toBe("reject");
    expect(got.codes).toContain("dangerous_global");
  });

  it("a wildcard does not admit a test helper that is no alias (unknown_global, not accepted)", async () => {
    expect(await codesOf("pickle/wildcard_sklearn_testing_helper.pkl", SKLEARN_WILD)).toEqual({ verdict: "reject", codes: ["unknown_global"] });
  });
});

describe("real fitted sklearn models still pass under sklearn.* and under the preset", () => {
  const models = [
    "pickle/sklearn_logreg_p4.pkl",
    "joblib/sklearn_tree.joblib",
    "joblib/sklearn_pipeline.joblib",
    "joblib/sklearn_forest.joblib",
    "joblib/sklearn_hist_gradient_boosting.joblib",
    "joblib/sklearn_kneighbors.joblib",
    "joblib/sklearn_gradient_boosting.joblib",
  ];
  it.each(models)("%s: accepted with presets [sklearn], rejected (unknown_global) by default", async (file) => {
    expect(await codesOf(file, SKLEARN_PRESET_POLICY)).toEqual({ verdict: "accept", codes: [] });
    expect(await codesOf(file, DEFAULT_CONTENT_POLICY)).toEqual({ verdict: "reject", codes: ["unknown_global"] });
  });
  it.each(models.filter((m) => !m.includes("gradient_boosting.joblib") || m.includes("hist")))("%s: accepted with sklearn.*", async (file) => {
    expect(await codesOf(file, SKLEARN_WILD)).toEqual({ verdict: "accept", codes: [] });
  });
  it("GradientBoosting keeps a numpy RandomState: sklearn.* alone is not enough, sklearn.* + numpy.* is", async () => {
    expect((await codesOf("joblib/sklearn_gradient_boosting.joblib", SKLEARN_WILD)).codes).toEqual(["unknown_global"]);
    expect(await codesOf("joblib/sklearn_gradient_boosting.joblib", policyOf({ allowGlobals: ["sklearn.*", "numpy.*"] }))).toEqual({
      verdict: "accept",
      codes: [],
    });
  });
});

describe("classifyGlobal with the alias map, wildcards and presets", () => {
  const named: [string, string][] = [
    ["sklearn.utils._testing", "check_output"],
    ["sklearn.utils.discovery", "import_module"],
    ["sklearn.utils._joblib", "load"],
    ["sklearn.utils._testing", "assert_run_python_script"],
  ];
  it.each(named)("%s.%s is dangerous under sklearn.*, the preset and its exact name", (module, name) => {
    for (const policy of [SKLEARN_WILD, SKLEARN_PRESET_POLICY, policyOf({ allowGlobals: [`${module}.${name}`] })]) {
      expect(classifyGlobal(module, name, makePicklePolicy(policy)).code).toBe("dangerous_global");
    }
  });

  it("the alias map records what each name is", () => {
    expect(aliasOf("sklearn.utils._testing.check_output")).toEqual({ kind: "floor-callable", target: "subprocess.check_output" });
    expect(aliasOf("sklearn.utils._joblib.load")).toEqual({ kind: "floor-callable", target: "joblib.numpy_pickle.load" });
    expect(aliasOf("sklearn.utils.discovery.import_module")).toEqual({ kind: "floor-callable", target: "importlib.import_module" });
    expect(aliasOf("sklearn.utils._testing.assert_run_python_script")?.kind).toBe("runs-code");
    expect(aliasOf("sklearn.base.np")).toEqual({ kind: "module", target: "numpy" });
    expect(aliasOf("sklearn.linear_model._logistic.LogisticRegression")).toBeUndefined();
  });

  it("vendored copies are judged as what they stand for", () => {
    expect(devendoredName("sklearn.externals.joblib.load")).toBe("joblib.load");
    expect(devendoredName("sklearn.externals.six.moves.builtins.eval")).toBe("builtins.eval");
    expect(devendoredName("six.moves.cPickle.loads")).toBe("pickle.loads");
    expect(devendoredName("six.moves.unknown_move")).toBe("six.moves");
    expect(devendoredName("sklearn.linear_model.LogisticRegression")).toBeUndefined();
    const wild = makePicklePolicy(SKLEARN_WILD);
    expect(classifyGlobal("sklearn.externals.joblib", "load", wild).code).toBe("dangerous_global");
    expect(classifyGlobal("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper", wild).safety).toBe("innocuous");
    expect(classifyGlobal("sklearn.externals.joblib", "Memory", wild).code).toBe("unknown_global");
    expect(wildcardAdmits("mypkg.vendor.requests", "get")).toBe(false);
  });

  it("wildcards skip test modules and private names outside the generated list", () => {
    expect(wildcardAdmits("sklearn.tests.test_base", "K")).toBe(false);
    expect(wildcardAdmits("sklearn.utils._testing", "ignore_warnings")).toBe(false);
    expect(wildcardAdmits("mypkg.testing", "Model")).toBe(false);
    expect(wildcardAdmits("mypkg.conftest", "Model")).toBe(false);
    expect(wildcardAdmits("mypkg._internal", "Model")).toBe(false);
    expect(wildcardAdmits("mypkg.models", "_hidden")).toBe(false);
    expect(wildcardAdmits("mypkg.models", "Model")).toBe(true);
    // sklearn defines its public classes in private modules; pickle writes those names
    expect(wildcardAdmits("sklearn.linear_model._logistic", "LogisticRegression")).toBe(true);
    expect(wildcardAdmits("sklearn.tree._tree", "Tree")).toBe(true);
    expect(wildcardAdmits("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper")).toBe(true);
    expect(wildcardAdmits("sklearn.utils._mask", "_get_mask")).toBe(false);
    const wild = makePicklePolicy(SKLEARN_WILD);
    expect(classifyGlobal("sklearn.utils._mask", "_get_mask", wild).code).toBe("unknown_global");
    expect(classifyGlobal("sklearn.tree._tree", "Tree", wild).safety).toBe("innocuous");
  });

  it("the preset admits exact names only, and an explicit pattern still adds to it", () => {
    const preset = makePicklePolicy(SKLEARN_PRESET_POLICY);
    const admitted: [string, string][] = [
      ["sklearn.linear_model._logistic", "LogisticRegression"],
      ["sklearn.pipeline", "Pipeline"],
      ["sklearn.tree._tree", "Tree"],
      ["sklearn.ensemble._gb_losses", "BinomialDeviance"],
      ["sklearn._loss.loss", "HalfSquaredError"],
      ["sklearn.neighbors._kd_tree", "newObj"],
    ];
    for (const [m, n] of admitted) {
      expect([`${m}.${n}`, classifyGlobal(m, n, preset).safety]).toEqual([`${m}.${n}`, "innocuous"]);
    }
    expect(classifyGlobal("sklearn.utils", "deprecated", preset).code).toBe("unknown_global");
    expect(classifyGlobal("sklearn.utils._mask", "_get_mask", preset).code).toBe("unknown_global");
    expect(classifyGlobal("mypkg.models", "Model", makePicklePolicy(policyOf({ presets: ["sklearn"], allowGlobals: ["mypkg.*"] }))).safety).toBe("innocuous");
  });

  it("no generated list overlaps the alias map, the safe set or the hard floor", () => {
    const aliases = aliasMap();
    expect(aliases.size).toBeGreaterThan(1000);
    for (const name of [...SAFE_GLOBALS, ...SKLEARN_PRESET, ...WILDCARD_PRIVATE_NAMES]) expect([name, aliases.has(name)]).toEqual([name, false]);
    for (const name of [...SKLEARN_PRESET, ...WILDCARD_PRIVATE_NAMES]) expect([name, floorGroupOf(name)]).toEqual([name, undefined]);
    expect(presetGlobals("sklearn").size).toBe(SKLEARN_PRESET.length);
  });
});

describe("presets in allowlist.json and the policy digest", () => {
  const key = publicKeyBase64(makePublisher(3));
  const file = (pickle: unknown): unknown => ({ version: 1, sources: [{ id: "s", description: "d", keys: [{ publicKey: key }], pickle }] });

  it("accepts presets [sklearn] and names the field of an unknown preset", () => {
    expect(parseAllowlistFile(file({ presets: ["sklearn"] })).sources[0]?.pickle?.presets).toEqual(["sklearn"]);
    let issues: { path: string }[] = [];
    try {
      parseAllowlistFile(file({ presets: ["xgboost"] }));
    } catch (err) {
      if (isGatewayError(err) && err.code === "invalid_allowlist") issues = err.details?.issues as { path: string }[];
    }
    expect(issues.map((i) => i.path)).toEqual(["sources.0.pickle.presets.0"]);
  });

  it("a policy without presets keeps the digest it had before presets existed; presets change it", () => {
    const before = JSON.stringify({
      allowGlobals: ["sklearn.*"],
      allowTorchScript: false,
      allowEmbeddedCode: false,
      allowOpaqueMembers: false,
      allowDirectRequirements: false,
    });
    expect(contentPolicyDigest(SKLEARN_WILD)).toBe(`sha256:${createHash("sha256").update(before).digest("hex")}`);
    const withPreset = policyOf({ allowGlobals: ["sklearn.*"], presets: ["sklearn"] });
    expect(contentPolicyDigest(withPreset)).not.toBe(contentPolicyDigest(SKLEARN_WILD));
    expect(contentPolicyDigest(policyOf({ allowGlobals: ["sklearn.*"], presets: [] }))).toBe(contentPolicyDigest(SKLEARN_WILD));
  });
});

describe("modelgate scan --preset", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-alias-"));
    copyFileSync(path.join(FIXTURES, "joblib", "sklearn_forest.joblib"), path.join(dir, "forest.joblib"));
    copyFileSync(path.join(FIXTURES, "pickle", "alias_sklearn_check_output.pkl"), path.join(dir, "evil.pkl"));
    writeFileSync(path.join(dir, "allowlist.json"), JSON.stringify(file({ presets: ["sklearn"] })));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const key = publicKeyBase64(makePublisher(4));
  const file = (pickle: unknown): unknown => ({ version: 1, sources: [{ id: "s", description: "d", keys: [{ publicKey: key }], pickle }] });

  async function scan(args: string[]): Promise<number> {
    return (await runCli(["scan", ...args], { cwd: dir })).code;
  }

  it("accepts a fitted forest with --preset sklearn and rejects it without", async () => {
    expect(await scan(["forest.joblib", "--preset", "sklearn"])).toBe(0);
    expect(await scan(["forest.joblib"])).toBe(1);
    expect(await scan(["forest.joblib", "--policy", "allowlist.json", "--source", "s"])).toBe(0);
  });
  it("rejects the alias under the preset and under sklearn.*; an unknown preset is a usage error", async () => {
    expect(await scan(["evil.pkl", "--preset", "sklearn"])).toBe(1);
    expect(await scan(["evil.pkl", "--allow-global", "sklearn.*"])).toBe(1);
    expect(await scan(["forest.joblib", "--preset", "xgboost"])).toBe(2);
  });
});
