import { artifactNameProblem, type ArtifactName } from "./artifactName";

/**
 * Artifact-name globs of allowlist.json `names`, matched segment by segment on a validated name
 * only (an ArtifactName: no `.`/`..`/empty segment, no leading `/`, NFC; src/trust/artifactName.ts).
 * Matching the raw text let `team-a/**` accept `team-a/../prod/model.pkl`, a name any consumer
 * that resolves paths reads as `prod/model.pkl`.
 *
 * Pattern and name are split on `/`. A pattern segment of two or more stars and nothing else
 * (`**`) matches ONE or more whole name segments; any other pattern segment matches exactly one
 * name segment, where a run of stars matches any run of characters (never a `/`) and every other
 * character is literal (`?`, `[`, `.` too). No regular expression is built from operator input
 * (no ReDoS, no escaping mistakes): a memoised match over segments, and a wildcard match inside a
 * segment, O(pattern length × name length) in all.
 */
export function matchesNameGlob(pattern: string, name: ArtifactName): boolean {
  const patternSegments = pattern.split("/").map(segmentTokens);
  // Code points, not graphemes: a star consumes whole characters and never half a surrogate pair.
  const nameSegments = name.split("/").map((s) => Array.from(s));
  const memo = new Map<number, boolean>();
  const match = (pi: number, ni: number): boolean => {
    const key = pi * (nameSegments.length + 1) + ni;
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    const tokens = patternSegments[pi];
    const segment = nameSegments[ni];
    let result: boolean;
    if (tokens === undefined) result = segment === undefined;
    else if (segment === undefined) result = false;
    else if (tokens === GLOBSTAR) result = match(pi + 1, ni + 1) || match(pi, ni + 1);
    else result = segmentMatches(tokens, segment) && match(pi + 1, ni + 1);
    memo.set(key, result);
    return result;
  };
  return match(0, 0);
}

const STAR = Symbol("star");
const GLOBSTAR = Symbol("globstar");
/** A pattern segment: `**` alone, or literal code points and single-segment stars. */
type SegmentTokens = typeof GLOBSTAR | (string | typeof STAR)[];

function segmentTokens(segment: string): SegmentTokens {
  if (/^\*{2,}$/.test(segment)) return GLOBSTAR;
  const tokens: (string | typeof STAR)[] = [];
  for (const ch of segment) {
    if (ch !== "*") tokens.push(ch);
    else if (tokens[tokens.length - 1] !== STAR) tokens.push(STAR);
  }
  return tokens;
}

/** Wildcard match of one segment (code points), memoised: O(tokens × characters). */
function segmentMatches(tokens: readonly (string | typeof STAR)[], segment: readonly string[]): boolean {
  const memo = new Map<number, boolean>();
  const match = (ti: number, si: number): boolean => {
    const key = ti * (segment.length + 1) + si;
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    const token = tokens[ti];
    let result: boolean;
    if (token === undefined) result = si === segment.length;
    else if (token === STAR) result = match(ti + 1, si) || (si < segment.length && match(ti, si + 1));
    else result = segment[si] === token && match(ti + 1, si + 1);
    memo.set(key, result);
    return result;
  };
  return match(0, 0);
}

/**
 * Why an allowlist `names` pattern can never mean what it says, or undefined: a pattern must
 * itself be a valid name with `*` read as an ordinary character (so `team-a/../prod/**`,
 * `/abs/**`, `a//b` or a bidi override are refused when the allowlist loads instead of silently
 * matching nothing), and `**` must be a whole segment (`**.pt` used to cross `/`; it is written
 * `**` + `/` + `*.pt` now).
 */
export function namePatternProblem(pattern: string): string | undefined {
  const problem = artifactNameProblem(pattern);
  if (problem !== undefined) return problem;
  if (pattern.split("/").some((s) => s.includes("**") && !/^\*+$/.test(s))) {
    return "'**' must be a whole segment ('a/**/b', '**/*.pt'); inside a segment use '*'";
  }
  return undefined;
}
