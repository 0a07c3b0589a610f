import { SKLEARN_PRESET } from "./sklearnPreset.generated";
import { WILDCARD_PRIVATE_NAMES } from "./wildcardNames.generated";

/**
 * Named presets for a source's content policy (`"presets": ["sklearn"]`): exact import lists
 * generated from the real package by scripts/gen_pickle_names.py, so an operator can admit a
 * library's models without a wildcard over the whole library.
 */
export const PRESET_NAMES = ["sklearn"] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

const PRESET_LISTS: Readonly<Record<PresetName, readonly string[]>> = { sklearn: SKLEARN_PRESET };

const presetSets = new Map<PresetName, ReadonlySet<string>>();

/** The exact "module.name" imports a preset allows. */
export function presetGlobals(preset: PresetName): ReadonlySet<string> {
  let set = presetSets.get(preset);
  if (set === undefined) {
    set = new Set(PRESET_LISTS[preset]);
    presetSets.set(preset, set);
  }
  return set;
}

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}

let wildcardPrivate: ReadonlySet<string> | undefined;

/**
 * Names a wildcard pattern may admit although a module segment or the name starts with "_":
 * what pickle writes for the packages' public classes and functions (they are defined in private
 * modules: `sklearn.linear_model._logistic.LogisticRegression`) and the reconstructors that real
 * pickles of these libraries import (`sklearn.tree._tree.Tree`, `pandas._libs.internals._unpickle_block`).
 */
export function wildcardPrivateNames(): ReadonlySet<string> {
  wildcardPrivate ??= new Set(WILDCARD_PRIVATE_NAMES);
  return wildcardPrivate;
}
