import { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import { GatewayError } from "../../errors";

/**
 * A streaming decoder for the LZ4 frame format (lz4_Frame_format.md v1.6.x), the format
 * `joblib.dump(..., compress="lz4")` writes through python-lz4's LZ4FrameFile. Written here
 * because no well-kept JavaScript LZ4 library verifies every field: this one checks the frame
 * descriptor and its header checksum, reserved bits, the block size against the declared
 * maximum, every match offset against the data actually decoded (independent vs linked
 * blocks), block checksums, the content checksum and the declared content size, and rejects
 * anything after the end mark. Memory is one block plus the 64 KiB history window.
 */

const LZ4_FRAME_MAGIC = 0x184d2204;
/** Skippable frames (0x184D2A50..5F) carry user data a loader ignores: we do not model them. */
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
/** LZ4 matches reach at most 65535 bytes back. */
const HISTORY_BYTES = 64 * 1024;
const MIN_MATCH = 4;

/** Block maximum sizes by the BD byte's block-size id (4..7). */
const BLOCK_MAX_SIZES: Readonly<Record<number, number>> = { 4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024 };

// ---- xxHash32 (the checksum of the frame format) --------------------------------------------

const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

function round(acc: number, input: number): number {
  return Math.imul(rotl((acc + Math.imul(input, P2)) >>> 0, 13), P1) >>> 0;
}

function readU32(b: Uint8Array, i: number): number {
  return ((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16) | ((b[i + 3] as number) << 24)) >>> 0;
}

/** Incremental xxHash32 (seed 0 unless given), as the LZ4 frame format uses it. */
export class Xxh32 {
  private v1: number;
  private v2: number;
  private v3: number;
  private v4: number;
  private readonly pending = new Uint8Array(16);
  private pendingLength = 0;
  private total = 0;

  constructor(private readonly seed = 0) {
    this.v1 = (seed + P1 + P2) >>> 0;
    this.v2 = (seed + P2) >>> 0;
    this.v3 = seed >>> 0;
    this.v4 = (seed - P1) >>> 0;
  }

  update(data: Uint8Array): this {
    this.total += data.length;
    let i = 0;
    if (this.pendingLength > 0) {
      const take = Math.min(16 - this.pendingLength, data.length);
      this.pending.set(data.subarray(0, take), this.pendingLength);
      this.pendingLength += take;
      i = take;
      if (this.pendingLength < 16) return this;
      this.stripe(this.pending, 0);
      this.pendingLength = 0;
    }
    for (; i + 16 <= data.length; i += 16) this.stripe(data, i);
    if (i < data.length) {
      this.pending.set(data.subarray(i), 0);
      this.pendingLength = data.length - i;
    }
    return this;
  }

  private stripe(b: Uint8Array, i: number): void {
    this.v1 = round(this.v1, readU32(b, i));
    this.v2 = round(this.v2, readU32(b, i + 4));
    this.v3 = round(this.v3, readU32(b, i + 8));
    this.v4 = round(this.v4, readU32(b, i + 12));
  }

  digest(): number {
    let h: number;
    if (this.total >= 16) {
      h = (rotl(this.v1, 1) + rotl(this.v2, 7) + rotl(this.v3, 12) + rotl(this.v4, 18)) >>> 0;
    } else {
      h = (this.seed + P5) >>> 0;
    }
    h = (h + (this.total % 0x100000000)) >>> 0;
    let i = 0;
    const b = this.pending;
    for (; i + 4 <= this.pendingLength; i += 4) {
      h = Math.imul(rotl((h + Math.imul(readU32(b, i), P3)) >>> 0, 17), P4) >>> 0;
    }
    for (; i < this.pendingLength; i++) {
      h = Math.imul(rotl((h + Math.imul(b[i] as number, P5)) >>> 0, 11), P1) >>> 0;
    }
    h ^= h >>> 15;
    h = Math.imul(h, P2) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, P3) >>> 0;
    h ^= h >>> 16;
    return h >>> 0;
  }
}

export function xxh32(data: Uint8Array, seed = 0): number {
  return new Xxh32(seed).update(data).digest();
}

// ---- frame decoder --------------------------------------------------------------------------

export interface Lz4FrameInfo {
  blockMaxSize: number;
  blockIndependence: boolean;
  blockChecksum: boolean;
  contentChecksum: boolean;
  /** The content size the descriptor declares, when it declares one (verified). */
  contentSize?: number;
  blocks: number;
  compressedBytes: number;
  uncompressedBytes: number;
}

function malformed(message: string, offset: number): never {
  throw new GatewayError("malformed_container", `lz4 frame: ${message} at offset ${offset}`, { offset, compression: "lz4" });
}

/**
 * Decode one block of LZ4 sequences from `src` into `out` starting at `outStart`, with matches
 * allowed to reach back to `minRef` (the start of the retained history). Returns the end of the
 * decoded bytes. Every length is checked before it is used: a block can never write past
 * `outEnd` nor read outside `src` or before `minRef`.
 */
export function decodeLz4Block(src: Uint8Array, out: Uint8Array, outStart: number, outEnd: number, minRef: number, blockOffset = 0): number {
  let ip = 0;
  let op = outStart;
  const iend = src.length;
  if (iend === 0) malformed("empty compressed block", blockOffset);
  for (;;) {
    if (ip >= iend) malformed("block ends inside a sequence token", blockOffset + ip);
    const token = src[ip++] as number;
    let literalLength = token >>> 4;
    if (literalLength === 15) {
      let b: number;
      do {
        if (ip >= iend) malformed("block ends inside a literal length", blockOffset + ip);
        b = src[ip++] as number;
        literalLength += b;
      } while (b === 255);
    }
    if (literalLength > iend - ip) malformed(`literal run of ${literalLength} bytes overruns the block`, blockOffset + ip);
    if (literalLength > outEnd - op) malformed("literals exceed the declared block maximum size", blockOffset + ip);
    if (literalLength < 32) {
      // Short runs: a loop beats creating a subarray view.
      for (let k = 0; k < literalLength; k++) out[op + k] = src[ip + k] as number;
    } else out.set(src.subarray(ip, ip + literalLength), op);
    ip += literalLength;
    op += literalLength;
    // The last sequence of a block is literals only.
    if (ip === iend) return op;
    if (iend - ip < 2) malformed("block ends inside a match offset", blockOffset + ip);
    const offset = (src[ip] as number) | ((src[ip + 1] as number) << 8);
    ip += 2;
    if (offset === 0) malformed("match offset 0", blockOffset + ip - 2);
    let matchLength = (token & 15) + MIN_MATCH;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (ip >= iend) malformed("block ends inside a match length", blockOffset + ip);
        b = src[ip++] as number;
        matchLength += b;
      } while (b === 255);
    }
    const ref = op - offset;
    if (ref < minRef) malformed(`match offset ${offset} reaches before the decoded data`, blockOffset + ip);
    if (matchLength > outEnd - op) malformed("match exceeds the declared block maximum size", blockOffset + ip);
    if (offset >= matchLength && matchLength >= 32) {
      out.copyWithin(op, ref, ref + matchLength);
    } else {
      // Short or overlapping matches: byte by byte (an overlapping match repeats the last
      // `offset` bytes, RLE-like, which copyWithin would not do).
      for (let k = 0; k < matchLength; k++) out[op + k] = out[ref + k] as number;
    }
    op += matchLength;
  }
}

/**
 * Decode the single LZ4 frame that fills `source`, handing decoded bytes to `sink` block by
 * block (the chunk is only valid during the call). Throws `malformed_container` for anything
 * the frame format forbids or we do not model (dictionary ids, skippable frames, data after the
 * frame); the sink throws to stop on limits.
 */
export function decodeLz4Frame(source: ByteSource, sink: (chunk: Uint8Array) => void): Lz4FrameInfo {
  const c = new Cursor(source, { errorCode: "malformed_container", what: "lz4 frame" });
  const magic = c.u32le("frame magic");
  if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) malformed("skippable frames are not accepted", 0);
  if (magic !== LZ4_FRAME_MAGIC) malformed(`bad magic 0x${magic.toString(16)}`, 0);

  const descriptorStart = c.position;
  const flg = c.u8("FLG");
  const bd = c.u8("BD");
  if (flg >>> 6 !== 1) malformed(`unsupported frame version ${String(flg >>> 6)}`, descriptorStart);
  if ((flg & 0x02) !== 0) malformed("reserved FLG bit set", descriptorStart);
  if ((bd & 0x8f) !== 0) malformed("reserved BD bits set", descriptorStart + 1);
  const blockMaxSize = BLOCK_MAX_SIZES[(bd >>> 4) & 7];
  if (blockMaxSize === undefined) malformed(`invalid block maximum size id ${String((bd >>> 4) & 7)}`, descriptorStart + 1);
  const blockIndependence = (flg & 0x20) !== 0;
  const blockChecksum = (flg & 0x10) !== 0;
  const hasContentSize = (flg & 0x08) !== 0;
  const contentChecksum = (flg & 0x04) !== 0;
  const hasDictId = (flg & 0x01) !== 0;
  let contentSize: number | undefined;
  if (hasContentSize) contentSize = c.u64le("content size");
  if (hasDictId) malformed("frames that need a preset dictionary are not supported", descriptorStart);
  const descriptorEnd = c.position;
  const hc = c.u8("header checksum");
  c.seek(descriptorStart);
  const descriptor = c.bytes(descriptorEnd - descriptorStart, "frame descriptor");
  c.skip(1);
  if (((xxh32(descriptor) >>> 8) & 0xff) !== hc) malformed("frame descriptor checksum mismatch", descriptorEnd);

  const out = new Uint8Array(HISTORY_BYTES + blockMaxSize);
  let historyLength = 0;
  const contentHash = contentChecksum ? new Xxh32() : undefined;
  let produced = 0;
  let blocks = 0;
  for (;;) {
    const blockStart = c.position;
    const raw = c.u32le("block size");
    if (raw === 0) break;
    const stored = raw >= 0x80000000;
    const size = stored ? raw - 0x80000000 : raw;
    if (size > blockMaxSize) malformed(`block of ${size} bytes exceeds the declared maximum ${blockMaxSize}`, blockStart);
    const data = c.bytes(size, "block data");
    if (blockChecksum) {
      const expected = c.u32le("block checksum");
      if (xxh32(data) !== expected) malformed("block checksum mismatch", blockStart);
    }
    const minRef = blockIndependence ? HISTORY_BYTES : HISTORY_BYTES - historyLength;
    let end: number;
    if (stored) {
      out.set(data, HISTORY_BYTES);
      end = HISTORY_BYTES + size;
    } else {
      end = decodeLz4Block(data, out, HISTORY_BYTES, HISTORY_BYTES + blockMaxSize, minRef, blockStart + 4);
    }
    const chunk = out.subarray(HISTORY_BYTES, end);
    contentHash?.update(chunk);
    produced += chunk.length;
    blocks += 1;
    if (contentSize !== undefined && produced > contentSize) malformed(`content exceeds the declared size ${contentSize}`, blockStart);
    sink(chunk);
    if (!blockIndependence) {
      // Keep the last 64 KiB of decoded data in front of the next block's output.
      const keep = Math.min(HISTORY_BYTES, historyLength + chunk.length);
      out.copyWithin(HISTORY_BYTES - keep, end - keep, end);
      historyLength = keep;
    }
  }
  if (contentHash !== undefined) {
    const at = c.position;
    const expected = c.u32le("content checksum");
    if (contentHash.digest() !== expected) malformed("content checksum mismatch", at);
  }
  if (contentSize !== undefined && produced !== contentSize) malformed(`content is ${produced} bytes, the frame declares ${contentSize}`, c.position);
  if (!c.atEnd) malformed(`${c.remaining} bytes after the end of the frame`, c.position);
  const info: Lz4FrameInfo = {
    blockMaxSize,
    blockIndependence,
    blockChecksum,
    contentChecksum,
    blocks,
    compressedBytes: source.size,
    uncompressedBytes: produced,
  };
  if (contentSize !== undefined) info.contentSize = contentSize;
  return info;
}
