import { crc32, deflateRawSync } from "node:zlib";

/**
 * buildZip(entries): a zip writer for tests, with a knob for every field the reader cross-checks,
 * so each attack is one override on an otherwise valid archive.
 */
export interface ZipEntrySpec {
  name: string;
  data?: Uint8Array | string;
  method?: 0 | 8;
  flags?: number;
  /** Write a data descriptor (sets flag bit 3); local CRC/sizes become 0. */
  descriptor?: boolean;
  descriptorSignature?: boolean;
  /** 64-bit sizes in the data descriptor (zip64 entries). */
  descriptorWide?: boolean;
  /** Overrides of the local header. */
  localName?: string;
  localFlags?: number;
  localMethod?: number;
  localCrc?: number;
  localCompressedSize?: number;
  localUncompressedSize?: number;
  localExtra?: Uint8Array;
  /** Overrides of the central record. */
  centralCrc?: number;
  centralCompressedSize?: number;
  centralUncompressedSize?: number;
  centralOffset?: number;
  centralExtra?: Uint8Array;
  /** External file attributes (Unix mode in the high 16 bits: the builder writes "made by Unix"). */
  externalAttributes?: number;
  descriptorCrc?: number;
  /** Raw compressed bytes instead of compressing `data`. */
  rawCompressed?: Uint8Array;
  /** Bytes inserted after this entry's record (a gap). */
  gapAfter?: Uint8Array;
}

export interface ZipSpec {
  prefix?: Uint8Array;
  comment?: Uint8Array;
  trailing?: Uint8Array;
  zip64?: boolean;
  /** Override EOCD fields. */
  eocdEntries?: number;
  eocdCdOffset?: number;
  eocdCdSize?: number;
  /** Override zip64 record fields. */
  zip64Entries?: number;
  zip64CdOffset?: number;
  zip64LocatorOffsetDelta?: number;
  /** Bytes between the central directory and the EOCD. */
  cdGap?: Uint8Array;
}

const enc = new TextEncoder();

class Writer {
  private parts: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array): void {
    this.parts.push(b);
    this.length += b.length;
  }
  u16(v: number): void {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, true);
    this.bytes(b);
  }
  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.bytes(b);
  }
  u64(v: number): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.bytes(b);
  }
  concat(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

export function toBytes(data: Uint8Array | string | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  return typeof data === "string" ? enc.encode(data) : data;
}

export function buildZip(entries: ZipEntrySpec[], spec: ZipSpec = {}): Uint8Array {
  const w = new Writer();
  if (spec.prefix) w.bytes(spec.prefix);
  const central: { e: ZipEntrySpec; offset: number; crc: number; csize: number; usize: number; flags: number; method: number; name: Uint8Array }[] = [];
  for (const e of entries) {
    const data = toBytes(e.data);
    const method = e.method ?? 0;
    const compressed = e.rawCompressed ?? (method === 8 ? deflateRawSync(data) : data);
    const crc = crc32(data) >>> 0;
    const flags = (e.flags ?? 0) | (e.descriptor === true ? 0x8 : 0);
    const name = enc.encode(e.name);
    const offset = w.length;
    w.u32(0x04034b50);
    w.u16(20);
    w.u16(e.localFlags ?? flags);
    w.u16(e.localMethod ?? method);
    w.u16(0);
    w.u16(0x21);
    w.u32(e.localCrc ?? (e.descriptor === true ? 0 : crc));
    w.u32(e.localCompressedSize ?? (e.descriptor === true ? 0 : compressed.length));
    w.u32(e.localUncompressedSize ?? (e.descriptor === true ? 0 : data.length));
    const localName = e.localName !== undefined ? enc.encode(e.localName) : name;
    const localExtra = e.localExtra ?? new Uint8Array(0);
    w.u16(localName.length);
    w.u16(localExtra.length);
    w.bytes(localName);
    w.bytes(localExtra);
    w.bytes(compressed);
    if (e.descriptor === true) {
      if (e.descriptorSignature !== false) w.u32(0x08074b50);
      w.u32(e.descriptorCrc ?? crc);
      if (e.descriptorWide === true) {
        w.u64(compressed.length);
        w.u64(data.length);
      } else {
        w.u32(compressed.length);
        w.u32(data.length);
      }
    }
    if (e.gapAfter) w.bytes(e.gapAfter);
    central.push({ e, offset, crc, csize: compressed.length, usize: data.length, flags, method, name });
  }
  const cdOffset = w.length;
  for (const c of central) {
    const extra = c.e.centralExtra ?? new Uint8Array(0);
    w.u32(0x02014b50);
    w.u16(0x031e);
    w.u16(20);
    w.u16(c.flags);
    w.u16(c.method);
    w.u16(0);
    w.u16(0x21);
    w.u32(c.e.centralCrc ?? c.crc);
    w.u32(c.e.centralCompressedSize ?? c.csize);
    w.u32(c.e.centralUncompressedSize ?? c.usize);
    w.u16(c.name.length);
    w.u16(extra.length);
    w.u16(0);
    w.u16(0);
    w.u16(0);
    w.u32(c.e.externalAttributes ?? 0);
    w.u32(c.e.centralOffset ?? c.offset);
    w.bytes(c.name);
    w.bytes(extra);
  }
  const cdSize = w.length - cdOffset;
  if (spec.cdGap) w.bytes(spec.cdGap);
  if (spec.zip64 === true) {
    const recordOffset = w.length;
    w.u32(0x06064b50);
    w.u64(44);
    w.u16(0x031e);
    w.u16(45);
    w.u32(0);
    w.u32(0);
    w.u64(spec.zip64Entries ?? entries.length);
    w.u64(spec.zip64Entries ?? entries.length);
    w.u64(cdSize);
    w.u64(spec.zip64CdOffset ?? cdOffset);
    w.u32(0x07064b50);
    w.u32(0);
    w.u64(recordOffset + (spec.zip64LocatorOffsetDelta ?? 0));
    w.u32(1);
  }
  const comment = spec.comment ?? new Uint8Array(0);
  w.u32(0x06054b50);
  w.u16(0);
  w.u16(0);
  w.u16(spec.eocdEntries ?? entries.length);
  w.u16(spec.eocdEntries ?? entries.length);
  w.u32(spec.eocdCdSize ?? cdSize);
  w.u32(spec.eocdCdOffset ?? cdOffset);
  w.u16(comment.length);
  w.bytes(comment);
  if (spec.trailing) w.bytes(spec.trailing);
  return w.concat();
}

/** A zip64 extra field (id 0x0001) holding the given u64 values in order. */
export function zip64Extra(values: number[]): Uint8Array {
  const b = new Uint8Array(4 + 8 * values.length);
  const v = new DataView(b.buffer);
  v.setUint16(0, 1, true);
  v.setUint16(2, 8 * values.length, true);
  values.forEach((x, i) => {
    v.setBigUint64(4 + 8 * i, BigInt(x), true);
  });
  return b;
}
