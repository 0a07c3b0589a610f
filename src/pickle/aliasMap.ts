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

let lines: ReadonlyMap<string, string> | undefined;
const parsedModules = new Map<string, ReadonlyMap<string, AliasEntry>>();

/** Containing module -> its line's items, split once; the items of a module are parsed when first asked. */
function moduleLines(): ReadonlyMap<string, string> {
  if (lines === undefined) {
    const byModule = new Map<string, string>();
    for (const line of ALIAS_TABLE.split("\n")) {
      const space = line.indexOf(" ");
      if (space > 0) byModule.set(line.slice(0, space), line.slice(space + 1));
    }
    lines = byModule;
  }
  return lines;
}

function parseModule(module: string, items: string): ReadonlyMap<string, AliasEntry> {
  const map = new Map<string, AliasEntry>();
  for (const item of items.split(" ")) {
    const colon = item.indexOf(":");
    const kind = KINDS[item.slice(0, colon)];
    if (colon < 0 || kind === undefined) throw new Error(`aliasMap.generated.ts: bad item "${item}" for ${module}`);
    const eq = item.indexOf("=", colon);
    const attr = eq < 0 ? item.slice(colon + 1) : item.slice(colon + 1, eq);
    // No target: the module `module.attr` itself, or the callable's own definition.
    map.set(attr, { kind, target: eq < 0 ? `${module}.${attr}` : item.slice(eq + 1) });
  }
  return map;
}

function aliasesOfModule(module: string): ReadonlyMap<string, AliasEntry> | undefined {
  let parsed = parsedModules.get(module);
  if (parsed === undefined) {
    const items = moduleLines().get(module);
    if (items === undefined) return undefined;
    parsed = parseModule(module, items);
    parsedModules.set(module, parsed);
  }
  return parsed;
}

/** Every alias by its full dotted name (for tests and tools; the policy looks up one module at a time). */
export function aliasMap(): ReadonlyMap<string, AliasEntry> {
  const all = new Map<string, AliasEntry>();
  for (const module of moduleLines().keys()) {
    for (const [attr, entry] of aliasesOfModule(module) ?? []) all.set(`${module}.${attr}`, entry);
  }
  return all;
}

/** The alias entry for the full dotted name `module.name` (name without dots), or undefined. */
export function aliasOf(fullName: string): AliasEntry | undefined {
  const dot = fullName.lastIndexOf(".");
  if (dot <= 0) return undefined;
  return aliasesOfModule(fullName.slice(0, dot))?.get(fullName.slice(dot + 1));
}

/**
 * Vendored copies of other packages, by the prefix a pickle names them with, and the package
 * they are: scikit-learn < 0.23 shipped joblib as `sklearn.externals.joblib` (so
 * `sklearn.externals.joblib.load` is `joblib.load` for a consumer running such a version), and
 * six's `moves` module re-exports stdlib modules and callables under other names
 * (six.py `_moved_attributes`: `six.moves.builtins` is builtins, `six.moves.cPickle` is pickle).
 * The installed packages the alias map was generated from do not have these, so they are listed
 * here; the policy checks the floor and the alias map on the name they stand for.
 */
const VENDORED_PREFIXES: readonly (readonly [string, string])[] = [
  ["sklearn.externals.joblib", "joblib"],
  ["sklearn.externals._joblib", "joblib"],
  ["sklearn.externals.six", "six"],
];

const SIX_MOVES: Readonly<Record<string, string>> = {
  builtins: "builtins",
  cPickle: "pickle",
  copyreg: "copyreg",
  reload_module: "importlib.reload",
  reduce: "functools.reduce",
  input: "builtins.input",
  getcwd: "os.getcwd",
  getcwdb: "os.getcwdb",
  _thread: "_thread",
  socketserver: "socketserver",
  http_client: "http.client",
  urllib: "urllib",
  urllib_parse: "urllib.parse",
  urllib_request: "urllib.request",
  urllib_error: "urllib.error",
  xmlrpc_client: "xmlrpc.client",
  shlex_quote: "shlex.quote",
  filter: "builtins.filter",
  map: "builtins.map",
};

/** The name a vendored `module.name` stands for (`sklearn.externals.joblib.load` -> `joblib.load`), or undefined. */
export function devendoredName(fullName: string): string | undefined {
  let name = fullName;
  for (const [prefix, real] of VENDORED_PREFIXES) {
    if (name === prefix || name.startsWith(`${prefix}.`)) {
      name = real + name.slice(prefix.length);
      break;
    }
  }
  if (name === "six.moves" || name.startsWith("six.moves.")) {
    const rest = name.slice("six.moves.".length);
    const dot = rest.indexOf(".");
    const head = dot < 0 ? rest : rest.slice(0, dot);
    const moved = SIX_MOVES[head];
    // An unknown move is still a stdlib re-export: treat the whole of six.moves as a module alias.
    name = moved === undefined ? "six.moves" : moved + (dot < 0 ? "" : rest.slice(dot));
  }
  return name === fullName ? undefined : name;
}
