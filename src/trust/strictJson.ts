import { GatewayError } from "../errors";
import { MAX_TRUST_JSON_DEPTH } from "../limits";

/**
 * JSON for signed documents, parsed so that every reader sees one meaning.
 *
 * RFC 8259 §4 leaves duplicate member names undefined: JSON.parse, Python's json and Go's
 * encoding/json keep the LAST value, other parsers (many streaming and "strict" ones) keep the
 * FIRST. A statement `{"subject":[{"name":"prod/x",…,"name":"team-a/x"}]}` would then be
 * verified by modelgate for one name and read by another tool as the other. So this scanner walks
 * the whole text before JSON.parse and refuses (`malformed_signature`):
 * - a member name repeated in one object, compared AFTER decoding escapes (`"name"` and
 *   `"na\u006de"` are the same key), at every depth;
 * - nesting deeper than MAX_TRUST_JSON_DEPTH (explicit stack, no recursion);
 * - a `\uD800`-style escape that leaves a lone surrogate (RFC 7493 I-JSON §2.1: not Unicode text,
 *   decoded differently by different parsers);
 * - anything that is not RFC 8259 JSON (JSON.parse then parses what the scan accepted).
 */

type Frame = { kind: "object"; keys: Set<string> } | { kind: "array" };

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
/** RFC 8259 §6 number grammar. */
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
/** One string token: unescaped characters except `"`, `\` and U+0000-U+001F, or an escape. */
// eslint-disable-next-line no-control-regex -- RFC 8259 §7 forbids raw U+0000-U+001F in strings: matching them is the point
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const LONE_SURROGATE = /\p{Cs}/u;

function malformed(what: string, message: string, offset: number): GatewayError {
  return new GatewayError("malformed_signature", `${what} is not strict JSON: ${message} (at offset ${String(offset)})`);
}

/**
 * Parse `text` as JSON after the strict scan above; `what` names the document in messages
 * ("signature envelope", "envelope payload"). Throws `malformed_signature`.
 */
export function parseStrictJson(text: string, what: string, maxDepth = MAX_TRUST_JSON_DEPTH): unknown {
  scanStrictJson(text, what, maxDepth);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new GatewayError("malformed_signature", `${what} is not valid JSON`, undefined, { cause: err });
  }
}

/** The strict scan alone (see the module comment). */
export function scanStrictJson(text: string, what: string, maxDepth = MAX_TRUST_JSON_DEPTH): void {
  const stack: Frame[] = [];
  let pos = 0;

  const skipWhitespace = (): void => {
    while (pos < text.length && WHITESPACE.has(text.charCodeAt(pos))) pos++;
  };
  /** Reads one string token at pos; returns its decoded value. */
  const readString = (): string => {
    STRING.lastIndex = pos;
    const match = STRING.exec(text);
    if (match === null) throw malformed(what, "bad string", pos);
    pos += match[0].length;
    // The token is valid JSON string syntax, so JSON.parse decodes it exactly as it will later.
    const decoded = JSON.parse(match[0]) as string;
    if (LONE_SURROGATE.test(decoded)) throw malformed(what, "a string escapes a lone surrogate", pos - match[0].length);
    return decoded;
  };
  const expect = (ch: string): void => {
    if (text[pos] !== ch) throw malformed(what, `expected '${ch}'`, pos);
    pos++;
  };
  const open = (frame: Frame): void => {
    if (stack.length >= maxDepth) throw malformed(what, `nesting deeper than ${String(maxDepth)}`, pos);
    stack.push(frame);
    pos++;
  };

  /** Reads one value; containers are opened and left on the stack for the loop below. */
  const readValueStart = (): void => {
    skipWhitespace();
    const ch = text[pos];
    if (ch === "{") open({ kind: "object", keys: new Set() });
    else if (ch === "[") open({ kind: "array" });
    else if (ch === '"') readString();
    else if (text.startsWith("true", pos)) pos += 4;
    else if (text.startsWith("false", pos)) pos += 5;
    else if (text.startsWith("null", pos)) pos += 4;
    else {
      NUMBER.lastIndex = pos;
      const match = NUMBER.exec(text);
      if (match === null || match[0] === "") throw malformed(what, "expected a value", pos);
      pos += match[0].length;
    }
  };
  /** In an object, after `{` or `,`: a member name, `:`, and the start of its value. */
  const readMember = (frame: { keys: Set<string> }): void => {
    skipWhitespace();
    const at = pos;
    if (text[pos] !== '"') throw malformed(what, "expected a member name", pos);
    const key = readString();
    if (frame.keys.has(key)) throw malformed(what, `duplicate key ${JSON.stringify(key.slice(0, 64))}`, at);
    frame.keys.add(key);
    skipWhitespace();
    expect(":");
    readValueStart();
  };

  readValueStart();
  // Each turn handles what follows a finished value (or a just-opened container).
  let justOpened = stack.length > 0;
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (frame === undefined) break;
    const depth = stack.length;
    skipWhitespace();
    const ch = text[pos];
    const close = frame.kind === "object" ? "}" : "]";
    if (ch === close) {
      pos++;
      stack.pop();
      justOpened = false;
      continue;
    }
    if (!justOpened) {
      expect(",");
    }
    if (frame.kind === "object") readMember(frame);
    else readValueStart();
    // A value that opened a container leaves it on top: its first element comes next.
    justOpened = stack.length > depth;
  }
  skipWhitespace();
  if (pos !== text.length) throw malformed(what, "data after the JSON value", pos);
}
