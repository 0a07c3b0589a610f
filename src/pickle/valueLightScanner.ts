import type { ByteSource } from "../bytes/source";
import { MAX_SCANNER_DISTINCT, MAX_SCANNER_MEMO_INDEX, MAX_SCANNER_PREALLOCATED, type PickleLimits } from "../limits";
import { PickleReader } from "./pickleReader";
import { limitMessage } from "./machine";
import { isDtypeMakingCallable } from "./numpyDtype";
import { HIGHEST_PROTOCOL, OP } from "./opcodes";

/**
 * The value-light scanner: an accelerator for the symbolic machine on streams whose consumer
 * needs no values (no onBuild / onPersistentId hook, `values` unread). It is not a second
 * analyzer. It proves, for the common shape of a data pickle, that a stream does nothing but
 * data and the imports and calls it lists; whenever anything else happens (any malformed
 * structure, an EXT or persistent id, a call whose callable is not an import, module state
 * mutated, a BUILD on an object made by numpy.dtype or copyreg._reconstructor (the analyzer checks
 * every dtype state, see numpyDtype.ts), a STACK_GLOBAL whose operands are not string constants,
 * a rare or protocol 0 text opcode) it gives up (`BAIL`) and the analyzer runs the full machine on
 * the whole stream from its start, which then produces every finding exactly as before.
 *
 * A PickleLimits bound reached on an opcode handled here is reported at once (`LIMIT`, with the
 * machine's own message, offset and opcode count): the machine, run on the same prefix, would stop
 * at the same opcode with the same finding, and re-running it on a stream built to reach a limit
 * (a memo flood, a deep stack) is what cost gigabytes (README "Memory of one inspection").
 *
 * What it keeps per value is one int32 ("tag"), on a typed-array stack and a paged memo:
 *   tag >= 1        a str, 1 + the offset (from the stream's start) of the opcode that wrote it (decoded again only when
 *                   STACK_GLOBAL consumes it);
 *   tag === OTHER   anything else the machine would not use for an import or call: numbers,
 *                   bytes, containers, truncated strings (no opcode reads items back out of a
 *                   container, so their contents cannot reach STACK_GLOBAL or a call);
 *   tag <= -2       an import (even: -2 - 2*g) or an object built by calling import g (odd).
 * The str / import / object / other distinction is exactly the one the machine's events depend
 * on: the machine's memo placeholders (`lightweight`) only ever turn containers into unknown,
 * which both sides treat as "not a callable import, not a string".
 *
 * Every check of the reader (framing, truncation, declared lengths, strict UTF-8 of unicode
 * arguments, protocol) and of the machine (underflow, marks, memo, limits) is done on the opcodes
 * handled here; a violation is a bail, never a skip.
 */

/**
 * The opcodes the scanner handles itself (the cases of chunk()'s switch); any other opcode (the
 * protocol 0/1 text opcodes, PUT/GET, PERSID/BINPERSID, EXT1/2/4, INST, OBJ, unknown bytes) is a
 * BAIL to the full machine. The differential test (test/pickle/valueLightScanner.test.ts) runs one
 * stream per opcode of this set (finished here, same report as the machine) and one per opcode
 * outside it (handed back).
 */
export const VALUE_LIGHT_OPCODES: ReadonlySet<number> = new Set<number>([
  OP.MARK,
  OP.STOP,
  OP.BININT1,
  OP.BININT2,
  OP.BININT,
  OP.BINFLOAT,
  OP.NONE,
  OP.NEWTRUE,
  OP.NEWFALSE,
  OP.EMPTY_DICT,
  OP.EMPTY_LIST,
  OP.EMPTY_TUPLE,
  OP.EMPTY_SET,
  OP.NEXT_BUFFER,
  OP.SHORT_BINUNICODE,
  OP.BINUNICODE,
  OP.BINUNICODE8,
  OP.SHORT_BINSTRING,
  OP.BINSTRING,
  OP.SHORT_BINBYTES,
  OP.BINBYTES,
  OP.BINBYTES8,
  OP.BYTEARRAY8,
  OP.BINGET,
  OP.LONG_BINGET,
  OP.BINPUT,
  OP.LONG_BINPUT,
  OP.MEMOIZE,
  OP.SETITEM,
  OP.APPEND,
  OP.SETITEMS,
  OP.APPENDS,
  OP.ADDITEMS,
  OP.TUPLE,
  OP.LIST,
  OP.FROZENSET,
  OP.DICT,
  OP.POP_MARK,
  OP.TUPLE1,
  OP.TUPLE2,
  OP.TUPLE3,
  OP.REDUCE,
  OP.NEWOBJ,
  OP.NEWOBJ_EX,
  OP.BUILD,
  OP.STACK_GLOBAL,
  OP.GLOBAL,
  OP.LONG1,
  OP.LONG4,
  OP.POP,
  OP.DUP,
  OP.READONLY_BUFFER,
  OP.PROTO,
  OP.FRAME,
]);

/** Returned by run() when the full machine must analyze the stream. */
export const BAIL = -1;
/** Returned by chunk() when it stopped at its opcode budget. */
const CONTINUE = -2;
/** Returned by run() when a PickleLimits bound was reached: `limitMessage` / `limitOffset` say which, where. */
export const LIMIT = -3;

const OTHER = -1;
/** Memo slot never written (no value has tag 0: a fresh Int32Array is all empty). */
const EMPTY = 0;
/** The memo is paged (no copying as it grows, nothing allocated for indices never written). */
const PAGE_BITS = 14;
const PAGE_MASK = (1 << PAGE_BITS) - 1;
/** The page every memo slot reads as until written: all EMPTY, never written. */
const ZERO_PAGE = new Int32Array(1 << PAGE_BITS);
/** Streams longer than this keep offsets that do not fit a tag: the full machine takes them. */
const MAX_STREAM_BYTES = 0x7ffffff0;

const WINDOW = 1024 * 1024;

/** Call opcodes, by slot (calls are counted per import and opcode). */
const CALL_OPS = [0x52 /* REDUCE */, 0x81 /* NEWOBJ */, 0x92 /* NEWOBJ_EX */, 0x62 /* BUILD */];

/** Whether a tag is an import (not an object built from one). */
function isImport(tag: number): boolean {
  return tag <= -2 && (-tag & 1) === 0;
}

export interface ScannedImport {
  module: string;
  name: string;
  opcode: number;
  offset: number;
}

export interface ScannedCall {
  opcode: number;
  module: string;
  name: string;
  offset: number;
  count: number;
}

export class ValueLightScanner {
  private buf: Buffer;
  private bufStart = 0;
  private bufLen = 0;
  private stack: Int32Array;
  private marks: Int32Array;
  private memo: Int32Array[] = new Array<Int32Array>(MAX_SCANNER_MEMO_INDEX >>> PAGE_BITS).fill(ZERO_PAGE);
  private memoHigh = 0;
  /** The scan state between chunks. */
  private readonly s = {
    start: 0,
    pos: 0,
    maxDecoded: 0,
    opsBefore: 0,
    memoCount: 0,
    memoHigh: 0,
    sp: 0,
    md: 0,
    fence: 0,
    ops: 0,
    decoded: 0,
    frameEnd: -1,
    stopAt: 0,
    checkAt: 0,
  };
  private side: PickleReader | undefined = undefined;
  /** Imports of the stream: module and name by id. */
  private globalModules: string[] = [];
  private globalNames: string[] = [];
  /**
   * Per import id: a BUILD on an object it made needs the full machine: the caller's onBuild hook
   * reads it, or it may be a numpy dtype, whose state the analyzer checks (numpyDtype.ts).
   */
  private buildHooked: boolean[] = [];
  private globalIds = new Map<string, number>();
  private callCounts = new Float64Array(64);
  private callOffsets = new Float64Array(64);
  private seenImport = new Set<string>();

  // ---- results of the last successful run ---------------------------------------------------
  ops = 0;
  protocol = 0;
  decodedBytes = 0;
  /** After LIMIT: the machine's LimitError message (without "at offset") and the offending opcode's offset. */
  limitMessage = "";
  limitOffset = 0;
  /** Distinct imports (per opcode, module, name) in order of first occurrence, with that offset. */
  imports: ScannedImport[] = [];
  /** Distinct call sites (per opcode and import) in order of first occurrence, with counts. */
  private callOrder: number[] = [];

  constructor(
    private readonly source: ByteSource,
    private readonly end: number,
    private readonly limits: PickleLimits,
    private readonly deadline: number,
    /** Callables whose objects' BUILD the caller's onBuild hook acts on (none when undefined). */
    private readonly buildHook?: (module: string, name: string) => boolean,
  ) {
    this.buf = Buffer.allocUnsafe(Math.max(64, Math.min(WINDOW, Math.max(end, limits.maxRetainedArgumentBytes + 16))));
    // Grown on demand up to maxStackDepth + 2 (an opcode pushes at most one value past the check).
    this.stack = new Int32Array(Math.min(limits.maxStackDepth + 2, 1024));
    this.marks = new Int32Array(limits.maxMarkDepth + 1);
  }

  /** Whether the configured limits let the scanner preallocate its stack and marks. */
  static usable(limits: PickleLimits): boolean {
    return (
      limits.maxStackDepth <= MAX_SCANNER_PREALLOCATED && limits.maxMarkDepth <= MAX_SCANNER_PREALLOCATED && limits.maxRetainedArgumentBytes <= 64 * 1024 * 1024
    );
  }

  /** Calls recorded by the last successful run. */
  calls(): ScannedCall[] {
    return this.callOrder.map((slot) => {
      const g = slot >> 2;
      return {
        opcode: CALL_OPS[slot & 3] as number,
        module: this.globalModules[g] as string,
        name: this.globalNames[g] as string,
        offset: this.callOffsets[slot] as number,
        count: this.callCounts[slot] as number,
      };
    });
  }

  /** Make at least `n` bytes from absolute `at` available; returns their index in buf (n <= end - at checked by the caller). */
  private load(at: number, n: number): number {
    if (at >= this.bufStart && at + n <= this.bufStart + this.bufLen) return at - this.bufStart;
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
    const want = Math.min(this.buf.length, this.end - at);
    const got = this.source.readAt(want === this.buf.length ? this.buf : this.buf.subarray(0, want), at);
    this.bufStart = at;
    this.bufLen = got;
    return got < n ? -1 : 0;
  }

  /** Decode the string written by the opcode at `offset` (validated by the scan); undefined when it cannot be used. */
  private decodeAt(offset: number): PickleReader | undefined {
    return this.decodeAtFrame(offset, -1);
  }

  /** decodeAt inside a frame that ends at `frameEnd` (-1: none): the reader's framing checks too. */
  private decodeAtFrame(offset: number, frameEnd: number): PickleReader | undefined {
    this.side ??= new PickleReader(this.source, 0, this.end, this.limits.maxRetainedArgumentBytes, 256);
    const side = this.side;
    side.frameEnd = frameEnd;
    side.seek(offset);
    try {
      side.next();
    } catch {
      return undefined;
    }
    return side;
  }

  private globalId(module: string, name: string): number {
    const key = `${module}\n${name}`;
    let g = this.globalIds.get(key);
    if (g === undefined) {
      g = this.globalModules.length;
      if (g >= MAX_SCANNER_DISTINCT) return BAIL;
      this.globalIds.set(key, g);
      this.globalModules.push(module);
      this.globalNames.push(name);
      this.buildHooked.push(isDtypeMakingCallable(module, name) || (this.buildHook !== undefined && this.buildHook(module, name)));
      if (4 * (g + 1) > this.callCounts.length) {
        const counts = new Float64Array(this.callCounts.length * 2);
        counts.set(this.callCounts);
        this.callCounts = counts;
        const offsets = new Float64Array(this.callOffsets.length * 2);
        offsets.set(this.callOffsets);
        this.callOffsets = offsets;
      }
    }
    return g;
  }

  private recordImport(module: string, name: string, opcode: number, offset: number): boolean {
    const key = `${opcode.toString()}|${module}\n${name}`;
    if (this.seenImport.has(key)) return true;
    if (this.imports.length >= MAX_SCANNER_DISTINCT) return false;
    this.seenImport.add(key);
    this.imports.push({ module, name, opcode, offset });
    return true;
  }

  private recordCall(slot: number, offset: number): void {
    const c = this.callCounts[slot] as number;
    if (c === 0) {
      this.callOrder.push(slot);
      this.callOffsets[slot] = offset;
    }
    this.callCounts[slot] = c + 1;
  }

  private resetStream(): void {
    for (let p = 0; p < this.memoHigh; p += 1 << PAGE_BITS) {
      const page = this.memo[p >>> PAGE_BITS] as Int32Array;
      if (page !== ZERO_PAGE) page.fill(EMPTY);
    }
    this.memoHigh = 0;
    this.globalModules = [];
    this.buildHooked = [];
    this.globalNames = [];
    this.globalIds.clear();
    this.callCounts.fill(0);
    this.callOrder = [];
    this.seenImport.clear();
    this.imports = [];
    this.ops = 0;
    this.protocol = 0;
    this.decodedBytes = 0;
    this.limitMessage = "";
    this.limitOffset = 0;
  }

  /** Record the limit reached by the opcode at `offset` (the `ops`-th of the stream); returns LIMIT. */
  private limit(message: string, offset: number, ops: number, decoded: number): number {
    this.limitMessage = message;
    this.limitOffset = offset;
    this.ops = ops;
    this.decodedBytes = decoded;
    return LIMIT;
  }

  /**
   * Scan one pickle from `start` to its STOP. Returns the offset just after STOP, BAIL or LIMIT.
   * `decodedBefore` is the analysis' decoded-string total so far (maxDecodedStringBytes spans streams),
   * `opsBefore` the opcodes of its earlier streams (the memo index rule spans a sequence).
   */
  run(start: number, decodedBefore: number, opsBefore = 0): number {
    this.resetStream();
    if (this.end - start > MAX_STREAM_BYTES) return BAIL;
    const maxOps = this.limits.maxOpsPerStream;
    const s = this.s;
    s.start = start;
    s.pos = start;
    s.maxDecoded = this.limits.maxDecodedStringBytes - decodedBefore;
    s.opsBefore = opsBefore;
    s.memoCount = 0;
    s.memoHigh = 0;
    s.sp = 0;
    s.md = 0;
    s.fence = 0;
    s.ops = 0;
    s.decoded = 0;
    s.frameEnd = -1;
    s.stopAt = this.end;
    if (start < this.bufStart) {
      this.bufStart = start; // force a load: the window is past the stream (a rerun after a bail)
      this.bufLen = 0;
    }
    // The loop runs in chunks of 64K opcodes: V8 then optimizes `chunk` as a whole function after
    // a few calls instead of running one long on-stack-replaced loop (measured 1.6x slower).
    for (;;) {
      s.checkAt = Math.min(maxOps, s.ops + 0x10000);
      const r = this.chunk();
      if (r !== CONTINUE) return r;
      // The next opcode would be past maxOpsPerStream (or there is none: no STOP), or time is up.
      if (s.ops >= maxOps) return this.opsLimit();
      if (Date.now() > this.deadline) return BAIL;
    }
  }

  /**
   * maxOpsPerStream opcodes scanned and no STOP: the machine reads the next opcode (its reader
   * throws malformed_pickle first when it does not parse) and then counts it past the limit.
   */
  private opsLimit(): number {
    const s = this.s;
    const side = this.decodeAtFrame(s.pos, s.frameEnd);
    if (side === undefined) return BAIL;
    return this.limit(limitMessage.ops(this.limits.maxOpsPerStream), s.pos, s.ops + 1, s.decoded);
  }

  /** Scan until STOP (offset after it), a bail, or `checkAt` opcodes (CONTINUE, state saved in `s`). */
  private chunk(): number {
    const s = this.s;
    const end = this.end;
    const start = s.start;
    const limits = this.limits;
    const maxStack = limits.maxStackDepth;
    const maxMarks = limits.maxMarkDepth;
    const maxMemo = limits.maxMemoEntries;
    const maxDecoded = s.maxDecoded;
    const maxRetained = limits.maxRetainedArgumentBytes;
    let stack = this.stack;
    /** Depth that needs a look after an opcode: past maxStackDepth, or the stack array is full. */
    let stackCheck = Math.min(maxStack, stack.length - 2);
    const marks = this.marks;
    const memo = this.memo;
    const checkAt = s.checkAt;
    /** Earlier streams' opcodes, minus one: `opsBefore + ops` is the opcodes read before the current one (memo index rule, machine.ts memoPut). */
    const opsBefore = s.opsBefore - 1;
    let memoCount = s.memoCount;
    let memoHigh = s.memoHigh;
    let sp = s.sp;
    let md = s.md;
    let fence = s.fence;
    let ops = s.ops;
    let decoded = s.decoded;
    let frameEnd = s.frameEnd;
    let pos = s.pos;
    let buf = this.buf;
    let base = this.bufStart;
    let avail = base + this.bufLen;
    /** Where the next opcode needs the slow checks: the end of the range or of the current frame. */
    let stopAt = s.stopAt;

    for (;;) {
      const at = pos;
      if (ops >= checkAt) {
        s.memoCount = memoCount;
        s.memoHigh = memoHigh;
        s.sp = sp;
        s.md = md;
        s.fence = fence;
        s.ops = ops;
        s.decoded = decoded;
        s.frameEnd = frameEnd;
        s.pos = pos;
        s.stopAt = stopAt;
        return CONTINUE;
      }
      if (at >= stopAt) {
        if (at >= end) return BAIL;
        frameEnd = -1; // the frame ended exactly here
        stopAt = end;
      }
      if (at + 9 > avail) {
        if (this.load(at, Math.min(9, end - at)) < 0) return BAIL;
        buf = this.buf;
        base = this.bufStart;
        avail = base + this.bufLen;
      }
      const i = at - base;
      ops++;
      const op = buf[i] as number;
      switch (op) {
        case 0x28 /* MARK */:
          if (md >= maxMarks) return this.limit(limitMessage.marks(maxMarks), at, ops, decoded);
          marks[md++] = sp;
          fence = sp;
          pos = at + 1;
          break;
        case 0x2e /* STOP */:
          if (sp <= fence) return BAIL;
          pos = at + 1;
          if (frameEnd > pos) return BAIL;
          this.ops = ops;
          this.decodedBytes = decoded;
          return pos;
        case 0x4b /* BININT1 */:
          pos = at + 2;
          if (pos > end) return BAIL;
          stack[sp++] = OTHER;
          break;
        case 0x4d /* BININT2 */:
          pos = at + 3;
          if (pos > end) return BAIL;
          stack[sp++] = OTHER;
          break;
        case 0x4a /* BININT */:
          pos = at + 5;
          if (pos > end) return BAIL;
          stack[sp++] = OTHER;
          break;
        case 0x47 /* BINFLOAT */:
          pos = at + 9;
          if (pos > end) return BAIL;
          stack[sp++] = OTHER;
          break;
        case 0x4e /* NONE */:
        case 0x88 /* NEWTRUE */:
        case 0x89 /* NEWFALSE */:
        case 0x7d /* EMPTY_DICT */:
        case 0x5d /* EMPTY_LIST */:
        case 0x29 /* EMPTY_TUPLE */:
        case 0x8f /* EMPTY_SET */:
        case 0x97 /* NEXT_BUFFER */:
          pos = at + 1;
          stack[sp++] = OTHER;
          break;
        case 0x8c /* SHORT_BINUNICODE */:
        case 0x58 /* BINUNICODE */:
        case 0x8d /* BINUNICODE8 */:
        case 0x55 /* SHORT_BINSTRING */:
        case 0x54 /* BINSTRING */: {
          let head: number;
          let n: number;
          if (op === 0x8c || op === 0x55) {
            head = 2;
            if (at + 2 > end) return BAIL;
            n = buf[i + 1] as number;
          } else if (op === 0x8d) {
            head = 9;
            if (at + 9 > end) return BAIL;
            const hi = ((buf[i + 5] as number) | ((buf[i + 6] as number) << 8) | ((buf[i + 7] as number) << 16) | ((buf[i + 8] as number) << 24)) >>> 0;
            if (hi > 0x1fffff) return BAIL;
            n =
              hi * 0x100000000 +
              (((buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24)) >>> 0);
          } else {
            head = 5;
            if (at + 5 > end) return BAIL;
            n = (buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24);
            if (op === 0x58) n = n >>> 0;
            else if (n < 0) return BAIL;
          }
          const from = at + head;
          if (n > end - from) return BAIL;
          pos = from + n;
          if (n > maxRetained) {
            // Truncated: STACK_GLOBAL can never use it; its decoded prefix length needs the reader.
            const r = this.decodeAt(at);
            if (r === undefined) return BAIL;
            decoded += r.str.length;
            stack[sp++] = OTHER;
          } else {
            let j = from - base;
            if (from < base || pos > avail) {
              j = this.load(from, n);
              if (j < 0) return BAIL;
              buf = this.buf;
              base = this.bufStart;
              avail = base + this.bufLen;
            }
            let ascii = true;
            if (op !== 0x55 && op !== 0x54) {
              for (const stop = j + n; j < stop; j++) {
                if ((buf[j] as number) >= 0x80) {
                  ascii = false;
                  break;
                }
              }
            }
            if (ascii) decoded += n;
            else {
              // Strict UTF-8 and its UTF-16 length: the reader's own decoding (rare in data pickles).
              const r = this.decodeAt(at);
              if (r === undefined) return BAIL;
              decoded += r.str.length;
            }
            stack[sp++] = at - start + 1;
          }
          if (decoded > maxDecoded) return pos > stopAt ? BAIL : this.limit(limitMessage.decoded(limits.maxDecodedStringBytes), at, ops, decoded);
          break;
        }
        case 0x43 /* SHORT_BINBYTES */:
        case 0x42 /* BINBYTES */:
        case 0x8e /* BINBYTES8 */:
        case 0x96 /* BYTEARRAY8 */: {
          let head: number;
          let n: number;
          if (op === 0x43) {
            head = 2;
            if (at + 2 > end) return BAIL;
            n = buf[i + 1] as number;
          } else if (op === 0x42) {
            head = 5;
            if (at + 5 > end) return BAIL;
            n = ((buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24)) >>> 0;
          } else {
            head = 9;
            if (at + 9 > end) return BAIL;
            const hi = ((buf[i + 5] as number) | ((buf[i + 6] as number) << 8) | ((buf[i + 7] as number) << 16) | ((buf[i + 8] as number) << 24)) >>> 0;
            if (hi > 0x1fffff) return BAIL;
            n =
              hi * 0x100000000 +
              (((buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24)) >>> 0);
          }
          const from = at + head;
          if (n > end - from) return BAIL;
          pos = from + n;
          if (n <= maxRetained) {
            decoded += n;
            if (decoded > maxDecoded) return pos > stopAt ? BAIL : this.limit(limitMessage.decoded(limits.maxDecodedStringBytes), at, ops, decoded);
          }
          stack[sp++] = OTHER;
          break;
        }
        case 0x68 /* BINGET */:
        case 0x6a /* LONG_BINGET */: {
          let idx: number;
          if (op === 0x68) {
            pos = at + 2;
            if (pos > end) return BAIL;
            idx = buf[i + 1] as number;
          } else {
            pos = at + 5;
            if (pos > end) return BAIL;
            idx = ((buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24)) >>> 0;
          }
          if (idx >= MAX_SCANNER_MEMO_INDEX) return BAIL;
          const v = (memo[idx >>> PAGE_BITS] as Int32Array)[idx & PAGE_MASK] as number;
          if (v === EMPTY) return BAIL;
          stack[sp++] = v;
          break;
        }
        case 0x71 /* BINPUT */:
        case 0x72 /* LONG_BINPUT */:
        case 0x94 /* MEMOIZE */: {
          let idx: number;
          if (op === 0x94) {
            pos = at + 1;
            idx = memoCount;
          } else if (op === 0x71) {
            pos = at + 2;
            if (pos > end) return BAIL;
            idx = buf[i + 1] as number;
          } else {
            pos = at + 5;
            if (pos > end) return BAIL;
            idx = ((buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24)) >>> 0;
          }
          if (sp <= fence) return BAIL;
          if (idx > opsBefore + ops) return pos > stopAt ? BAIL : this.limit(limitMessage.memoIndex(idx, opsBefore + ops), at, ops, decoded);
          if (idx >= MAX_SCANNER_MEMO_INDEX) return BAIL;
          let page = memo[idx >>> PAGE_BITS] as Int32Array;
          const slot = idx & PAGE_MASK;
          if (page[slot] === EMPTY) {
            if (memoCount >= maxMemo) return pos > stopAt ? BAIL : this.limit(limitMessage.memo(maxMemo), at, ops, decoded);
            memoCount++;
            if (idx >= memoHigh) this.memoHigh = memoHigh = idx + 1;
            if (page === ZERO_PAGE) memo[idx >>> PAGE_BITS] = page = new Int32Array(1 << PAGE_BITS);
          }
          page[slot] = stack[sp - 1] as number;
          break;
        }
        case 0x73 /* SETITEM */:
          pos = at + 1;
          if (sp - 3 < fence) return BAIL;
          sp -= 2;
          if (isImport(stack[sp - 1] as number)) return BAIL; // mutation of module state: the machine reports it
          break;
        case 0x61 /* APPEND */:
          pos = at + 1;
          if (sp - 2 < fence) return BAIL;
          sp -= 1;
          if (isImport(stack[sp - 1] as number)) return BAIL;
          break;
        case 0x75 /* SETITEMS */:
        case 0x65 /* APPENDS */:
        case 0x90 /* ADDITEMS */: {
          pos = at + 1;
          if (md === 0) return BAIL;
          const mark = marks[--md] as number;
          fence = md > 0 ? (marks[md - 1] as number) : 0;
          if (op === 0x75 && ((sp - mark) & 1) !== 0) return BAIL;
          if (mark <= fence) return BAIL;
          if (isImport(stack[mark - 1] as number)) return BAIL;
          sp = mark;
          break;
        }
        case 0x74 /* TUPLE */:
        case 0x6c /* LIST */:
        case 0x91 /* FROZENSET */:
        case 0x64 /* DICT */:
        case 0x31 /* POP_MARK */: {
          pos = at + 1;
          if (md === 0) return BAIL;
          const mark = marks[--md] as number;
          fence = md > 0 ? (marks[md - 1] as number) : 0;
          if (op === 0x64 && ((sp - mark) & 1) !== 0) return BAIL;
          sp = mark;
          if (op !== 0x31) stack[sp++] = OTHER;
          break;
        }
        case 0x85 /* TUPLE1 */:
          pos = at + 1;
          if (sp - 1 < fence) return BAIL;
          stack[sp - 1] = OTHER;
          break;
        case 0x86 /* TUPLE2 */:
          pos = at + 1;
          if (sp - 2 < fence) return BAIL;
          sp -= 1;
          stack[sp - 1] = OTHER;
          break;
        case 0x87 /* TUPLE3 */:
          pos = at + 1;
          if (sp - 3 < fence) return BAIL;
          sp -= 2;
          stack[sp - 1] = OTHER;
          break;
        case 0x52 /* REDUCE */:
        case 0x81 /* NEWOBJ */:
        case 0x92 /* NEWOBJ_EX */: {
          pos = at + 1;
          const operands = op === 0x92 ? 3 : 2;
          if (sp - operands < fence) return BAIL;
          sp -= operands;
          const callable = stack[sp] as number;
          // A call on anything but an import (or on an odd tag: an object) is a finding: the machine reports it.
          if (callable > -2 || (-callable & 1) !== 0) return BAIL;
          const g = (-callable - 2) / 2;
          this.recordCall(4 * g + (op === 0x52 ? 0 : op === 0x81 ? 1 : 2), at);
          stack[sp++] = callable - 1;
          break;
        }
        case 0x62 /* BUILD */: {
          pos = at + 1;
          if (sp - 2 < fence) return BAIL;
          sp -= 1;
          const target = stack[sp - 1] as number;
          if (target <= -2) {
            if ((-target & 1) === 0) return BAIL; // BUILD on an import: module state
            const g = (-target - 3) / 2;
            if (this.buildHooked[g] === true) return BAIL; // the hook reads this object's state
            this.recordCall(4 * g + 3, at);
          }
          break;
        }
        case 0x93 /* STACK_GLOBAL */: {
          pos = at + 1;
          if (sp - 2 < fence) return BAIL;
          const nameAt = stack[sp - 1] as number;
          const moduleAt = stack[sp - 2] as number;
          sp -= 2;
          if (nameAt < 1 || moduleAt < 1) return BAIL; // not proven string constants: unresolved_global
          const mr = this.decodeAt(start + moduleAt - 1);
          if (mr === undefined || mr.truncated) return BAIL;
          const module = mr.str;
          const nr = this.decodeAt(start + nameAt - 1);
          if (nr === undefined || nr.truncated) return BAIL;
          const name = nr.str;
          const g = this.globalId(module, name);
          if (g < 0 || !this.recordImport(module, name, op, at)) return BAIL;
          stack[sp++] = -2 - 2 * g;
          break;
        }
        case 0x63 /* GLOBAL */: {
          const r = this.decodeAt(at);
          if (r === undefined) return BAIL;
          pos = r.pos;
          const module = r.str;
          const name = r.str2;
          decoded += module.length + name.length;
          if (decoded > maxDecoded) return pos > stopAt ? BAIL : this.limit(limitMessage.decoded(limits.maxDecodedStringBytes), at, ops, decoded);
          const g = this.globalId(module, name);
          if (g < 0 || !this.recordImport(module, name, op, at)) return BAIL;
          stack[sp++] = -2 - 2 * g;
          break;
        }
        case 0x8a /* LONG1 */:
        case 0x8b /* LONG4 */: {
          let n: number;
          let from: number;
          if (op === 0x8a) {
            from = at + 2;
            if (from > end) return BAIL;
            n = buf[i + 1] as number;
          } else {
            from = at + 5;
            if (from > end) return BAIL;
            n = (buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24);
            if (n < 0) return BAIL;
          }
          if (n > end - from) return BAIL;
          pos = from + n;
          stack[sp++] = OTHER;
          break;
        }
        case 0x30 /* POP */:
          pos = at + 1;
          if (sp > fence) sp--;
          else if (md > 0) {
            sp = marks[--md] as number;
            fence = md > 0 ? (marks[md - 1] as number) : 0;
          } else return BAIL;
          break;
        case 0x32 /* DUP */:
          pos = at + 1;
          if (sp <= fence) return BAIL;
          stack[sp] = stack[sp - 1] as number;
          sp++;
          break;
        case 0x98 /* READONLY_BUFFER */:
          pos = at + 1;
          if (sp <= fence) return BAIL;
          break;
        case 0x80 /* PROTO */: {
          pos = at + 2;
          if (pos > end) return BAIL;
          const p = buf[i + 1] as number;
          if (p > HIGHEST_PROTOCOL) return BAIL;
          this.protocol = p;
          break;
        }
        case 0x95 /* FRAME */: {
          pos = at + 9;
          if (pos > end) return BAIL;
          if (frameEnd > at) return BAIL;
          const hi = ((buf[i + 5] as number) | ((buf[i + 6] as number) << 8) | ((buf[i + 7] as number) << 16) | ((buf[i + 8] as number) << 24)) >>> 0;
          if (hi > 0x1fffff) return BAIL;
          const len =
            hi * 0x100000000 +
            (((buf[i + 1] as number) | ((buf[i + 2] as number) << 8) | ((buf[i + 3] as number) << 16) | ((buf[i + 4] as number) << 24)) >>> 0);
          if (len > end - pos) return BAIL;
          frameEnd = pos + len;
          stopAt = frameEnd;
          continue; // FRAME precedes its frame: no crossing check, no stack check
        }
        default:
          // Protocol 0/1 text opcodes, PERSID/BINPERSID, EXT1/2/4, INST, OBJ, unknown bytes.
          return BAIL;
      }
      // An opcode that crosses the end of its FRAME is malformed.
      // Past stopAt: an opcode that crosses the end of its FRAME (malformed), or a truncated argument.
      if (pos > stopAt || sp > stackCheck) {
        if (pos > stopAt) return BAIL;
        if (sp > maxStack) return this.limit(limitMessage.stack(maxStack), at, ops, decoded);
        const grown = new Int32Array(Math.min(maxStack + 2, stack.length * 2));
        grown.set(stack);
        this.stack = stack = grown;
        stackCheck = Math.min(maxStack, stack.length - 2);
      }
    }
  }
}
