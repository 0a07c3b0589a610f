import type { ByteSource } from "../../bytes/source";
import type { Finding, InspectionNode } from "../../inspect/report";
import type { ArchiveContents } from "../containers/archive";
import { memberPath } from "../containers/memberPath";
import type { FormatContext } from "../context";
import { appendMemberNode, inspectAllMembers, policyGatedFinding, withMember } from "../members";
import type { LoaderConfig } from "./loaderConfigs";

/**
 * Keras 3 `.keras` (a zip, or a folder holding `config.json`) as keras/src/saving/saving_lib.py
 * load_model reads it: `config.json` goes to serialization_lib.deserialize_keras_object, which
 * walks it and, for every dict carrying `class_name` and `config`, imports `module` and looks up
 * `class_name` in it (_retrieve_class_or_fn: `importlib.import_module(module)`, so any importable
 * module runs its top-level code), then calls `cls.from_config(config)` (nested objects are
 * deserialized by the classes themselves, so every depth counts). `Lambda` layers hold
 * `marshal`led Python bytecode (`function` / `__lambda__`) that runs once safe_mode is off;
 * `TFSMLayer` loads another TensorFlow SavedModel from a path. Weights follow:
 * `model.weights.h5` (h5py) or `model.weights.npz` (np.load, allow_pickle=True).
 *
 * Classes are judged by module: `keras` and `keras.*` are trusted by prefix (a generated table of
 * Keras's public API is not built yet), `builtins` only for `class_name: "function"` (Keras looks
 * the name up in its own modules), anything else is `unknown_class` unless the source policy's
 * `keras.allowClasses` names `module.class_name`.
 */

/** Classes that load another saved model or file from a path the config names. */
const DANGEROUS_CLASSES: ReadonlySet<string> = new Set(["TFSMLayer"]);
/** Classes whose config carries marshalled Python bytecode (keras/src/layers/core/lambda_layer.py). */
const CODE_CLASSES: ReadonlySet<string> = new Set(["Lambda", "__lambda__"]);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Whether an allowClasses pattern ("mypkg.layers.MyLayer" or "mypkg.layers.*") names `qualified`. */
export function kerasClassAllowed(patterns: readonly string[], qualified: string): boolean {
  return patterns.some((p) => (p.endsWith(".*") ? qualified.startsWith(p.slice(0, -1)) : p === qualified));
}

function isKerasModule(module: string): boolean {
  return module === "keras" || module.startsWith("keras.");
}

/** Findings for every serialized object of one parsed config.json, at every depth. */
export function kerasConfigFindings(value: unknown, location: string, ctx: FormatContext): Finding[] {
  const findings: Finding[] = [];
  const allow = ctx.policy.keras?.allowClasses ?? [];
  const stack: { v: unknown; at: string }[] = [{ v: value, at: "" }];
  while (stack.length > 0) {
    const top = stack.pop();
    if (top === undefined) continue;
    if (Array.isArray(top.v)) {
      top.v.forEach((child: unknown, i) => stack.push({ v: child, at: `${top.at}[${i}]` }));
      continue;
    }
    if (!isPlainObject(top.v)) continue;
    const obj = top.v;
    // Shortened in the report: a config nested a million levels deep must not make megabyte messages.
    const where = top.at === "" ? "(root)" : top.at.length > 200 ? `…${top.at.slice(-200)}` : top.at;
    if (Object.hasOwn(obj, "safe_mode") && obj.safe_mode === false) {
      findings.push({
        code: "unsafe_option",
        severity: "dangerous",
        message: `config.json ${where} sets safe_mode false: Keras would then run marshalled Lambda bytecode`,
        location,
      });
    }
    if (typeof obj.class_name === "string" && Object.hasOwn(obj, "config")) {
      const className = obj.class_name;
      const module = typeof obj.module === "string" ? obj.module : undefined;
      const qualified = module === undefined ? className : `${module}.${className}`;
      const details = { module: module ?? null, class_name: className, at: where };
      if (CODE_CLASSES.has(className)) {
        const what = `config.json ${where}: ${qualified} holds marshalled Python bytecode Keras runs when the model is loaded`;
        findings.push({ ...policyGatedFinding(ctx, "allowEmbeddedCode", "embedded_code", "dangerous", what, location), details });
      } else if (DANGEROUS_CLASSES.has(className)) {
        findings.push({
          code: "dangerous_class",
          severity: "dangerous",
          message: `config.json ${where}: ${qualified} loads another saved model from a path when the model is loaded`,
          location,
          details,
        });
      } else if (module !== undefined && !isKerasModule(module) && !(module === "builtins" && className === "function")) {
        const what = `config.json ${where}: class ${qualified} is outside Keras; deserialize_keras_object imports module ${module}`;
        findings.push(
          kerasClassAllowed(allow, qualified)
            ? { code: "unknown_class", severity: "innocuous", message: `${what} (allowed by the source's policy: keras.allowClasses)`, location, details }
            : {
                code: "unknown_class",
                severity: "suspicious",
                message: `${what}; rejected unless the source's policy keras.allowClasses names it`,
                location,
                details,
              },
        );
      }
    }
    const entries = Object.entries(obj);
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i];
      if (entry !== undefined) stack.push({ v: entry[1], at: top.at === "" ? entry[0] : `${top.at}.${entry[0]}` });
    }
  }
  return findings;
}

const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/** model.weights.h5 is only sniffed for now: it must start with the HDF5 signature (h5py reads no other file). */
function sniffH5Weights(source: ByteSource, path: string): InspectionNode {
  const buf = new Uint8Array(8);
  const ok = source.readAt(buf, 0) === 8 && HDF5_SIGNATURE.every((b, i) => buf[i] === b);
  return {
    kind: "member",
    path,
    format: "hdf5",
    findings: ok
      ? []
      : [{ code: "malformed_container", severity: "malformed", message: "model.weights.h5 does not start with the HDF5 signature", location: path }],
    children: [],
  };
}

/**
 * Inspect an archive holding a Keras v3 model: the `config.json` of every folder judged
 * (kerasConfigFindings; any folder can be handed to load_model, so not only the first one found),
 * every `model.weights.h5` sniffed, and every other member inspected by content
 * (model.weights.npz as an npz, as today).
 */
export async function inspectKeras(archive: ArchiveContents, configs: readonly LoaderConfig[], path: string, ctx: FormatContext): Promise<InspectionNode> {
  const node = archive.node;
  node.format = "keras";
  // A config.json that did not parse already has its finding (readLoaderConfigs): fail closed.
  for (const c of configs) if (c.baseName === "config.json" && c.value !== undefined) node.findings.push(...kerasConfigFindings(c.value, c.location, ctx));
  const skip = new Set<string>();
  for (const m of archive.members) {
    if (m.isDirectory || (m.path.split("/").pop() ?? "").toLowerCase() !== "model.weights.h5") continue;
    skip.add(m.path);
    const p = memberPath(path, m.path);
    // Through appendMemberNode: the report bound on member nodes holds for these too (MAX_REPORT_MEMBER_NODES).
    appendMemberNode(node, await withMember(m, p, (source) => Promise.resolve(sniffH5Weights(source, p))), ctx);
  }
  await inspectAllMembers(archive, path, ctx, skip);
  return node;
}
