/**
 * The spelling of an operator's import pattern ("module.name" or "module.*"), checked wherever a
 * policy is read (allowlist.json through inspect/policy.ts, `--allow-global`, makePicklePolicy).
 * Its own file so that inspect/policy.ts can validate patterns without importing the pickle
 * policy, which reads inspect/policy.ts's ContentPolicy (no import circle).
 */

const IDENT = "[A-Za-z_][A-Za-z0-9_]*";
const PATTERN_RE = new RegExp(`^${IDENT}(?:\\.${IDENT})*(?:\\.\\*)?$`);

/** Why a pattern is unusable, or undefined when it is a valid pattern. */
export function invalidGlobalPattern(pattern: string): string | undefined {
  if (!PATTERN_RE.test(pattern)) return `"${pattern}" is not "module.name" or "module.*"`;
  if (!pattern.endsWith(".*") && !pattern.includes(".")) return `"${pattern}" names no module: use "${pattern}.*" for a whole module`;
  if (pattern.split(".").some(isDunder)) return `"${pattern}" has a dunder segment; those are never allowed by a pattern`;
  return undefined;
}

/** A dunder name segment ("__globals__", "__class__"): never matched by a pattern. */
export function isDunder(segment: string): boolean {
  return segment.length > 4 && segment.startsWith("__") && segment.endsWith("__");
}
