import { GatewayError } from "../errors";

/**
 * The protocol 0 text decoders: the arguments of the text opcodes (INT, LONG, FLOAT, STRING,
 * UNICODE, PERSID) are lines the unpickler decodes with C and Python routines (strtol,
 * PyLong_FromString, float(), codecs.escape_decode, raw-unicode-escape). Each is modelled here so
 * that the reader (pickleReader.ts) accepts a line exactly when CPython's unpickler does, and
 * reads the value it reads.
 */

function malformed(message: string, offset: number): never {
  throw new GatewayError("malformed_pickle", `${message} at offset ${offset.toString()}`, { offset });
}

/** C's isspace in the C locale (strtol) and Py_ISSPACE (PyLong_FromString). */
const C_SPACE: ReadonlySet<string> = new Set([" ", "\t", "\n", "\r", "\v", "\f"]);
const LONG_MIN = -(2n ** 63n);
const LONG_MAX = 2n ** 63n - 1n;

function digitValue(c: string | undefined): number {
  if (c === undefined || !/^[0-9A-Za-z]$/.test(c)) return -1;
  return parseInt(c, 36);
}

function bigOfDigits(digits: string, radix: number, negative: boolean): bigint {
  const prefix = radix === 16 ? "0x" : radix === 8 ? "0o" : radix === 2 ? "0b" : "";
  const v = BigInt(`${prefix}${digits}`);
  return negative ? -v : v;
}

/** The C unpickler's line is a C string: it ends at the first NUL. */
export function cString(line: string): string {
  const z = line.indexOf("\0");
  return z < 0 ? line : line.slice(0, z);
}

/**
 * CPython's PyLong_FromString(s, NULL, base) for base 10 or 0 (PEP 515 underscores, base
 * prefixes and the all-zeros rule of base 0, surrounding whitespace); undefined where it raises.
 */
export function pyLongFromString(s: string, base: 0 | 10): bigint | undefined {
  let i = 0;
  while (i < s.length && C_SPACE.has(s.charAt(i))) i++;
  let negative = false;
  if (s.charAt(i) === "+" || s.charAt(i) === "-") {
    negative = s.charAt(i) === "-";
    i++;
  }
  let radix = 10;
  let zerosOnly = false;
  if (base === 0 && s.charAt(i) === "0") {
    const p = s.charAt(i + 1).toLowerCase();
    if (p === "x" || p === "o" || p === "b") {
      radix = p === "x" ? 16 : p === "o" ? 8 : 2;
      i += 2;
      if (s.charAt(i) === "_") i++;
    } else zerosOnly = true;
  }
  let digits = "";
  while (i < s.length) {
    const c = s.charAt(i);
    const d = digitValue(c);
    if (d >= 0 && d < radix) {
      digits += c;
      i++;
    } else if (c === "_" && digits.length > 0 && s.charAt(i - 1) !== "_" && digitValue(s.charAt(i + 1)) >= 0 && digitValue(s.charAt(i + 1)) < radix) {
      i++;
    } else break;
  }
  if (digits.length === 0) return undefined;
  while (i < s.length && C_SPACE.has(s.charAt(i))) i++;
  if (i !== s.length) return undefined;
  if (zerosOnly && /[^0]/.test(digits)) return undefined;
  return bigOfDigits(digits, radix, negative);
}

/** glibc strtol(s, &end, 0) on a 64-bit long, accepted only when it consumes the whole string; undefined otherwise or on overflow. */
export function cStrtol0(s: string): bigint | undefined {
  let i = 0;
  while (i < s.length && C_SPACE.has(s.charAt(i))) i++;
  let negative = false;
  if (s.charAt(i) === "+" || s.charAt(i) === "-") {
    negative = s.charAt(i) === "-";
    i++;
  }
  let radix = 10;
  if (s.charAt(i) === "0") {
    const x = s.charAt(i + 1);
    const h = digitValue(s.charAt(i + 2));
    if ((x === "x" || x === "X") && h >= 0 && h < 16) {
      radix = 16;
      i += 2;
    } else radix = 8;
  }
  let digits = "";
  while (i < s.length) {
    const d = digitValue(s.charAt(i));
    if (d < 0 || d >= radix) break;
    digits += s.charAt(i);
    i++;
  }
  // No digits: strtol returns 0 with end at the start, accepted only when that is the end.
  if (digits.length === 0) return s.length === 0 ? 0n : undefined;
  if (i !== s.length) return undefined;
  const v = bigOfDigits(digits, radix, negative);
  return v < LONG_MIN || v > LONG_MAX ? undefined : v;
}
/** Python's float() on the line (the pure-Python unpickler joblib uses): single underscores between digits allowed. */
export const FLOAT_RE =
  /^\s*[+-]?(?:(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)(?:[eE][+-]?[0-9](?:_?[0-9])*)?|inf|infinity|nan)\s*$/i;

export function isAscii(s: string): boolean {
  for (let k = 0; k < s.length; k++) if (s.charCodeAt(k) >= 0x80) return false;
  return true;
}

/** Python's raw-unicode-escape: only \uXXXX and \UXXXXXXXX are escapes; everything else is latin1. */
export function decodeRawUnicodeEscape(s: string, start: number, truncated: boolean): string {
  if (!s.includes("\\")) return s;
  let out = "";
  for (let k = 0; k < s.length; k++) {
    const c = s[k] as string;
    if (c === "\\" && (s[k + 1] === "u" || s[k + 1] === "U")) {
      // An odd run of backslashes before u/U starts an escape.
      let run = 0;
      for (let j = k - 1; j >= 0 && s[j] === "\\"; j--) run++;
      if (run % 2 === 0) {
        const width = s[k + 1] === "u" ? 4 : 8;
        const hex = s.slice(k + 2, k + 2 + width);
        if (hex.length < width && truncated) return out;
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length < width) malformed("UNICODE argument has a truncated \\u escape", start);
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff) malformed("UNICODE argument escapes a code point above U+10FFFF", start);
        out += String.fromCodePoint(cp);
        k += 1 + width;
        continue;
      }
    }
    out += c;
  }
  return out;
}

const SIMPLE_ESCAPES: Record<string, string> = { "\n": "", "\\": "\\", "'": "'", '"': '"', a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v" };

/** STRING: a Python 2 str repr, quoted, decoded like codecs.escape_decode. Malformed when it does not. */
export function decodeEscapedString(text: string, start: number): string {
  const q = text[0];
  if (text.length < 2 || (q !== "'" && q !== '"') || text[text.length - 1] !== q) {
    malformed("STRING argument is not a quoted string", start);
  }
  const body = text.slice(1, -1);
  if (!body.includes("\\")) return body;
  let out = "";
  for (let k = 0; k < body.length; k++) {
    const c = body[k] as string;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = body[k + 1];
    if (e === undefined) malformed("STRING argument ends with a backslash", start);
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out += simple;
      k += 1;
    } else if (e === "x") {
      const hex = body.slice(k + 2, k + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) malformed("STRING argument has an invalid \\x escape", start);
      out += String.fromCharCode(parseInt(hex, 16));
      k += 3;
    } else if (e >= "0" && e <= "7") {
      const oct = /^[0-7]{1,3}/.exec(body.slice(k + 1))?.[0] ?? e;
      out += String.fromCharCode(parseInt(oct, 8) & 0xff);
      k += oct.length;
    } else {
      out += `\\${e}`;
      k += 1;
    }
  }
  return out;
}
