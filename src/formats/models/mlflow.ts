import { parseDocument, visit } from "yaml";
import { GatewayError } from "../../errors";
import type { Finding, InspectionNode } from "../../inspect/report";
import { MAX_MLFLOW_REQUIREMENT_FILES, MAX_YAML_ALIAS_COUNT } from "../../limits";
import { readWholeMember, type ArchiveContents, type ArchiveMember } from "../containers/archive";
import type { FormatContext } from "../context";
import { findingOf, inspectAllMembers, policyGatedFinding } from "../members";
import { checkCondaEnvironment, checkPipRequirements, checkPythonEnv, requirementLines, type RequirementCheck } from "./requirements";
import { checkMemberPath, memberPath } from "../containers/memberPath";

/**
 * MLflow model bundles (a zip or tar(.gz) of the directory `mlflow.<flavor>.save_model` writes):
 * `MLmodel` (YAML), the flavor's artifacts (model.pkl...), environment files (conda.yaml,
 * python_env.yaml, requirements.txt), optionally `code/` and `python_model.pkl`.
 *
 * `mlflow.pyfunc.load_model` imports `python_function.loader_module` and calls its `_load_pyfunc`;
 * it puts `code/` (the flavor's `code` key) on sys.path first; a custom PythonModel is a
 * cloudpickle (`python_model.pkl`) whose classes are arbitrary code. All of that is
 * `embedded_code`, rejected unless the source's policy sets allowEmbeddedCode. The loader modules
 * of MLflow's own classic flavors are allowed: they load their artifacts with pickle (scanned
 * here with the pickle policy like every other member) or framework formats (sniffed by content).
 * MLmodel is parsed the way MLflow reads it (PyYAML safe_load, YAML 1.1) but stricter: any tag
 * outside the YAML 1.1 safe types (`!!python/object...`), duplicate keys, several documents or
 * alias floods are rejected.
 */

/**
 * `python_function.loader_module` values of MLflow's built-in classic flavors. Flavors whose
 * loader runs code from the bundle by design (mlflow.pyfunc.model: a PythonModel; the
 * models-from-code loaders; langchain, llama_index, dspy, promptflow chains) are not here.
 */
export const BUILTIN_LOADER_MODULES: ReadonlySet<string> = new Set([
  "mlflow.sklearn",
  "mlflow.pytorch",
  "mlflow.tensorflow",
  "mlflow.keras",
  "mlflow.xgboost",
  "mlflow.lightgbm",
  "mlflow.catboost",
  "mlflow.onnx",
  "mlflow.h2o",
  "mlflow.spark",
  "mlflow.statsmodels",
  "mlflow.prophet",
  "mlflow.pmdarima",
  "mlflow.spacy",
  "mlflow.fastai",
  "mlflow.gluon",
  "mlflow.paddle",
  "mlflow.transformers",
  "mlflow.sentence_transformers",
  "mlflow.diviner",
  "mlflow.johnsnowlabs",
]);

/** Flavor names MLflow itself defines (an unknown flavor is reported, not rejected: it is not code). */
const KNOWN_FLAVORS: ReadonlySet<string> = new Set(["python_function", "mleap", "crate", ...[...BUILTIN_LOADER_MODULES].map((m) => m.slice("mlflow.".length))]);

/** Tags PyYAML's SafeLoader resolves (YAML 1.1 types); anything else is a custom tag: refused. */
const SAFE_YAML_TAGS: ReadonlySet<string> = new Set(
  ["str", "int", "float", "bool", "null", "map", "seq", "binary", "omap", "pairs", "set", "timestamp", "merge"].map((t) => `tag:yaml.org,2002:${t}`),
);

function malformed(message: string): GatewayError {
  return new GatewayError("malformed_container", `mlflow: ${message}`);
}

/**
 * Parse YAML as PyYAML's safe_load reads it (YAML 1.1 schema), refusing custom tags, duplicate
 * keys, several documents and more than MAX_YAML_ALIAS_COUNT alias expansions.
 */
export function parseSafeYaml(text: string, what: string): unknown {
  const doc = parseDocument(text, { version: "1.1", schema: "yaml-1.1", uniqueKeys: true, strict: true, prettyErrors: false });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) throw malformed(`${what} is not valid safe YAML (${problem.code})`);
  let badTag: string | undefined;
  visit(doc, {
    Node(_key, node) {
      if (node.tag !== undefined && !SAFE_YAML_TAGS.has(node.tag)) {
        badTag = node.tag;
        return visit.BREAK;
      }
      return undefined;
    },
  });
  if (badTag !== undefined) throw malformed(`${what} uses the custom YAML tag ${JSON.stringify(badTag.slice(0, 100))} (only safe YAML types are accepted)`);
  try {
    // The yaml package rejects when its count reaches maxAliasCount: +1 allows exactly MAX_YAML_ALIAS_COUNT scalar aliases.
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIAS_COUNT + 1 }) as unknown;
  } catch (err) {
    throw new GatewayError("limit_exceeded", `mlflow: ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date) && !(v instanceof Uint8Array);
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}
function dirName(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

/**
 * The folder holding the bundle's MLmodel ("" for the archive's top), or undefined when no member
 * is named MLmodel. With several, the shallowest (first in archive order among equals) is the
 * root; inspectMlflow then rejects the ambiguity.
 */
export function isMlflowLayout(members: readonly ArchiveMember[]): string | undefined {
  let best: string | undefined;
  let bestDepth = Infinity;
  for (const m of members) {
    if (m.isDirectory || baseName(m.path) !== "MLmodel") continue;
    const root = dirName(m.path);
    const depth = root === "" ? 0 : root.split("/").length;
    if (depth < bestDepth) {
      best = root;
      bestDepth = depth;
    }
  }
  return best;
}

/** One member's bytes as UTF-8 text, bounded by maxTextMemberBytes. */
async function readText(member: ArchiveMember, ctx: FormatContext): Promise<string> {
  if (member.size > ctx.containerLimits.maxTextMemberBytes) {
    throw new GatewayError(
      "limit_exceeded",
      `mlflow: ${member.path} is ${member.size} bytes, over the text limit of ${ctx.containerLimits.maxTextMemberBytes}`,
    );
  }
  const bytes = await readWholeMember(member, ctx.containerLimits.maxTextMemberBytes);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw malformed(`${member.path} is not valid UTF-8`);
  }
}

/** Code-carrying features of a parsed MLmodel, as finding messages. */
export function embeddedCodeIn(mlmodel: Record<string, unknown>): string[] {
  const reasons: string[] = [];
  const flavors = mlmodel.flavors;
  if (!isRecord(flavors)) return reasons;
  for (const [name, flavor] of Object.entries(flavors)) {
    if (!isRecord(flavor)) continue;
    if (flavor.code !== undefined && flavor.code !== null)
      reasons.push(`flavor ${name} adds code directory ${JSON.stringify(plain(flavor.code)).slice(0, 120)} to sys.path`);
    if (flavor.model_code_path !== undefined && flavor.model_code_path !== null) reasons.push(`flavor ${name} is a model from code (model_code_path)`);
  }
  const pyfunc = flavors.python_function;
  if (isRecord(pyfunc)) {
    const loader = pyfunc.loader_module;
    if (typeof loader !== "string") reasons.push("python_function has no loader_module string (MLflow would need custom code to load it)");
    else if (loader === "mlflow.pyfunc.model") reasons.push("python_function loads a custom PythonModel (mlflow.pyfunc.model): cloudpickled code");
    else if (!BUILTIN_LOADER_MODULES.has(loader))
      reasons.push(`python_function.loader_module ${JSON.stringify(loader.slice(0, 120))} is not a built-in MLflow flavor module: a custom loader is code`);
    if (pyfunc.python_model !== undefined) reasons.push("python_function.python_model names a cloudpickled PythonModel");
  }
  return reasons;
}

/** The file next to a pytorch flavor's model.pth naming the module torch.load unpickles with. */
const PICKLE_MODULE_INFO = "pickle_module_info.txt";
/** Pickle modules whose Unpickler is pickle's own: mlflow's default (cloudpickle-based) and the stdlib. */
const PICKLE_MODULES: ReadonlySet<string> = new Set(["mlflow.pytorch.pickle_module", "pickle", "cloudpickle"]);

/** Flavor keys that name a file or folder of the bundle, which the flavor's loader opens. */
const PATH_KEYS: ReadonlySet<string> = new Set([
  "model_path",
  "data",
  "pickled_model",
  "model_data",
  "python_model",
  "code",
  "saved_model_dir",
  "model_file",
  "model_code_path",
]);

/**
 * Path references of MLmodel that would make the loader read outside the bundle (an absolute path
 * or "..": a pickle we never saw) or that name nothing in it. Returns finding messages.
 */
export function badPathReferences(mlmodel: Record<string, unknown>, members: readonly ArchiveMember[], prefix: string): string[] {
  const problems: string[] = [];
  const flavors = mlmodel.flavors;
  if (!isRecord(flavors)) return problems;
  for (const [flavorName, flavor] of Object.entries(flavors)) {
    if (!isRecord(flavor)) continue;
    for (const [key, value] of Object.entries(flavor)) {
      if (!PATH_KEYS.has(key) || typeof value !== "string") continue;
      const where = `flavor ${flavorName}.${key} ${JSON.stringify(value.slice(0, 120))}`;
      const rel = value.replace(/^(\.\/)+/, "").replace(/\/+$/, "");
      try {
        checkMemberPath(rel, "MLmodel path");
      } catch {
        problems.push(`${where} points outside the bundle: the loader would read a file modelgate never inspected`);
        continue;
      }
      const target = `${prefix}${rel}`;
      if (!members.some((m) => m.path === target || m.path.startsWith(`${target}/`))) problems.push(`${where} names nothing in the bundle`);
    }
  }
  return problems;
}

function parseMlmodel(text: string): Record<string, unknown> {
  const parsed = parseSafeYaml(text, "MLmodel");
  if (!isRecord(parsed)) throw malformed("MLmodel is not a mapping");
  if (!isRecord(parsed.flavors) || Object.keys(parsed.flavors).length === 0) throw malformed("MLmodel has no flavors mapping");
  for (const [name, flavor] of Object.entries(parsed.flavors)) {
    if (!isRecord(flavor)) throw malformed(`MLmodel flavor ${JSON.stringify(name.slice(0, 64))} is not a mapping`);
  }
  return parsed;
}

/** A YAML value reduced to plain JSON for the report (bounded). */
function plain(v: unknown, depth = 0): unknown {
  if (depth > 6) return "...";
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return typeof v === "string" ? v.slice(0, 300) : v;
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.slice(0, 200).map((x) => plain(x, depth + 1));
  if (isRecord(v))
    return Object.fromEntries(
      Object.entries(v)
        .slice(0, 200)
        .map(([k, x]) => [k.slice(0, 100), plain(x, depth + 1)]),
    );
  return typeof v === "bigint" ? v.toString() : v instanceof Uint8Array ? `<${v.length} binary bytes>` : "<unrepresentable>";
}

/**
 * Inspect an MLflow bundle: fills and returns `archive.node` (format "mlflow"). `root` is the
 * folder holding MLmodel (from isMlflowLayout). Every member but MLmodel goes through
 * ctx.inspectMember (pickles scanned, text and YAML reported as data).
 */
export async function inspectMlflow(archive: ArchiveContents, root: string, path: string, ctx: FormatContext): Promise<InspectionNode> {
  const node = archive.node;
  node.format = "mlflow";
  const prefix = root === "" ? "" : `${root}/`;
  const mlmodelPath = `${prefix}MLmodel`;
  const at = (p: string): string => memberPath(path, p);
  const findMember = (p: string): ArchiveMember | undefined => archive.members.find((m) => !m.isDirectory && m.path === p);
  const details: Record<string, unknown> = { root };
  const embedded: Finding[] = [];
  const codeFinding = (message: string, location: string): void => {
    embedded.push(policyGatedFinding(ctx, "allowEmbeddedCode", "embedded_code", "dangerous", message, location));
  };

  const others = archive.members.filter((m) => !m.isDirectory && baseName(m.path) === "MLmodel" && m.path !== mlmodelPath);
  if (others.length > 0) {
    node.findings.push({
      code: "malformed_container",
      severity: "malformed",
      message: `mlflow: several MLmodel files (${[mlmodelPath, ...others.map((m) => m.path)].slice(0, 5).join(", ")}): which model loads is ambiguous`,
      location: path,
    });
  }

  const mlmodelMember = findMember(mlmodelPath);
  if (mlmodelMember === undefined) {
    node.findings.push(findingOf(malformed(`no ${mlmodelPath} in the bundle`), path));
  } else {
    try {
      const mlmodel = parseMlmodel(await readText(mlmodelMember, ctx));
      const flavors = mlmodel.flavors as Record<string, unknown>;
      details.flavors = Object.keys(flavors);
      const pyfunc = flavors.python_function;
      if (isRecord(pyfunc) && typeof pyfunc.loader_module === "string") details.loaderModule = pyfunc.loader_module.slice(0, 200);
      for (const key of ["mlflow_version", "model_uuid", "artifact_path", "run_id", "utc_time_created"]) {
        if (mlmodel[key] !== undefined) details[key] = plain(mlmodel[key]);
      }
      if (mlmodel.signature !== undefined) details.signature = plain(mlmodel.signature);
      const unknownFlavors = Object.keys(flavors).filter((f) => !KNOWN_FLAVORS.has(f));
      if (unknownFlavors.length > 0) {
        node.findings.push({
          code: "info",
          severity: "innocuous",
          message: `flavors not defined by MLflow: ${unknownFlavors.slice(0, 10).join(", ")}`,
          location: at(mlmodelPath),
        });
      }
      for (const reason of embeddedCodeIn(mlmodel)) codeFinding(reason, at(mlmodelPath));
      for (const problem of badPathReferences(mlmodel, archive.members, prefix)) {
        node.findings.push({ code: "malformed_container", severity: "malformed", message: `mlflow: ${problem}`, location: at(mlmodelPath) });
      }
    } catch (err) {
      node.findings.push(findingOf(err, at(mlmodelPath)));
    }
  }

  const codeMembers = archive.members.filter((m) => m.path.startsWith(`${prefix}code/`) || m.path === `${prefix}code`);
  if (codeMembers.length > 0)
    codeFinding(
      `the bundle carries a code/ directory (${codeMembers.filter((m) => !m.isDirectory).length} files) that MLflow puts on sys.path`,
      at(`${prefix}code`),
    );
  for (const m of archive.members) {
    if (!m.isDirectory && baseName(m.path) === "python_model.pkl")
      codeFinding("python_model.pkl is a cloudpickled PythonModel: its classes are code", at(m.path));
    if (!m.isDirectory && baseName(m.path) === PICKLE_MODULE_INFO) {
      // mlflow.pytorch._load_model imports this file's exact text (importlib.import_module) and
      // hands the module to torch.load as its pickle module: any other name is an import of code.
      try {
        const name = await readText(m, ctx);
        if (!PICKLE_MODULES.has(name))
          codeFinding(`${PICKLE_MODULE_INFO} names pickle module ${JSON.stringify(name.slice(0, 120))}, which mlflow.pytorch imports on load`, at(m.path));
      } catch (err) {
        node.findings.push(findingOf(err, at(m.path)));
      }
    }
  }
  node.findings.push(...embedded);

  // Environment files: report what they ask to install, and check where it would come from
  // (each file read and parsed once for both).
  const env: Record<string, unknown> = {};
  const checked: CheckedFile[] = [];
  for (const [name, read] of [
    ["requirements.txt", (t: string) => requirementsFile(t)],
    ["conda.yaml", (t: string) => yamlFile(parseSafeYaml(t, "conda.yaml"), checkCondaEnvironment)],
    ["python_env.yaml", (t: string) => yamlFile(parseSafeYaml(t, "python_env.yaml"), checkPythonEnv)],
  ] as const) {
    const m = findMember(`${prefix}${name}`);
    if (m === undefined) continue;
    try {
      const { summary, result } = read(await readText(m, ctx));
      env[name] = summary;
      checked.push({ member: m, result });
    } catch (err) {
      // Still inspected as a member below; here it only misses from the summary and the check.
      env[name] = { unreadable: err instanceof Error ? err.message.slice(0, 200) : "unreadable" };
    }
  }
  if (Object.keys(env).length > 0) details.environment = env;
  node.details = { ...node.details, mlflow: details };
  await reportEnvironment(archive, checked, path, ctx);

  await inspectAllMembers(archive, path, ctx, new Set(mlmodelMember === undefined ? [] : [mlmodelPath]));
  return node;
}

/** An environment file as read: its summary for details.mlflow.environment and its check. */
interface CheckedFile {
  member: ArchiveMember;
  result: RequirementCheck;
}

function requirementsFile(text: string): { summary: unknown; result: RequirementCheck } {
  const lines = requirementLines(text);
  return { summary: lines.slice(0, 500).map((l) => l.slice(0, 300)), result: checkPipRequirements(lines) };
}

function yamlFile(parsed: unknown, check: (env: unknown) => RequirementCheck): { summary: unknown; result: RequirementCheck } {
  return { summary: plain(parsed), result: check(parsed) };
}

/**
 * What restoring the bundle's environment would install (requirements.txt, python_env.yaml,
 * conda.yaml as checked by the caller, and the files their `-r`/`-c` options include, read here):
 * every entry pip or conda would not take from an index by name is `direct_requirement`
 * (suspicious; innocuous and still reported when the source's policy sets
 * allowDirectRequirements). An include naming no member of the bundle is `malformed_container`.
 * A file that cannot be read or parsed is reported by the member inspection; it adds nothing here.
 */
async function reportEnvironment(archive: ArchiveContents, checked: readonly CheckedFile[], path: string, ctx: FormatContext): Promise<void> {
  const node = archive.node;
  const members = new Map(archive.members.filter((m) => !m.isDirectory).map((m) => [m.path, m]));
  const queue = [...checked];
  const seen = new Set(checked.map((c) => c.member.path));
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const { member, result } = next;
    const location = memberPath(path, member.path);
    for (const problem of result.problems) {
      const what = `mlflow environment: ${JSON.stringify(problem.entry)} is ${problem.why}`;
      node.findings.push(policyGatedFinding(ctx, "allowDirectRequirements", "direct_requirement", "suspicious", what, location));
    }
    // pip reads an included file relative to the directory of the file that names it.
    const dir = member.path.includes("/") ? member.path.slice(0, member.path.lastIndexOf("/") + 1) : "";
    for (const include of result.includes) {
      const target = normalizeRelative(`${dir}${include.path}`);
      const included = members.get(target);
      if (included === undefined) {
        node.findings.push({
          code: "malformed_container",
          severity: "malformed",
          message: `mlflow environment: ${include.option} ${JSON.stringify(include.path.slice(0, 200))} names no file in the bundle`,
          location,
        });
        continue;
      }
      if (seen.has(target) || seen.size >= MAX_MLFLOW_REQUIREMENT_FILES) continue;
      seen.add(target);
      try {
        queue.push({ member: included, result: checkPipRequirements(requirementLines(await readText(included, ctx))) });
      } catch {
        // unreadable: the member inspection reports it
      }
    }
  }
}

/** "a/./b" -> "a/b" (".." never reaches here: refused as an include outside the bundle). */
function normalizeRelative(p: string): string {
  return p
    .split("/")
    .filter((part) => part !== "." && part !== "")
    .join("/");
}
