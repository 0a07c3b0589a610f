import { GatewayError, type ErrorCode } from "../../errors";
import { MAX_PY_LITERAL_DEPTH, MAX_PY_LITERAL_NODES } from "../../limits";

/**
 * A parser for the subset of Python literals that `.npy` headers use (numpy/lib/format.py reads
 * them with `ast.literal_eval`): str (with escapes), int, bool, None, tuple, list, dict. No eval,
 * no floats, no sets, no comments, no implicit string concatenation: anything numpy never writes is
 * rejected, so what we accept is read the same way by Python. Depth and node count are bounded.
 */
export type PyLiteral =
  | { kind: "str"; value: string }
  | { kind: "int"; value: bigint }
  | { kind: "bool"; value: boolean }
  | { kind: "none" }
  | { kind: "tuple"; items: PyLiteral[] }
  | { kind: "list"; items: PyLiteral[] }
  | { kind: "dict"; entries: [PyLiteral, PyLiteral][] };

export interface PyLiteralOptions {
  /** Bracket nesting: stops deep recursion (a structured dtype nests a few levels at most). */
  maxDepth?: number;
  /** Values in the literal: stops memory/CPU exhaustion by huge headers of tiny items. */
  maxNodes?: number;
  /** Accept Python 2's `L` suffix on ints (numpy's `_filter_header` strips it for v1/v2 headers). */
  allowLongSuffix?: boolean;
  /** Code of structural errors; limits are always `limit_exceeded`. */
  errorCode?: ErrorCode;
}

type Token =
  | { t: "punct"; v: "(" | ")" | "[" | "]" | "{" | "}" | "," | ":" | "-" | "+"; at: number }
  | { t: "str"; v: string; at: number }
  | { t: "int"; v: bigint; at: number }
  | { t: "name"; v: "True" | "False" | "None"; at: number }
  | { t: "end"; at: number };

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\",
  "'": "'",
  '"': '"',
  n: "\n",
  t: "\t",
  r: "\r",
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "\n": "",
};

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}
function isIdentChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_]/.test(c);
}

class Tokenizer {
  private pos = 0;
  /** Open brackets: inside them newlines are whitespace (Python's implicit line joining). */
  bracketDepth = 0;

  constructor(
    private readonly text: string,
    private readonly options: Required<PyLiteralOptions>,
  ) {}

  fail(message: string, at: number): never {
    throw new GatewayError(this.options.errorCode, `python literal: ${message} at character ${at}`, { offset: at });
  }

  private skipSpace(): void {
    for (;;) {
      const c = this.text[this.pos];
      if (c === " " || c === "\t" || c === "\f") this.pos++;
      else if ((c === "\n" || c === "\r") && this.bracketDepth > 0) this.pos++;
      else return;
    }
  }

  /**
   * At the end only spaces then newlines may remain (numpy pads headers with spaces and one
   * newline). Python rejects an indented line after a newline ("1\n "), so do we.
   */
  atTrailingWhitespaceOnly(): boolean {
    return /^[ \t\f]*(\r?\n)*$/.test(this.text.slice(this.pos));
  }

  next(): Token {
    this.skipSpace();
    const at = this.pos;
    const c = this.text[at];
    if (c === undefined) return { t: "end", at };
    if (c === "\n" || c === "\r") return { t: "end", at };
    if ("()[]{},:-+".includes(c)) {
      this.pos++;
      return { t: "punct", v: c as "(" | ")" | "[" | "]" | "{" | "}" | "," | ":" | "-" | "+", at };
    }
    if (c === "'" || c === '"') return this.string(at, at);
    if ((c === "u" || c === "U") && (this.text[at + 1] === "'" || this.text[at + 1] === '"')) return this.string(at, at + 1);
    if (isDigit(c)) return this.integer(at);
    if (/[A-Za-z_]/.test(c)) {
      let end = at;
      while (isIdentChar(this.text[end])) end++;
      const word = this.text.slice(at, end);
      if (word !== "True" && word !== "False" && word !== "None") this.fail(`unsupported name ${JSON.stringify(word.slice(0, 32))}`, at);
      this.pos = end;
      return { t: "name", v: word, at };
    }
    return this.fail(`unexpected character ${JSON.stringify(c)}`, at);
  }

  private integer(at: number): Token {
    let end = at;
    while (isDigit(this.text[end])) end++;
    const digits = this.text.slice(at, end);
    // Python 3 forbids leading zeros ("007"); numpy never writes them, so "0" alone only.
    if (digits.length > 1 && digits.startsWith("0")) this.fail("integer with a leading zero", at);
    if (digits.length > 40) this.fail("integer literal longer than 40 digits", at);
    if (this.options.allowLongSuffix && this.text[end] === "L") end++;
    const after = this.text[end];
    // Floats, complex, hex, underscores, exponents: never in a header, rejected.
    if (isIdentChar(after) || after === ".") this.fail("unsupported number literal", at);
    this.pos = end;
    return { t: "int", v: BigInt(digits), at };
  }

  private string(at: number, quoteAt: number): Token {
    const quote = this.text[quoteAt] as string;
    if (this.text[quoteAt + 1] === quote && this.text[quoteAt + 2] === quote) this.fail("triple-quoted strings are not supported", at);
    let out = "";
    let p = quoteAt + 1;
    for (;;) {
      const c = this.text[p];
      if (c === undefined || c === "\n" || c === "\r") this.fail("unterminated string", at);
      if (c === quote) break;
      if (c !== "\\") {
        out += c;
        p++;
        continue;
      }
      const e = this.text[p + 1];
      if (e === undefined) this.fail("unterminated string", at);
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
        p += 2;
      } else if (e === "x" || e === "u" || e === "U") {
        const width = e === "x" ? 2 : e === "u" ? 4 : 8;
        const hex = this.text.slice(p + 2, p + 2 + width);
        if (hex.length !== width || !/^[0-9a-fA-F]+$/.test(hex)) this.fail(`bad \\${e} escape`, p);
        const code = parseInt(hex, 16);
        if (code > 0x10ffff) this.fail("escape beyond U+10FFFF", p);
        out += String.fromCodePoint(code);
        p += 2 + width;
      } else if (e >= "0" && e <= "7") {
        let q = p + 1;
        while (q < p + 4 && (this.text[q] ?? "") >= "0" && (this.text[q] ?? "") <= "7") q++;
        out += String.fromCodePoint(parseInt(this.text.slice(p + 1, q), 8));
        p = q;
      } else {
        // Python keeps unknown escapes literally (with a warning); we refuse to guess.
        this.fail(`unknown escape \\${e}`, p);
      }
    }
    this.pos = p + 1;
    return { t: "str", v: out, at };
  }
}

/** A hashable literal's identity, for duplicate-key detection (Python: True == 1, hash-equal). */
function keyOf(v: PyLiteral, fail: (m: string) => never): string {
  switch (v.kind) {
    case "str":
      return `s:${v.value}`;
    case "int":
      return `i:${v.value.toString()}`;
    case "bool":
      return v.value ? "i:1" : "i:0";
    case "none":
      return "n";
    case "tuple":
      return `t(${v.items.map((i) => keyOf(i, fail)).join(",")})`;
    default:
      return fail(`unhashable ${v.kind} used as a dict key`);
  }
}

class Parser {
  private tok: Token;
  private nodes = 0;

  constructor(
    private readonly lexer: Tokenizer,
    private readonly options: Required<PyLiteralOptions>,
  ) {
    this.tok = lexer.next();
  }

  private advance(): Token {
    const t = this.tok;
    this.tok = this.lexer.next();
    return t;
  }

  private isPunct(v: string): boolean {
    return this.tok.t === "punct" && this.tok.v === v;
  }

  private expectPunct(v: string): void {
    if (!this.isPunct(v)) this.lexer.fail(`expected '${v}'`, this.tok.at);
    this.advance();
  }

  private count(at: number): void {
    this.nodes++;
    if (this.nodes > this.options.maxNodes) {
      throw new GatewayError("limit_exceeded", `python literal: more than ${this.options.maxNodes} values`, { offset: at, limit: "maxNodes" });
    }
  }

  private open(v: "(" | "[" | "{", depth: number): void {
    if (depth >= this.options.maxDepth) {
      throw new GatewayError("limit_exceeded", `python literal: nesting deeper than ${this.options.maxDepth}`, { offset: this.tok.at, limit: "maxDepth" });
    }
    if (!this.isPunct(v)) this.lexer.fail(`expected '${v}'`, this.tok.at);
    // Increment before lexing the next token: inside brackets newlines are whitespace.
    this.lexer.bracketDepth++;
    this.advance();
  }

  private close(v: ")" | "]" | "}"): void {
    // Decrement before consuming so the token after the bracket is lexed at the right depth.
    this.lexer.bracketDepth--;
    this.expectPunct(v);
  }

  parseTop(): PyLiteral {
    const value = this.value(0);
    if (this.tok.t !== "end" || !this.lexer.atTrailingWhitespaceOnly()) this.lexer.fail("unexpected data after the literal", this.tok.at);
    return value;
  }

  private value(depth: number): PyLiteral {
    const tok = this.tok;
    this.count(tok.at);
    switch (tok.t) {
      case "str":
        this.advance();
        if (this.tok.t === "str") this.lexer.fail("implicit string concatenation is not supported", this.tok.at);
        return { kind: "str", value: tok.v };
      case "int":
        this.advance();
        return { kind: "int", value: tok.v };
      case "name":
        this.advance();
        return tok.v === "None" ? { kind: "none" } : { kind: "bool", value: tok.v === "True" };
      case "end":
        return this.lexer.fail("unexpected end of literal", tok.at);
      case "punct":
        break;
    }
    switch (tok.v) {
      case "-":
      case "+": {
        this.advance();
        // ast.literal_eval accepts one sign on a number literal, nothing else.
        const n = this.tok;
        if (n.t !== "int") return this.lexer.fail("a sign must be followed by an integer", n.at);
        this.advance();
        return { kind: "int", value: tok.v === "-" ? -n.v : n.v };
      }
      case "(":
        return this.tupleOrGroup(depth);
      case "[": {
        this.open("[", depth);
        const items = this.sequence("]", depth);
        this.close("]");
        return { kind: "list", items };
      }
      case "{":
        return this.dict(depth);
      default:
        return this.lexer.fail(`unexpected '${tok.v}'`, tok.at);
    }
  }

  /** Items up to (not consuming) `closer`, with an optional trailing comma. */
  private sequence(closer: string, depth: number): PyLiteral[] {
    const items: PyLiteral[] = [];
    while (!this.isPunct(closer)) {
      items.push(this.value(depth + 1));
      if (this.isPunct(",")) this.advance();
      else if (!this.isPunct(closer)) this.lexer.fail(`expected ',' or '${closer}'`, this.tok.at);
    }
    return items;
  }

  /** `()` is a tuple, `(x,)` and `(x, y)` are tuples, but `(x)` is just x (Python grouping). */
  private tupleOrGroup(depth: number): PyLiteral {
    this.open("(", depth);
    if (this.isPunct(")")) {
      this.close(")");
      return { kind: "tuple", items: [] };
    }
    const first = this.value(depth + 1);
    if (this.isPunct(")")) {
      this.close(")");
      return first;
    }
    this.expectPunct(",");
    const items = [first, ...this.sequence(")", depth)];
    this.close(")");
    return { kind: "tuple", items };
  }

  private dict(depth: number): PyLiteral {
    this.open("{", depth);
    const entries: [PyLiteral, PyLiteral][] = [];
    const seen = new Set<string>();
    while (!this.isPunct("}")) {
      const keyAt = this.tok.at;
      const key = this.value(depth + 1);
      if (!this.isPunct(":")) this.lexer.fail("expected ':' (set literals are not supported)", this.tok.at);
      this.advance();
      const value = this.value(depth + 1);
      const id = keyOf(key, (m) => this.lexer.fail(m, keyAt));
      // Python keeps the last duplicate silently; two readings of one header is an ambiguity: refuse.
      if (seen.has(id)) this.lexer.fail("duplicate dict key", keyAt);
      seen.add(id);
      entries.push([key, value]);
      if (this.isPunct(",")) this.advance();
      else if (!this.isPunct("}")) this.lexer.fail("expected ',' or '}'", this.tok.at);
    }
    this.close("}");
    return { kind: "dict", entries };
  }
}

/**
 * Parse one Python literal. Leading spaces/tabs are allowed (ast.literal_eval strips them),
 * trailing whitespace too. Throws GatewayError: `options.errorCode` (default
 * `malformed_container`) on bad syntax, `limit_exceeded` past a bound.
 */
export function parsePyLiteral(text: string, options: PyLiteralOptions = {}): PyLiteral {
  const opts: Required<PyLiteralOptions> = {
    maxDepth: options.maxDepth ?? MAX_PY_LITERAL_DEPTH,
    maxNodes: options.maxNodes ?? MAX_PY_LITERAL_NODES,
    allowLongSuffix: options.allowLongSuffix ?? false,
    errorCode: options.errorCode ?? "malformed_container",
  };
  return new Parser(new Tokenizer(text, opts), opts).parseTop();
}

/** The value of a dict literal's str key, or undefined. */
export function dictGet(dict: Extract<PyLiteral, { kind: "dict" }>, key: string): PyLiteral | undefined {
  for (const [k, v] of dict.entries) if (k.kind === "str" && k.value === key) return v;
  return undefined;
}

/** Python-like rendering for reports (repr of the subset). */
export function renderPyLiteral(v: PyLiteral): string {
  switch (v.kind) {
    case "str":
      return `'${v.value.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n").replace(/\r/g, "\\r")}'`;
    case "int":
      return v.value.toString();
    case "bool":
      return v.value ? "True" : "False";
    case "none":
      return "None";
    case "tuple":
      return v.items.length === 1 ? `(${renderPyLiteral(v.items[0] as PyLiteral)},)` : `(${v.items.map(renderPyLiteral).join(", ")})`;
    case "list":
      return `[${v.items.map(renderPyLiteral).join(", ")}]`;
    case "dict":
      return `{${v.entries.map(([k, x]) => `${renderPyLiteral(k)}: ${renderPyLiteral(x)}`).join(", ")}}`;
  }
}
