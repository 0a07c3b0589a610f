import { ALIAS_TABLE } from "./aliasMap.generated";

/**
 * The alias map: names under the walked packages (sklearn, scipy, numpy, torch, joblib, pandas)
 * whose object is something a pickle must never reach, whatever a policy allows. CPython's
 * `_Unpickler.find_class` imports `module` and reads `name` as an attribute (Lib/pickle.py
 * `_getattribute`), so `sklearn.utils._testing.check_output` *is* `subprocess.check_output` and
 * `sklearn.utils._joblib.load` *is* `joblib.load`. The table is generated from the installed
 * packages by scripts/gen_pickle_names.py (its header states the rule); the policy treats every
 * entry as on the hard floor.
 */
export type AliasKind = "floor-callable" | "module" | "runs-code";

export interface AliasEntry {
  kind: AliasKind;
  /** What the name really is: the floor callable's name, the module, or the callable's definition. */
  target: string;
}

const KINDS: Readonly<Record<string, AliasKind>> = { f: "floor-callable", m: "module", c: "runs-code" };

let parsed: ReadonlyMap<string, AliasEntry> | undefined;

function parseAliasTable(): ReadonlyMap<string, AliasEntry> {
  const map = new Map<string, AliasEntry>();
  for (const line of ALIAS_TABLE.split("\n")) {
    const [module, ...items] = line.split(" ");
    if (module === undefined || module.length === 0) continue;
    for (const item of items) {
      const colon = item.indexOf(":");
      const kind = KINDS[item.slice(0, colon)];
      if (colon < 0 || kind === undefined) throw new Error(`aliasMap.generated.ts: bad item "${item}" for ${module}`);
      const eq = item.indexOf("=", colon);
      const attr = eq < 0 ? item.slice(colon + 1) : item.slice(colon + 1, eq);
      const full = `${module}.${attr}`;
      // No target: the module `module.attr` itself, or the callable's own definition.
      map.set(full, { kind, target: eq < 0 ? full : item.slice(eq + 1) });
    }
  }
  return map;
}

/** Every alias, parsed once on first use. */
export function aliasMap(): ReadonlyMap<string, AliasEntry> {
  parsed ??= parseAliasTable();
  return parsed;
}

/** The alias entry for the full dotted name `module.name`, or undefined. */
export function aliasOf(fullName: string): AliasEntry | undefined {
  return aliasMap().get(fullName);
}
