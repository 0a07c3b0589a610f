import type { Cursor } from "../bytes/cursor";
import type { ByteSource } from "../bytes/source";
import { GatewayError } from "../errors";
import { HIGHEST_PROTOCOL, OP, opcodeInfo, opcodeName } from "./opcodes";
import { cString, cStrtol0, decodeEscapedString, decodeRawUnicodeEscape, FLOAT_RE, isAscii, pyLongFromString } from "./textDecoders";

/**
 * The pickle reader (PickleReader; disassemble() lists what it reads): bytes -> opcodes with decoded arguments, one at a time, without allocating
 * per opcode on the hot path (the decoded argument lives in the reader's fields until the next
 * call). It reads positional windows of the ByteSource directly, so a multi-gigabyte pickle costs
 * one window of memory, and it never allocates for a length it has not checked against the bytes
 * that remain.
 *
 * Framing follows CPython's pure-Python `_Unframer` strictly, which is the stricter of CPython's
 * two unpicklers: an opcode (with its argument) that crosses the end of the current FRAME, a
 * FRAME that starts before the previous one ended, a frame longer than the bytes that remain, and
 * a frame that extends past STOP are all malformed. CPython's C unpickler and pickletools ignore
 * frame boundaries, and that disagreement is what the FRAME-straddle bypass hides payloads in.
 */

const WINDOW = 1024 * 1024;
/** The longest fixed part of an opcode: the opcode byte and an 8-byte argument. */
const MAX_FIXED = 9;

const utf8Strict = new TextDecoder("utf-8", { fatal: true });
const utf8Lenient = new TextDecoder("utf-8", { fatal: false });

/** Buffer's native latin1 decoder without toString's encoding dispatch (hot path). */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: (this: Buffer, start: number, end: number) => string }).latin1Slice;
function latin1(b: Buffer, start: number, end: number): string {
  return latin1Slice !== undefined ? latin1Slice.call(b, start, end) : b.toString("latin1", start, end);
}

function malformed(message: string, offset: number): never {
  throw new GatewayError("malformed_pickle", `${message} at offset ${offset.toString()}`, { offset });
}

export class PickleReader {
  private buf: Buffer;
  private view: DataView;
  /** Absolute offset of buf[0] and number of valid bytes in buf. */
  private bufStart = 0;
  private bufLen = 0;
  /** Absolute position of the next opcode. */
  pos: number;
  readonly end: number;
  /** Absolute end of the current FRAME, or -1 outside a frame. */
  frameEnd = -1;
  /**
   * Read frames as CPython's C unpickler does (pickle.load, torch.load): boundaries are not
   * enforced, only the declared length must be present. For sniffing what the C loader would run;
   * inspections keep the strict default.
   */
  ignoreFrameBounds = false;

  // ---- the last opcode and its decoded argument --------------------------------------------
  offset = 0;
  opcode = 0;
  /** uint/int arguments, memo indices, PROTO, FRAME length, EXT code; string/bytes argument length. */
  num = 0;
  /** LONG/LONG1/LONG4/INT value (INT only when it does not fit a safe integer), undefined when too long to keep. */
  big: bigint | undefined = undefined;
  /** True when `num` holds the INT/LONG value, false when `big` does. */
  small = true;
  float = 0;
  /** Decoded text argument (strings; module for GLOBAL/INST); `truncated` when only a prefix was kept. */
  str = "";
  /** Second line of GLOBAL/INST (the qualified name). */
  str2 = "";
  truncated = false;
  /** Retained bytes of a bytes argument (undefined when longer than maxRetained). */
  bytes: Uint8Array | undefined = undefined;

  constructor(
    readonly source: ByteSource,
    start: number,
    end: number,
    private readonly maxRetained: number,
    /** Read window; it grows when one argument needs more. Default: 1 MiB (or the whole range when smaller). */
    windowSize?: number,
  ) {
    this.pos = start;
    this.end = end;
    const size = windowSize ?? Math.min(WINDOW, Math.max(end - start, maxRetained + MAX_FIXED));
    this.buf = Buffer.allocUnsafe(Math.max(64, size));
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.bufStart = start;
  }

  static ofCursor(cursor: Cursor, maxRetained: number): PickleReader {
    return new PickleReader(cursor.source, cursor.position, cursor.end, maxRetained);
  }

  /** Continue reading at an absolute position (after a callback consumed raw bytes). */
  seek(position: number): void {
    this.pos = position;
  }

  /** Load at least `n` bytes starting at absolute `at` into the window (n <= end - at checked by callers). */
  private load(at: number, n: number): number {
    if (at >= this.bufStart && at + n <= this.bufStart + this.bufLen) return at - this.bufStart;
    if (n > this.buf.length) {
      this.buf = Buffer.allocUnsafe(n);
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    }
    const want = Math.min(this.buf.length, this.end - at);
    const got = this.source.readAt(want === this.buf.length ? this.buf : this.buf.subarray(0, want), at);
    this.bufStart = at;
    this.bufLen = got;
    if (got < n) malformed(`source ended early: needed ${n.toString()} bytes, read ${got.toString()}`, at);
    return 0;
  }

  private truncatedArg(start: number, n: number): never {
    malformed(`truncated ${opcodeName(this.opcode)}: needs ${n.toString()} bytes, ${(this.end - start).toString()} remain`, start);
  }

  /**
   * Read the next opcode and decode its argument into the reader's fields; returns the opcode byte.
   * Throws GatewayError("malformed_pickle") for an unknown opcode, a truncated argument, a length
   * beyond the end, a text argument that does not decode, or a framing violation.
   */
  next(): number {
    const start = this.pos;
    if (start >= this.end) malformed("pickle ends without STOP", start);
    if (this.frameEnd >= 0 && start >= this.frameEnd) this.frameEnd = -1;
    let i = start - this.bufStart;
    if (i < 0 || start + MAX_FIXED > this.bufStart + this.bufLen) i = this.load(start, Math.min(MAX_FIXED, this.end - start));
    const b = this.buf;
    const op = b[i] as number;
    // Literal case labels (named in comments) make this switch a jump table.
    this.offset = start;
    this.opcode = op;
    switch (op) {
      case 0x28 /* MARK */:
      case 0x2e /* STOP */:
      case 0x30 /* POP */:
      case 0x31 /* POP_MARK */:
      case 0x32 /* DUP */:
      case 0x4e /* NONE */:
      case 0x51 /* BINPERSID */:
      case 0x52 /* REDUCE */:
      case 0x61 /* APPEND */:
      case 0x62 /* BUILD */:
      case 0x64 /* DICT */:
      case 0x7d /* EMPTY_DICT */:
      case 0x65 /* APPENDS */:
      case 0x6c /* LIST */:
      case 0x5d /* EMPTY_LIST */:
      case 0x6f /* OBJ */:
      case 0x73 /* SETITEM */:
      case 0x74 /* TUPLE */:
      case 0x29 /* EMPTY_TUPLE */:
      case 0x75 /* SETITEMS */:
      case 0x81 /* NEWOBJ */:
      case 0x85 /* TUPLE1 */:
      case 0x86 /* TUPLE2 */:
      case 0x87 /* TUPLE3 */:
      case 0x88 /* NEWTRUE */:
      case 0x89 /* NEWFALSE */:
      case 0x8f /* EMPTY_SET */:
      case 0x90 /* ADDITEMS */:
      case 0x91 /* FROZENSET */:
      case 0x92 /* NEWOBJ_EX */:
      case 0x93 /* STACK_GLOBAL */:
      case 0x94 /* MEMOIZE */:
      case 0x97 /* NEXT_BUFFER */:
      case 0x98 /* READONLY_BUFFER */:
        this.pos = start + 1;
        break;
      case 0x4b /* BININT1 */:
      case 0x68 /* BINGET */:
      case 0x71 /* BINPUT */:
      case 0x82 /* EXT1 */:
        if (start + 2 > this.end) this.truncatedArg(start, 2);
        this.num = b[i + 1] as number;
        this.pos = start + 2;
        break;
      case 0x80 /* PROTO */: {
        if (start + 2 > this.end) this.truncatedArg(start, 2);
        const p = b[i + 1] as number;
        // CPython: "unsupported pickle protocol" for anything above HIGHEST_PROTOCOL.
        if (p > HIGHEST_PROTOCOL) malformed(`unsupported pickle protocol ${p.toString()}`, start);
        this.num = p;
        this.pos = start + 2;
        break;
      }
      case 0x4d /* BININT2 */:
      case 0x83 /* EXT2 */:
        if (start + 3 > this.end) this.truncatedArg(start, 3);
        this.num = (b[i + 1] as number) | ((b[i + 2] as number) << 8);
        this.pos = start + 3;
        break;
      case 0x4a /* BININT */:
      case 0x84 /* EXT4 */:
        if (start + 5 > this.end) this.truncatedArg(start, 5);
        this.num = (b[i + 1] as number) | ((b[i + 2] as number) << 8) | ((b[i + 3] as number) << 16) | ((b[i + 4] as number) << 24);
        this.pos = start + 5;
        break;
      case 0x6a /* LONG_BINGET */:
      case 0x72 /* LONG_BINPUT */:
        if (start + 5 > this.end) this.truncatedArg(start, 5);
        this.num = ((b[i + 1] as number) | ((b[i + 2] as number) << 8) | ((b[i + 3] as number) << 16) | ((b[i + 4] as number) << 24)) >>> 0;
        this.pos = start + 5;
        break;
      case 0x47 /* BINFLOAT */:
        if (start + 9 > this.end) this.truncatedArg(start, 9);
        this.float = this.view.getFloat64(i + 1, false);
        this.pos = start + 9;
        break;
      case 0x95 /* FRAME */: {
        if (start + 9 > this.end) this.truncatedArg(start, 9);
        // A FRAME that starts while the previous frame still has bytes: CPython's _Unframer raises.
        if (this.frameEnd > start) malformed("FRAME starts before the previous frame ends", start);
        const len = this.u64(i + 1, start);
        if (len > this.end - (start + 9)) {
          malformed(`FRAME declares ${len.toString()} bytes, ${(this.end - start - 9).toString()} remain`, start);
        }
        this.num = len;
        this.pos = start + 9;
        if (!this.ignoreFrameBounds) this.frameEnd = start + 9 + len;
        return op; // the FRAME opcode itself precedes its frame
      }
      case 0x55 /* SHORT_BINSTRING */:
      case 0x43 /* SHORT_BINBYTES */:
      case 0x8c /* SHORT_BINUNICODE */:
        if (start + 2 > this.end) this.truncatedArg(start, 2);
        this.sized(op, start + 2, b[i + 1] as number);
        break;
      case 0x54 /* BINSTRING */: {
        if (start + 5 > this.end) this.truncatedArg(start, 5);
        const n = (b[i + 1] as number) | ((b[i + 2] as number) << 8) | ((b[i + 3] as number) << 16) | ((b[i + 4] as number) << 24);
        if (n < 0) malformed("BINSTRING has a negative byte count", start);
        this.sized(op, start + 5, n);
        break;
      }
      case 0x42 /* BINBYTES */:
      case 0x58 /* BINUNICODE */:
        if (start + 5 > this.end) this.truncatedArg(start, 5);
        this.sized(op, start + 5, ((b[i + 1] as number) | ((b[i + 2] as number) << 8) | ((b[i + 3] as number) << 16) | ((b[i + 4] as number) << 24)) >>> 0);
        break;
      case 0x8d /* BINUNICODE8 */:
      case 0x8e /* BINBYTES8 */:
      case 0x96 /* BYTEARRAY8 */:
        if (start + 9 > this.end) this.truncatedArg(start, 9);
        this.sized(op, start + 9, this.u64(i + 1, start));
        break;
      case 0x8a /* LONG1 */:
        if (start + 2 > this.end) this.truncatedArg(start, 2);
        this.long(start + 2, b[i + 1] as number);
        break;
      case 0x8b /* LONG4 */: {
        if (start + 5 > this.end) this.truncatedArg(start, 5);
        const n = (b[i + 1] as number) | ((b[i + 2] as number) << 8) | ((b[i + 3] as number) << 16) | ((b[i + 4] as number) << 24);
        if (n < 0) malformed("LONG4 has a negative byte count", start);
        this.long(start + 5, n);
        break;
      }
      case 0x49 /* INT */:
      case 0x67 /* GET */:
      case 0x70 /* PUT */:
        this.decimal(op, start);
        break;
      case 0x4c /* LONG */:
        this.longText(start);
        break;
      case 0x46 /* FLOAT */: {
        const text = cString(this.textLine(start + 1, "FLOAT"));
        if (!FLOAT_RE.test(text)) malformed("FLOAT argument is not a float", start);
        this.float = Number(
          text
            .trim()
            .replace(/_/g, "")
            .toLowerCase()
            .replace(/^([+-]?)inf(inity)?$/, "$1Infinity")
            .replace(/^[+-]?nan$/, "NaN"),
        );
        break;
      }
      case 0x53 /* STRING */:
        this.str = decodeEscapedString(this.textLine(start + 1, "STRING"), start);
        this.truncated = false;
        break;
      case 0x56 /* UNICODE */:
        this.unicodeLine(start);
        break;
      case 0x50 /* PERSID */: {
        const text = this.textLine(start + 1, "PERSID");
        // The C unpickler decodes the persistent id as strict ASCII.
        if (!isAscii(text)) malformed("PERSID argument is not ASCII", start);
        this.str = text;
        this.truncated = false;
        break;
      }
      case 0x63 /* GLOBAL */:
      case 0x69 /* INST */: {
        const what = opcodeName(op);
        const first = this.lineEnd(start + 1, this.maxRetained, what);
        this.str = this.utf8(start + 1, first - (start + 1), start, what);
        const second = this.lineEnd(first + 1, this.maxRetained, what);
        this.str2 = this.utf8(first + 1, second - (first + 1), start, what);
        this.truncated = false;
        this.pos = second + 1;
        break;
      }
      default:
        malformed(`unknown opcode ${opcodeName(op)}`, start);
    }
    // An opcode that crosses the end of the current frame: CPython's _Unframer raises
    // "pickle exhausted before end of frame"; the C unpickler reads on. Malformed either way.
    if (this.frameEnd > start && this.pos > this.frameEnd) {
      malformed(`${opcodeName(op)} crosses the end of its FRAME at ${this.frameEnd.toString()}`, start);
    }
    return op;
  }

  private u64(i: number, start: number): number {
    const b = this.buf;
    const lo = ((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24)) >>> 0;
    const hi = ((b[i + 4] as number) | ((b[i + 5] as number) << 8) | ((b[i + 6] as number) << 16) | ((b[i + 7] as number) << 24)) >>> 0;
    if (hi > 0x1fffff) malformed("8-byte length exceeds any real file", start);
    return hi * 0x100000000 + lo;
  }

  /** A length-prefixed string/bytes argument starting at `at` with `n` bytes. */
  private sized(op: number, at: number, n: number): void {
    if (n > this.end - at) {
      malformed(`${opcodeName(op)} declares ${n.toString()} bytes, ${(this.end - at).toString()} remain`, this.offset);
    }
    this.num = n;
    this.pos = at + n;
    const keep = n <= this.maxRetained ? n : this.maxRetained;
    this.truncated = keep < n;
    const i = this.load(at, keep);
    const b = this.buf;
    switch (op) {
      case 0x8c /* SHORT_BINUNICODE */:
      case 0x58 /* BINUNICODE */:
      case 0x8d /* BINUNICODE8 */: {
        let ascii = true;
        for (let k = i; k < i + keep; k++) {
          if ((b[k] as number) >= 0x80) {
            ascii = false;
            break;
          }
        }
        if (ascii) this.str = latin1(b, i, i + keep);
        else if (this.truncated) this.str = utf8Lenient.decode(b.subarray(i, i + keep));
        else {
          try {
            this.str = utf8Strict.decode(b.subarray(i, i + keep));
          } catch {
            malformed(`${opcodeName(op)} argument is not valid UTF-8`, this.offset);
          }
        }
        break;
      }
      case 0x55 /* SHORT_BINSTRING */:
      case 0x54 /* BINSTRING */:
        // Python 2 str: decoded by the unpickler's `encoding` (ASCII by default, latin1 for numpy).
        this.str = latin1(b, i, i + keep);
        break;
      default:
        // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
        this.bytes = this.truncated ? undefined : Uint8Array.prototype.slice.call(b, i, i + keep);
    }
  }

  /** LONG1/LONG4: n bytes of little-endian two's complement. */
  private long(at: number, n: number): void {
    if (n > this.end - at) {
      malformed(`${opcodeName(this.opcode)} declares ${n.toString()} bytes, ${(this.end - at).toString()} remain`, this.offset);
    }
    this.pos = at + n;
    this.small = false;
    if (n > 1024) {
      this.big = undefined;
      return;
    }
    const i = this.load(at, n);
    const b = this.buf;
    let v = 0n;
    for (let k = n - 1; k >= 0; k--) v = (v << 8n) | BigInt(b[i + k] as number);
    if (n > 0 && ((b[i + n - 1] as number) & 0x80) !== 0) v -= 1n << BigInt(8 * n);
    this.big = v;
  }

  /** Absolute position of the `\n` ending the line that starts at `at`; malformed if longer than maxLength or unterminated. */
  private lineEnd(at: number, maxLength: number, what: string): number {
    let scan = at;
    for (;;) {
      if (scan >= this.end) malformed(`truncated ${what}: no newline before the end`, this.offset);
      const i =
        scan >= this.bufStart && scan < this.bufStart + this.bufLen ? scan - this.bufStart : this.load(scan, Math.min(this.end - scan, this.buf.length));
      const j = this.buf.indexOf(0x0a, i);
      if (j >= 0 && j < this.bufLen) {
        const nl = this.bufStart + j;
        if (nl - at > maxLength) malformed(`${what} argument longer than ${maxLength.toString()} bytes`, this.offset);
        return nl;
      }
      scan = this.bufStart + this.bufLen;
      if (scan - at > maxLength) malformed(`${what} argument longer than ${maxLength.toString()} bytes`, this.offset);
    }
  }

  private utf8(at: number, n: number, start: number, what: string): string {
    const i = this.load(at, n);
    try {
      return utf8Strict.decode(this.buf.subarray(i, i + n));
    } catch {
      return malformed(`${what} argument is not valid UTF-8`, start);
    }
  }

  /** A protocol 0 text argument whose semantics need the whole line (numbers, escapes), bounded by maxRetained. */
  private textLine(at: number, what: string): string {
    const nl = this.lineEnd(at, this.maxRetained, what);
    const i = this.load(at, nl - at);
    this.pos = nl + 1;
    return latin1(this.buf, i, i + (nl - at));
  }

  /**
   * INT, GET, PUT exactly as CPython's C unpickler reads them: INT by strtol(base 0) then
   * PyLong_FromString(base 0) ("0100" is 64, "0x10" 16, "1_0" 10; a 2-character line holding
   * 0 or 1 is a bool), GET/PUT by PyLong_FromString(base 10) (" 10", "+10", "1_0" are 10), each
   * on the line up to its first NUL. A memo index read differently from the loader would make
   * the scan follow other objects than the load.
   */
  private decimal(op: number, start: number): void {
    const what = opcodeName(op);
    const line = this.textLine(start + 1, what);
    if (line.length === 0) malformed(`${what} argument is empty`, start);
    const s = cString(line);
    this.str = "";
    let value: bigint | undefined;
    if (op === OP.INT) {
      const viaStrtol = cStrtol0(s);
      if (viaStrtol !== undefined && line.length === 2 && (viaStrtol === 0n || viaStrtol === 1n)) {
        // Protocol 0 spells bools as INT 00 / 01 (any 2-character line the C unpickler reads as 0 or 1).
        this.small = true;
        this.num = Number(viaStrtol);
        this.str = "bool";
        return;
      }
      value = viaStrtol ?? pyLongFromString(s, 0);
    } else value = pyLongFromString(s, 10);
    if (value === undefined) malformed(`${what} argument is not an integer`, start);
    this.setInteger(value);
    if (op !== OP.INT && !(this.small && this.num >= 0)) malformed(`${what} memo index ${line.slice(0, 40)} is out of range`, start);
  }

  private setInteger(value: bigint): void {
    if (value >= -BigInt(Number.MAX_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
      this.small = true;
      this.num = Number(value);
    } else {
      this.small = false;
      this.big = value;
      this.num = Number.NaN;
    }
  }

  /** LONG: one trailing "L" dropped, then PyLong_FromString(base 0) on the line up to its first NUL ("010L" is an error, "0x10L" 16). */
  private longText(start: number): void {
    const line = this.textLine(start + 1, "LONG");
    if (line.length === 0) malformed("LONG argument is empty", start);
    const value = pyLongFromString(cString(line.endsWith("L") ? line.slice(0, -1) : line), 0);
    if (value === undefined) malformed("LONG argument is not an integer", start);
    this.small = false;
    this.big = value;
  }

  /** UNICODE: raw-unicode-escape text; lines can be long (protocol 0 numpy data), keep a prefix. */
  private unicodeLine(start: number): void {
    const nl = this.lineEnd(start + 1, Number.MAX_SAFE_INTEGER, "UNICODE");
    const n = nl - (start + 1);
    const keep = Math.min(n, this.maxRetained);
    const i = this.load(start + 1, keep);
    this.truncated = keep < n;
    this.str = decodeRawUnicodeEscape(latin1(this.buf, i, i + keep), start, this.truncated);
    this.num = n;
    this.pos = nl + 1;
  }
}

export type OpArgument = number | bigint | string | boolean | null | readonly [string, string] | { length: number; truncated: boolean; text?: string };

export interface DisassembledOp {
  offset: number;
  name: string;
  arg: OpArgument;
}

/**
 * The opcodes of the pickle at the cursor, up to and including the first STOP (or `maxOps`).
 * For tests, tools and reports; throws GatewayError("malformed_pickle") where the bytes break.
 * The cursor is left after the last opcode read.
 */
export function disassemble(cursor: Cursor, options: { maxOps?: number; maxRetained?: number } = {}): DisassembledOp[] {
  const reader = PickleReader.ofCursor(cursor, options.maxRetained ?? 64 * 1024);
  const ops: DisassembledOp[] = [];
  const maxOps = options.maxOps ?? 1_000_000;
  try {
    while (ops.length < maxOps) {
      const op = reader.next();
      ops.push({ offset: reader.offset, name: opcodeName(op), arg: argumentOf(reader, op) });
      if (op === OP.STOP) break;
    }
  } finally {
    cursor.seek(Math.min(reader.pos, cursor.end));
  }
  return ops;
}

function argumentOf(r: PickleReader, op: number): OpArgument {
  const kind = opcodeInfo(op)?.arg ?? "none";
  switch (kind) {
    case "none":
      return null;
    case "uint1":
    case "uint2":
    case "int4":
    case "uint4":
    case "uint8":
      return r.num;
    case "float8":
    case "floatnl":
      return r.float;
    case "long1":
    case "long4":
    case "decimalnl_long":
      return r.big ?? null;
    case "decimalnl_short":
      if (r.str === "bool") return r.num === 1;
      return r.small ? r.num : (r.big ?? null);
    case "stringnl_noescape_pair":
      return [r.str, r.str2] as const;
    case "bytes1":
    case "bytes4":
    case "bytes8":
    case "bytearray8":
      return { length: r.num, truncated: r.truncated };
    case "string1":
    case "string4":
    case "unicodestring1":
    case "unicodestring4":
    case "unicodestring8":
    case "unicodestringnl":
      return r.truncated ? { length: r.num, truncated: true, text: r.str } : r.str;
    case "stringnl":
    case "stringnl_noescape":
      return r.str;
  }
}
