import { GatewayError } from "../errors";
import type { ContentPolicy } from "../inspect/policy";
import type { ImportSafety } from "../inspect/report";
import { aliasOf, devendoredName, type AliasKind } from "./aliasMap";
import { IMPORT_MAPPING, NAME_MAPPING } from "./compatNames";
import { floorGroupOf } from "./floor";
import { invalidGlobalPattern, isDunder } from "./globalPattern";
import { presetGlobals, wildcardPrivateNames, type PresetName } from "./presets";
import { SAFE_GLOBALS } from "./safeSet";

/**
 * The pickle import policy. Default verdict: reject. An import is accepted only when its exact
 * module and qualified name are in the built-in safe set or match an operator pattern, and never
 * when it falls under the hard floor (floor.ts), whatever the patterns say.
 *
 * Patterns (allowlist.json `pickle.allowGlobals`, `--allow-global`):
 * - "module.name": exactly that import;
 * - "module.*": any name directly or indirectly inside that module ("sklearn.*" matches
 *   "sklearn.tree._classes.DecisionTreeClassifier"), except names in test modules and private
 *   names (see wildcardAdmits).
 * Presets (allowlist.json `pickle.presets`, `--preset`): exact lists generated from the real
 * package (presets.ts).
 * A name with a dunder segment ("__globals__", "__class__", "__reduce__") or a dotted name (the
 * unpickler would traverse attributes: "Foo.bar.__globals__") is never matched by a pattern.
 * A name in the alias map (aliasMap.ts: a re-export of a floor callable, a module object, a
 * callable that runs code) is on the hard floor like the floor's own entries.
 */
export interface PicklePolicy {
  readonly content: ContentPolicy;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
  readonly presets: readonly PresetName[];
}

/**
 * Module segments of test code. Pickle imports whatever module it is told to, and test helpers
 * are where libraries keep process runners and re-exports (sklearn.utils._testing imports
 * subprocess.check_output); no model pickle names them, so no wildcard admits them.
 */
export const TEST_MODULE_SEGMENTS: ReadonlySet<string> = new Set(["tests", "test", "testing", "_testing", "conftest"]);

/**
 * Module segments of vendored third-party code (sklearn.externals, six.moves, pip's _vendor):
 * re-exports of other packages under the allowed prefix, which the alias map, generated from
 * today's versions, does not list.
 */
export const VENDORED_MODULE_SEGMENTS: ReadonlySet<string> = new Set(["externals", "extern", "vendor", "vendored", "moves"]);

/** Build the policy; throws GatewayError("invalid_config") for a malformed pattern. */
export function makePicklePolicy(content: ContentPolicy, extraAllowGlobals: string[] = [], extraPresets: readonly PresetName[] = []): PicklePolicy {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of [...content.allowGlobals, ...extraAllowGlobals]) {
    const why = invalidGlobalPattern(p);
    if (why !== undefined) throw new GatewayError("invalid_config", `invalid pickle global pattern: ${why}`, { pattern: p });
    if (p.endsWith(".*")) prefixes.push(p.slice(0, -2));
    else exact.add(p);
  }
  const presets = [...new Set([...(content.presets ?? []), ...extraPresets])];
  return { content, exact, prefixes, presets };
}

/** The (module, name) the unpickler really imports under protocols < 3 (fix_imports). */
export function compatName(module: string, name: string): [string, string] {
  const pair = NAME_MAPPING.get(`${module} ${name}`);
  if (pair) return [pair[0], pair[1]];
  const mapped = IMPORT_MAPPING.get(module);
  return mapped === undefined ? [module, name] : [mapped, name];
}

function isAllowed(module: string, name: string, policy: PicklePolicy): boolean {
  // Attribute traversal ("torch" + "_utils._rebuild_tensor_v2") is never allowed, not even when it
  // spells a safe-set entry: serializers write the canonical module/name split.
  if (name.includes(".")) return false;
  const full = `${module}.${name}`;
  if (SAFE_GLOBALS.has(full)) return true;
  // Patterns never match dunder names.
  if (isDunder(name) || module.split(".").some((s) => s.length === 0)) return false;
  if (policy.exact.has(full)) return true;
  if (policy.presets.some((p) => presetGlobals(p).has(full))) return true;
  for (const prefix of policy.prefixes) {
    if ((module === prefix || module.startsWith(`${prefix}.`)) && wildcardAdmits(module, name)) return true;
  }
  return false;
}

/**
 * Whether a wildcard pattern may admit `module.name` at all. Pickle resolves any attribute of any
 * module, so "sklearn.*" would otherwise admit sklearn's test helpers and private re-exports
 * (sklearn.utils._joblib.load is joblib.load). A wildcard never admits a name in a test module
 * or a vendored copy (a segment in TEST_MODULE_SEGMENTS or VENDORED_MODULE_SEGMENTS), nor a name with a private segment (a module segment or the
 * name starting with "_"), unless that exact name is one pickle itself writes for the package's
 * public API or one of its documented reconstructors (the generated wildcard list: sklearn's
 * classes are defined in private modules, `sklearn.linear_model._logistic.LogisticRegression`).
 */
export function wildcardAdmits(module: string, name: string): boolean {
  const segments = module.split(".");
  if (segments.some((s) => TEST_MODULE_SEGMENTS.has(s) || VENDORED_MODULE_SEGMENTS.has(s))) return false;
  if (!name.startsWith("_") && !segments.some((s) => s.startsWith("_"))) return true;
  return wildcardPrivateNames().has(`${module}.${name}`);
}

const ALIAS_KIND_TEXT: Readonly<Record<AliasKind, string>> = {
  "floor-callable": "is the hard-floor callable",
  module: "is the module object",
  "runs-code": "runs code (imports, executes, opens files or spawns processes): defined as",
};

export interface GlobalClassification {
  safety: ImportSafety;
  code?: "dangerous_global" | "unknown_global";
  reason: string;
}

/**
 * Classify one import by the exact module and qualified name in the stream. Both the spelling in
 * the bytes and the name the loader would import after the Python 2 fixes are checked: an import
 * is dangerous if either is on the floor, and allowed only if both are allowed.
 */
export function classifyGlobal(module: string, name: string, policy: PicklePolicy): GlobalClassification {
  const [m2, n2] = compatName(module, name);
  const spellings: [string, string][] = [[module, name]];
  if (m2 !== module || n2 !== name) spellings.push([m2, n2]);
  for (const [m, n] of spellings) {
    const group = floorGroupOf(`${m}.${n}`);
    if (group !== undefined) {
      return { safety: "dangerous", code: "dangerous_global", reason: `${m}.${n} is on the hard floor (${group})` };
    }
    // The alias map is part of the floor: checked before any policy, so neither an exact name,
    // a preset nor a wildcard can admit a re-export of subprocess.check_output.
    const alias = aliasOf(`${m}.${n}`);
    if (alias !== undefined) {
      return {
        safety: "dangerous",
        code: "dangerous_global",
        reason: `${m}.${n} ${ALIAS_KIND_TEXT[alias.kind]} ${alias.target} (alias map, on the hard floor)`,
      };
    }
    // Vendored copies (sklearn.externals.joblib, six.moves) are judged as what they stand for.
    const real = devendoredName(`${m}.${n}`);
    if (real !== undefined) {
      const realGroup = floorGroupOf(real);
      const realAlias = aliasOf(real);
      if (realGroup !== undefined || realAlias !== undefined || real === "six.moves") {
        return { safety: "dangerous", code: "dangerous_global", reason: `${m}.${n} is the vendored ${real} (${realGroup ?? "alias map"}, on the hard floor)` };
      }
    }
  }
  if (name.includes(".") && name.split(".").some(isDunder)) {
    return { safety: "dangerous", code: "dangerous_global", reason: `attribute traversal into a dunder attribute: ${module}.${name}` };
  }
  if (module.length === 0 || name.length === 0) {
    return { safety: "unknown", code: "unknown_global", reason: "empty module or name" };
  }
  if (isAllowed(module, name, policy) && isAllowed(m2, n2, policy)) {
    return { safety: "innocuous", reason: SAFE_GLOBALS.has(`${module}.${name}`) ? "in the built-in safe set" : "allowed by the source's policy" };
  }
  return {
    safety: "unknown",
    code: "unknown_global",
    reason: `${module}.${name} is not in the safe set, the source's presets or its allowGlobals (wildcards never admit test modules or private names outside the generated list)`,
  };
}
