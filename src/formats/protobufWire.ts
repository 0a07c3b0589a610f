import type { ByteSource } from "../bytes/source";

/**
 * Protobuf's wire format, as both protobuf readers here read it: the sniffer that tells an ONNX
 * model or a SavedModel from other bytes (protobuf.ts) and the ONNX inspector (models/onnx.ts).
 * A key is a varint `field << 3 | wire type`; a value is a varint, 8 bytes, a length-delimited
 * payload, 4 bytes, or a group between a start and a matching end key.
 */

export const VARINT = 0;
export const I64 = 1;
export const LEN = 2;
export const START_GROUP = 3;
export const END_GROUP = 4;
export const I32 = 5;

/** Positional reads through one 64 KiB window: a walk over many small fields costs few reads. */
export class ProtobufWindow {
  private readonly buf = new Uint8Array(64 * 1024);
  private base = 0;
  private length = 0;
  constructor(private readonly source: ByteSource) {}
  /** The byte at `pos`, or undefined past the end of the source. */
  byteAt(pos: number): number | undefined {
    if (pos < this.base || pos >= this.base + this.length) {
      this.base = pos;
      this.length = this.source.readAt(this.buf, pos);
      if (this.length === 0) return undefined;
    }
    return this.buf[pos - this.base];
  }
}

/**
 * A varint at `pos`, before `end`: at most 10 bytes, as protobuf allows. Undefined when it is cut
 * by `end` or by the end of the source, or runs longer. Values above 2^53 lose precision: callers
 * use them as lengths and field keys, which they bound.
 */
export function readVarint(window: ProtobufWindow, pos: number, end: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && pos + i < end; i++) {
    const b = window.byteAt(pos + i);
    if (b === undefined) return undefined;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return { value, next: pos + i + 1 };
  }
  return undefined;
}
