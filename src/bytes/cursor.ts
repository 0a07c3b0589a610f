import { GatewayError, type ErrorCode } from "../errors";
import type { ByteSource } from "./source";
import { BufferSource } from "./source";

const DEFAULT_WINDOW = 1024 * 1024;

/**
 * A bounds-checked forward cursor over a ByteSource, reading through a fixed window so that
 * a gigabyte input costs one window of memory. Every read past `end` throws a GatewayError with
 * the code the caller chose (a truncated pickle is `malformed_pickle`, a truncated zip record is
 * `malformed_container`), and every length is checked against what remains before anything is
 * allocated for it.
 */
export class Cursor {
  private window: Uint8Array;
  private windowStart = 0;
  private windowEnd = 0;
  private pos: number;
  readonly start: number;
  readonly end: number;

  constructor(
    readonly source: ByteSource,
    options: { start?: number; end?: number; errorCode?: ErrorCode; windowSize?: number; what?: string } = {},
  ) {
    this.start = options.start ?? 0;
    this.end = options.end ?? source.size;
    if (this.start < 0 || this.end > source.size || this.start > this.end) {
      throw new RangeError(`cursor range [${this.start}, ${this.end}) outside a source of ${source.size} bytes`);
    }
    this.pos = this.start;
    this.errorCode = options.errorCode ?? "malformed_container";
    this.what = options.what ?? "input";
    this.window = new Uint8Array(Math.min(options.windowSize ?? DEFAULT_WINDOW, Math.max(16, this.end - this.start)));
  }

  static ofBytes(bytes: Uint8Array, options: { errorCode?: ErrorCode; what?: string } = {}): Cursor {
    return new Cursor(new BufferSource(bytes), options);
  }

  private readonly errorCode: ErrorCode;
  private readonly what: string;

  get position(): number {
    return this.pos;
  }
  get remaining(): number {
    return this.end - this.pos;
  }
  get atEnd(): boolean {
    return this.pos >= this.end;
  }

  /** Throw the cursor's error code with the offset, for callers that find bad structure. */
  fail(message: string, details: Record<string, unknown> = {}, offset = this.pos): never {
    throw new GatewayError(this.errorCode, `${this.what}: ${message} at offset ${offset}`, { offset, ...details });
  }

  /** Ensure n bytes are available, or fail as truncated. */
  require(n: number, what = "value"): void {
    if (!Number.isSafeInteger(n) || n < 0) this.fail(`invalid length ${n} for ${what}`);
    if (n > this.end - this.pos) {
      this.fail(`truncated ${what}: needs ${n} bytes, ${this.end - this.pos} remain`, { needed: n, remaining: this.end - this.pos });
    }
  }

  private fill(n: number): number {
    // Returns the index in the window of `pos`, with at least n bytes loaded after it.
    if (this.pos >= this.windowStart && this.pos + n <= this.windowEnd) return this.pos - this.windowStart;
    if (n > this.window.length) this.window = new Uint8Array(n);
    const want = Math.min(this.window.length, this.end - this.pos);
    const got = this.source.readAt(want === this.window.length ? this.window : this.window.subarray(0, want), this.pos);
    this.windowStart = this.pos;
    this.windowEnd = this.pos + got;
    if (got < n) this.fail(`source ended early: needed ${n} bytes, read ${got}`);
    return 0;
  }

  seek(position: number): void {
    if (position < this.start || position > this.end) this.fail(`seek to ${position} outside [${this.start}, ${this.end}]`);
    this.pos = position;
  }

  skip(n: number, what = "skipped bytes"): void {
    this.require(n, what);
    this.pos += n;
  }

  u8(what = "byte"): number {
    if (this.pos >= this.end) this.fail(`truncated ${what}: needs 1 byte, 0 remain`, { needed: 1, remaining: 0 });
    const i = this.fill(1);
    this.pos += 1;
    return this.window[i] as number;
  }

  peekU8(): number | undefined {
    if (this.pos >= this.end) return undefined;
    const i = this.fill(1);
    return this.window[i];
  }

  u16le(what = "u16"): number {
    this.require(2, what);
    const i = this.fill(2);
    this.pos += 2;
    const w = this.window;
    return (w[i] as number) | ((w[i + 1] as number) << 8);
  }

  u32le(what = "u32"): number {
    this.require(4, what);
    const i = this.fill(4);
    this.pos += 4;
    const w = this.window;
    return ((w[i] as number) | ((w[i + 1] as number) << 8) | ((w[i + 2] as number) << 16)) + (w[i + 3] as number) * 0x1000000;
  }

  i32le(what = "i32"): number {
    const v = this.u32le(what);
    return v >= 0x80000000 ? v - 0x100000000 : v;
  }

  /** A u64 as a number; fails when it exceeds 2^53-1 (no real file is that large). */
  u64le(what = "u64"): number {
    const lo = this.u32le(what);
    const hi = this.u32le(what);
    if (hi > 0x1fffff) this.fail(`${what} ${hi} * 2^32 + ${lo} exceeds the largest safe integer`);
    return hi * 0x100000000 + lo;
  }

  u64leBig(what = "u64"): bigint {
    const lo = this.u32le(what);
    const hi = this.u32le(what);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** A copy of the next n bytes. n is checked against what remains before allocating. */
  bytes(n: number, what = "bytes"): Uint8Array {
    this.require(n, what);
    const out = new Uint8Array(n);
    if (n <= this.window.length) {
      const i = this.fill(n);
      out.set(this.window.subarray(i, i + n));
    } else {
      const got = this.source.readAt(out, this.pos);
      if (got < n) this.fail(`source ended early: needed ${n} bytes, read ${got}`);
    }
    this.pos += n;
    return out;
  }

  /**
   * Bytes up to (not including) the next `\n`, which is consumed. Fails when no newline comes
   * within maxLength bytes: a text argument without its terminator is truncated.
   */
  line(maxLength: number, what = "line"): Uint8Array {
    const startPos = this.pos;
    const limit = Math.min(this.end, startPos + maxLength + 1);
    for (let p = startPos; p < limit; p++) {
      this.pos = p;
      if (this.u8(what) === 0x0a) {
        const len = p - startPos;
        this.pos = startPos;
        const out = this.bytes(len, what);
        this.pos += 1;
        return out;
      }
    }
    this.pos = startPos;
    if (limit === this.end) this.fail(`truncated ${what}: no newline before the end`);
    return this.fail(`${what} longer than ${maxLength} bytes`);
  }
}
