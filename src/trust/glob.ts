/**
 * Artifact-name globs of allowlist.json `names`: `*` matches any run of characters within one
 * path segment (not `/`), `**` matches any run including `/`; every other character is literal.
 * Implemented without regular expressions built from operator input (no ReDoS, no escaping
 * mistakes): a classic two-pointer wildcard match with memoisation, O(pattern × name).
 */
export function matchesNameGlob(pattern: string, name: string): boolean {
  const tokens = tokenize(pattern);
  const memo = new Map<number, boolean>();
  const match = (ti: number, ni: number): boolean => {
    const key = ti * (name.length + 1) + ni;
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    let result: boolean;
    const token = tokens[ti];
    if (token === undefined) {
      result = ni === name.length;
    } else if (token === STAR || token === GLOBSTAR) {
      // Zero characters, or consume one (not '/' for a single star) and stay on the token.
      const ch = name[ni];
      result = match(ti + 1, ni) || (ch !== undefined && (token === GLOBSTAR || ch !== "/") && match(ti, ni + 1));
    } else {
      result = name.startsWith(token, ni) && match(ti + 1, ni + token.length);
    }
    memo.set(key, result);
    return result;
  };
  return match(0, 0);
}

const STAR = Symbol("star");
const GLOBSTAR = Symbol("globstar");
type Token = string | typeof STAR | typeof GLOBSTAR;

function tokenize(pattern: string): Token[] {
  const tokens: Token[] = [];
  let literal = "";
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "*") {
      if (literal) tokens.push(literal);
      literal = "";
      let run = 1;
      while (pattern[i + 1] === "*") {
        run++;
        i++;
      }
      tokens.push(run >= 2 ? GLOBSTAR : STAR);
    } else {
      literal += pattern[i] ?? "";
    }
  }
  if (literal) tokens.push(literal);
  return tokens;
}
