import { GatewayError } from "../../errors";
import type { Finding } from "../../inspect/report";
import { MAX_LOADER_CONFIG_BYTES } from "../../limits";
import { readWholeMember, type ArchiveContents, type ArchiveMember } from "../containers/archive";
import type { FormatContext } from "../context";
import { memberPath } from "../containers/memberPath";
import { findingOf, policyGatedFinding } from "../members";

/**
 * JSON files that loaders open by name inside a model folder and act on:
 *
 * - Keras 3 `keras.saving.load_model` (saving_api.py) hands a `.keras` zip, or a directory holding
 *   `config.json`, to saving_lib.load_model, which reads `config.json` first and gives it to
 *   `deserialize_keras_object` (saving_lib._model_from_config) before any weights file is looked
 *   at: every JSON object carrying both `class_name` and `config` is turned into a Python object
 *   (a class looked up by `module`, a `__lambda__`'s marshalled code when safe_mode is off); any
 *   other object is walked key by key. Weights follow: `model.weights.h5` (h5py) or
 *   `model.weights.npz` (NpzIOStore: `np.load(f, allow_pickle=True)`), and `metadata.json`.
 * - transformers reads `config.json`, `tokenizer_config.json`, `preprocessor_config.json`,
 *   `processor_config.json`, `video_preprocessor_config.json` of a model folder; an `auto_map`
 *   entry ("module.Class", or "org/repo--module.Class" for another repository; a tokenizer's
 *   value may be a [slow, fast] list with nulls, and a legacy tokenizer_config auto_map is such
 *   a list itself) and a `config.json` `custom_pipelines` task's `impl` are class references that
 *   dynamic_module_utils.get_class_from_dynamic_module downloads (`module.py` from the repository)
 *   and imports once resolve_trust_remote_code allows it (trust_remote_code=True).
 *
 * Loaders find these files by name, so they are found by name here (compared ignoring ASCII case:
 * on a case-insensitive filesystem `CONFIG.JSON` is what open("config.json") reads), every one
 * whose name ends in `config.json`. Each must be UTF-8 JSON as modelgate parses it: Python's json
 * module also reads NaN/Infinity, and `json.loads(bytes)` (Keras) reads UTF-16 and UTF-32 too, so a
 * file modelgate cannot parse is one it cannot vouch for: `malformed_container` (fail closed).
 */

export interface LoaderConfig {
  /** Member path inside the archive. */
  member: string;
  /** Report location (archive path + member). */
  location: string;
  /** Folder of the member inside the archive ("" = root, else "a/b/"). */
  folder: string;
  /** Lower-cased base name. */
  baseName: string;
  /** The parsed JSON, when it parsed. */
  value?: unknown;
}

/** A member's base name as a filesystem may resolve it: ASCII case folded, and trailing dots and spaces dropped (Win32 path normalisation opens `config.json.` as `config.json`). */
function baseNameOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return (slash < 0 ? path : path.slice(slash + 1)).toLowerCase().replace(/[. ]+$/, "");
}

function folderOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash + 1);
}

export function isLoaderConfigName(path: string): boolean {
  return baseNameOf(path).endsWith("config.json");
}

function parseConfigJson(bytes: Uint8Array, name: string): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new GatewayError(
      "malformed_container",
      `${name} is not UTF-8: a loader reading it by name may still decode it (UTF-16/32), modelgate cannot inspect it`,
    );
  }
  try {
    return JSON.parse(text.replace(/^\uFEFF/, "")) as unknown;
  } catch (err) {
    throw new GatewayError(
      "malformed_container",
      `${name} is not JSON as modelgate parses it (${(err as Error).message}); Python's json module also reads NaN and Infinity`,
    );
  }
}

/**
 * Read and parse every loader config of an archive. A member that cannot be read, is larger than
 * MAX_LOADER_CONFIG_BYTES or does not parse gets its finding pushed to `findings`.
 */
export async function readLoaderConfigs(
  archive: ArchiveContents,
  path: string,
  findings: Finding[],
  maxBytes = MAX_LOADER_CONFIG_BYTES,
): Promise<LoaderConfig[]> {
  const configs: LoaderConfig[] = [];
  for (const member of archive.members) {
    if (member.isDirectory || !isLoaderConfigName(member.path)) continue;
    const location = memberPath(path, member.path);
    const config: LoaderConfig = { member: member.path, location, folder: folderOf(member.path), baseName: baseNameOf(member.path) };
    configs.push(config);
    try {
      if (member.size > maxBytes) {
        throw new GatewayError(
          "limit_exceeded",
          `${member.path} is ${member.size} bytes, more than ${maxBytes} (MAX_LOADER_CONFIG_BYTES): a loader reads it by name, so it is not skipped`,
        );
      }
      config.value = parseConfigJson(await readWholeMember(member, maxBytes), member.path);
    } catch (err) {
      findings.push(findingOf(err, location));
    }
  }
  return configs;
}

/** Whether a JSON value holds, at any depth, an object with both `class_name` and `config`: what deserialize_keras_object instantiates. */
export function holdsKerasObject(value: unknown): boolean {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    if (!Array.isArray(v) && Object.hasOwn(v, "class_name") && Object.hasOwn(v, "config")) return true;
    for (const child of Object.values(v as Record<string, unknown>)) stack.push(child);
  }
  return false;
}

/** File names saving_lib writes next to config.json (model.weights.h5 / .npz, metadata.json). */
const KERAS_SIBLINGS: ReadonlySet<string> = new Set(["model.weights.h5", "model.weights.npz", "metadata.json"]);

/**
 * The folder ("" = archive root) of a Keras v3 model in this archive, if any: a `config.json`
 * whose content Keras would deserialize into objects, or one next to a file saving_lib writes.
 * Any folder counts, not only the root: keras.saving.load_model also loads an (extracted)
 * directory that holds config.json.
 */
export function kerasFolder(members: readonly ArchiveMember[], configs: readonly LoaderConfig[]): string | undefined {
  const namesByFolder = new Map<string, Set<string>>();
  for (const m of members) {
    if (m.isDirectory) continue;
    const folder = folderOf(m.path);
    const names = namesByFolder.get(folder) ?? new Set<string>();
    names.add(baseNameOf(m.path));
    namesByFolder.set(folder, names);
  }
  for (const c of configs) {
    if (c.baseName !== "config.json") continue;
    const siblings = namesByFolder.get(c.folder) ?? new Set<string>();
    if ([...KERAS_SIBLINGS].some((n) => siblings.has(n))) return c.folder;
    if (c.value !== undefined && holdsKerasObject(c.value)) return c.folder;
  }
  return undefined;
}

/** One class reference a transformers config names. */
export interface CodeReference {
  file: string;
  key: string;
  module: string;
  class: string;
  repository?: string;
}

/** Split "org/repo--module.Class" as get_class_from_dynamic_module does (repository before "--", then module and class). */
export function parseClassReference(reference: string): { module: string; class: string; repository?: string } {
  let rest = reference;
  let repository: string | undefined;
  const dashes = reference.indexOf("--");
  if (dashes >= 0) {
    repository = reference.slice(0, dashes);
    rest = reference.slice(dashes + 2);
  }
  const dot = rest.lastIndexOf(".");
  const parsed: { module: string; class: string; repository?: string } =
    dot < 0 ? { module: rest, class: "" } : { module: rest.slice(0, dot), class: rest.slice(dot + 1) };
  if (repository !== undefined) parsed.repository = repository;
  return parsed;
}

function malformed(message: string): GatewayError {
  return new GatewayError("malformed_container", message);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** References in one auto_map value: a string, null, or a list of strings and nulls. */
function referencesOf(value: unknown, file: string, key: string, out: CodeReference[]): void {
  if (value === null) return;
  if (typeof value === "string") {
    out.push({ file, key, ...parseClassReference(value) });
    return;
  }
  if (Array.isArray(value)) {
    (value as unknown[]).forEach((item, i) => {
      if (item === null) return;
      if (typeof item !== "string") throw malformed(`${file}: ${key}[${i}] is neither a class reference string nor null`);
      out.push({ file, key: `${key}[${i}]`, ...parseClassReference(item) });
    });
    return;
  }
  throw malformed(`${file}: ${key} is neither a class reference string, a list of them, nor null`);
}

/** The references of one object's own `auto_map` and `custom_pipelines`; `at` prefixes the keys ("" at the top). */
function ownReferences(value: Record<string, unknown>, file: string, at: string, out: CodeReference[]): void {
  if (Object.hasOwn(value, "auto_map")) {
    const autoMap = value.auto_map;
    if (Array.isArray(autoMap)) referencesOf(autoMap, file, `${at}auto_map`, out);
    else if (isPlainObject(autoMap)) for (const [k, v] of Object.entries(autoMap)) referencesOf(v, file, `${at}auto_map.${k}`, out);
    else if (autoMap !== null) throw malformed(`${file}: ${at}auto_map is neither an object nor a list`);
  }
  if (Object.hasOwn(value, "custom_pipelines")) {
    const pipelines = value.custom_pipelines;
    if (isPlainObject(pipelines)) {
      for (const [task, spec] of Object.entries(pipelines)) {
        if (!isPlainObject(spec)) throw malformed(`${file}: ${at}custom_pipelines.${task} is not an object`);
        // pipelines.clean_custom_task needs "impl"; "pt"/"tf" are getattr(transformers, name), not code.
        if (typeof spec.impl !== "string") throw malformed(`${file}: ${at}custom_pipelines.${task}.impl is not a class reference string`);
        out.push({ file, key: `${at}custom_pipelines.${task}.impl`, ...parseClassReference(spec.impl) });
      }
    } else if (pipelines !== null) {
      throw malformed(`${file}: ${at}custom_pipelines is not an object`);
    }
  }
}

/**
 * Every class reference of one parsed transformers config: the top-level `auto_map` and
 * `custom_pipelines`, and the same keys of any nested object (a composite model's `text_config`,
 * `vision_config`... are configs of their own: fail closed); throws malformed_container on shapes
 * transformers cannot mean.
 */
export function codeReferences(value: unknown, file: string): CodeReference[] {
  const out: CodeReference[] = [];
  const stack: { v: unknown; at: string }[] = [{ v: value, at: "" }];
  while (stack.length > 0) {
    const top = stack.pop();
    if (top === undefined || !isPlainObject(top.v)) continue;
    ownReferences(top.v, file, top.at, out);
    const children = Object.entries(top.v).filter(([k, v]) => k !== "auto_map" && k !== "custom_pipelines" && isPlainObject(v));
    for (const [k, v] of children.reverse()) stack.push({ v, at: `${top.at}${k}.` });
  }
  return out;
}

/**
 * `remote_code` findings for every class reference of every parsed loader config: suspicious
 * (rejects) unless the source's policy sets allowRemoteCode. A shape transformers cannot mean is
 * `malformed_container`.
 */
export function remoteCodeFindings(configs: readonly LoaderConfig[], ctx: FormatContext): Finding[] {
  const findings: Finding[] = [];
  for (const c of configs) {
    if (c.value === undefined) continue;
    let refs: CodeReference[];
    try {
      refs = codeReferences(c.value, c.member);
    } catch (err) {
      findings.push(findingOf(err, c.location));
      continue;
    }
    for (const ref of refs) {
      const where = ref.repository === undefined ? "this folder (or the Hub repository it is loaded as)" : `repository ${ref.repository}`;
      const what = `${ref.file} ${ref.key} names class ${ref.class} of module ${ref.module}.py in ${where}: transformers fetches and imports it with trust_remote_code=True`;
      const finding = policyGatedFinding(ctx, "allowRemoteCode", "remote_code", "suspicious", what, c.location);
      finding.details = { ...ref };
      findings.push(finding);
    }
  }
  return findings;
}
