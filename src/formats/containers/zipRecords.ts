import { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import { GatewayError } from "../../errors";
import type { ContainerLimits } from "../../limits";

/**
 * The zip format's records as every step of the reader (zip.ts) sees them: signatures, flag bits,
 * methods, the entry and directory shapes, the error helpers, and the extra-field parser shared by
 * the central directory (zipCentralDirectory.ts) and the local headers (zipLocalHeader.ts).
 */

export const SIG_LOCAL = 0x04034b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_EOCD = 0x06054b50;
export const SIG_ZIP64_EOCD = 0x06064b50;
export const SIG_ZIP64_LOCATOR = 0x07064b50;
export const SIG_DESCRIPTOR = 0x08074b50;

export const FLAG_ENCRYPTED = 0x0001;
export const FLAG_DESCRIPTOR = 0x0008;
export const FLAG_STRONG_ENCRYPTION = 0x0040;
export const FLAG_UTF8 = 0x0800;
/** Deflate option bits (1, 2), data descriptor (3), UTF-8 names (11). Everything else is refused. */
export const ALLOWED_FLAGS = 0x0002 | 0x0004 | FLAG_DESCRIPTOR | FLAG_UTF8;

export const METHOD_STORED = 0;
export const METHOD_DEFLATE = 8;

/** APPNOTE 4.3.7: the local header's fixed part, before the name and extra field. */
export const LOCAL_HEADER_BYTES = 30;
/** APPNOTE 4.3.9: optional signature, CRC-32, then two 4-byte (or, zip64, 8-byte) sizes. */
export const DESCRIPTOR_NARROW_BYTES = 4 + 4 + 4 + 4;
export const DESCRIPTOR_WIDE_BYTES = 4 + 4 + 8 + 8;

export const EXTRA_ZIP64 = 0x0001;
export const U32_MAX = 0xffffffff;
export const U16_MAX = 0xffff;
export const CRC_CHUNK = 1024 * 1024;

export interface ZipEntry {
  name: string;
  isDirectory: boolean;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
  /** First byte of the (compressed) data. */
  dataStart: number;
  /** End of this entry's bytes in the file: data plus its data descriptor, if any. */
  recordEnd: number;
}

export interface ZipDirectory {
  entries: ZipEntry[];
  centralDirectoryOffset: number;
  centralDirectorySize: number;
  eocdOffset: number;
  zip64: boolean;
  commentBytes: number;
}

export interface ZipReadOptions {
  limits: ContainerLimits;
  /** Does this region (bytes before the first local header) parse as a pickle? Then it is a polyglot. */
  isPickle?: (prefix: ByteSource) => boolean;
}

export function malformed(message: string, details?: Record<string, unknown>): GatewayError {
  return new GatewayError("malformed_container", `zip: ${message}`, details);
}

export function limitExceeded(message: string, details?: Record<string, unknown>): GatewayError {
  return new GatewayError("limit_exceeded", `zip: ${message}`, details);
}

export function cursorAt(source: ByteSource, start: number, end: number, what: string): Cursor {
  if (start < 0 || end > source.size || start > end) {
    throw malformed(`${what} [${start}, ${end}) lies outside the file of ${source.size} bytes`);
  }
  return new Cursor(source, { start, end, errorCode: "malformed_container", what: `zip ${what}`, windowSize: 64 * 1024 });
}

export interface Extra {
  fields: Map<number, Uint8Array>;
}

export function parseExtra(raw: Uint8Array, where: string): Extra {
  const c = Cursor.ofBytes(raw, { errorCode: "malformed_container", what: `zip ${where} extra field` });
  const fields = new Map<number, Uint8Array>();
  while (!c.atEnd) {
    const id = c.u16le("extra field id");
    const len = c.u16le("extra field length");
    const data = c.bytes(len, "extra field data");
    if (fields.has(id)) throw malformed(`${where}: duplicate extra field 0x${id.toString(16)}`);
    fields.set(id, data);
  }
  return { fields };
}

/**
 * Info-ZIP Unicode Path (0x7075): Python 3.12+ and some extractors replace the entry name with it,
 * other readers do not, so the name every check saw might not be the name a loader uses. Refused.
 */
export const EXTRA_UNICODE_PATH = 0x7075;
export const HOST_UNIX = 3;

export function checkExtraIds(extra: Extra, where: string): void {
  if (extra.fields.has(EXTRA_UNICODE_PATH)) throw malformed(`${where} carries an Info-ZIP Unicode Path field (readers disagree on the name)`);
}
