import { GatewayError } from "../errors";
import { MAX_ARTIFACT_NAME_LENGTH } from "../limits";

declare const validated: unique symbol;
/**
 * An artifact name that passed the name rule. Only `parseArtifactName` / `isValidArtifactName`
 * make one, so code that takes an ArtifactName (the glob matcher, the allowlist's name check)
 * cannot be handed raw request text.
 */
export type ArtifactName = string & { readonly [validated]: true };

/**
 * Characters refused anywhere in a name, each class with the attack it stops:
 * - `\p{Cc}` control characters (C0, DEL, C1 including U+0085 NEL): forged log and terminal
 *   lines (CWE-117, CWE-150).
 * - `\p{Cf}` format characters and `\p{Default_Ignorable_Code_Point}` (bidi overrides and
 *   isolates U+202A-202E / U+2066-2069, zero-width U+200B-200D, U+FEFF, soft hyphen, tag
 *   characters, variation selectors, the Hangul fillers): invisible, so `prod/model.pkl` and
 *   `prod/mo\u200bdel.pkl` or a right-to-left override (CVE-2021-42574, "Trojan Source") would
 *   look the same to a reviewer while being different names.
 * - `\p{Cs}` lone surrogates: not encodable as UTF-8, so another implementation reads another
 *   string (Node's Buffer writes U+FFFD, Python raises).
 * - `\p{Co}` private use and `\p{Cn}` unassigned code points (noncharacters included): no
 *   agreed rendering, and normalization of unassigned code points may change in a later Unicode.
 * - `\p{White_Space}` other than U+0020 (NBSP, U+2000-200A, U+2028/2029, U+3000…): look like a
 *   space or a line break and are not one.
 * - `\` : a path separator on Windows and an escape almost everywhere else.
 */
const REFUSED_CHARACTERS = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}\\]|(?! )\p{White_Space}/u;

/** Describes the first character of `text` that REFUSED_CHARACTERS matches, as U+XXXX. */
function describeRefused(text: string): string {
  const match = REFUSED_CHARACTERS.exec(text);
  const cp = match?.[0].codePointAt(0);
  if (cp === undefined || match === null) return "a refused character";
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")} at index ${String(match.index)}`;
}

/**
 * Percent-encoded `.`, `/`, `\`, `%` and NUL: a consumer that URL-decodes the name (a name in a
 * URL path, a proxy) would read `team-a/%2e%2e/prod` as `team-a/../prod` (CWE-174, double decoding).
 */
const PERCENT_ENCODED_SEPARATOR = /%(?:2e|2f|5c|25|00)/i;
/** A Windows drive (`C:`) makes a path absolute there, as a leading `/` does elsewhere. */
const DRIVE_PREFIX = /^[A-Za-z]:/;

/** Why `segments` (a name split on `/`) is not a clean relative path, or undefined. */
function segmentProblem(segments: readonly string[]): string | undefined {
  for (const [i, segment] of segments.entries()) {
    if (segment === "") {
      if (i === 0) return "it starts with '/' (names are relative)";
      return i === segments.length - 1 ? "it ends with '/'" : "it has an empty segment ('//')";
    }
    if (segment === "." || segment === "..") return `it has a '${segment}' segment`;
    // Windows drops trailing dots and spaces from a path segment (`prod.` is `prod`, `.. ` is
    // `..`), and a leading or trailing space is invisible in a log line.
    if (/^[. ]+$/.test(segment)) return "it has a segment of only dots and spaces";
    if (/[. ]$/.test(segment) || segment.startsWith(" ")) return "a segment ends with a dot or a space, or starts with a space";
  }
  return undefined;
}

/**
 * Why `name` is not a valid artifact name, or undefined when it is. The rule: 1 to
 * MAX_ARTIFACT_NAME_LENGTH UTF-16 code units; no refused character (REFUSED_CHARACTERS); in
 * Unicode Normalization Form C; a relative path of non-empty segments separated by `/`, none of
 * them `.` or `..` (so `team-a/../prod/model.pkl` never reaches a glob that a path-resolving
 * consumer would disagree with), none that Windows would rewrite (trailing dot or space, only
 * dots), no drive prefix, no percent-encoded separator; and no character that NFKC turns
 * into a `/`, a `\` or a dot segment (U+FF0F FULLWIDTH SOLIDUS, U+2025 TWO DOT LEADER…), for
 * consumers that apply NFKC.
 */
export function artifactNameProblem(name: string): string | undefined {
  if (name.length === 0) return "it is empty";
  if (name.length > MAX_ARTIFACT_NAME_LENGTH) return `it has ${String(name.length)} characters, more than ${String(MAX_ARTIFACT_NAME_LENGTH)}`;
  if (REFUSED_CHARACTERS.test(name))
    return `it contains ${describeRefused(name)} (control, format, invisible, unassigned, private-use or non-space whitespace character, lone surrogate or backslash)`;
  // Two spellings of one text (U+00E9 and e + U+0301) must not be two names (Unicode UAX #15).
  // NFC is the form W3C Character Model recommends and most producers emit; a name in another
  // form (macOS file APIs hand out decomposed names) is refused, never normalized silently, so
  // the signed bytes and the name modelgate records stay the same string.
  if (name.normalize("NFC") !== name) return "it is not in Unicode Normalization Form C";
  const segments = name.split("/");
  const problem = segmentProblem(segments);
  if (problem !== undefined) return problem;
  if (DRIVE_PREFIX.test(name)) return "it starts with a drive letter ('C:'), an absolute path on Windows";
  if (PERCENT_ENCODED_SEPARATOR.test(name)) return "it contains a percent-encoded '.', '/', '\\', '%' or NUL (%2e %2f %5c %25 %00)";
  const compatible = name.normalize("NFKC");
  if (compatible.includes("\\") || segmentProblem(compatible.split("/")) !== undefined || compatible.split("/").length !== segments.length) {
    return "it contains a character that compatibility normalization (NFKC) turns into '/', '\\' or a dot segment";
  }
  return undefined;
}

export function isValidArtifactName(name: string): name is ArtifactName {
  return artifactNameProblem(name) === undefined;
}

/** Untrusted text for an error message: truncated, quoted and escaped (JSON string syntax). */
export function quoteUntrusted(text: string, max = 200): string {
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}…` : text);
}

/** A refused name for an error message: cut, JSON-quoted, and everything outside printable ASCII
 * as \uXXXX, so the message itself carries no bidi override or invisible character. */
function quoteName(name: string): string {
  return quoteUntrusted(name, 80).replace(/[^\x20-\x7e]/gu, (ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`);
}

/**
 * The one gate for artifact names: the signed statement's subject, the upload's `name` field and
 * `Modelgate-Name` header, the listing filter, `modelgate sign --name` and `verify --name`.
 * Throws `invalid_name` (HTTP 400).
 */
export function parseArtifactName(name: string, what = "artifact name"): ArtifactName {
  const problem = artifactNameProblem(name);
  if (problem !== undefined) {
    throw new GatewayError("invalid_name", `${what} ${quoteName(name)} is refused: ${problem}`);
  }
  return name as ArtifactName;
}
