import { closeSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { crc32, createInflateRaw } from "node:zlib";
import { Cursor } from "../../bytes/cursor";
import { BufferSource, FileSource, SliceSource, type ByteSource } from "../../bytes/source";
import { GatewayError, isGatewayError } from "../../errors";
import type { ContainerLimits } from "../../limits";
import { ZIP_EOCD_SEARCH_BYTES, ZIP_INFLATE_IN_MEMORY_BYTES } from "../../limits";
import type { ArchiveContents, ArchiveMember, OpenedMember } from "./archive";
import type { FormatContext } from "../context";
import { throwIfEnvironmental } from "../ioFailure";

/**
 * A zip reader written on the bytes cursor, because every check below is a place where two zip
 * readers have disagreed and a scanner has been bypassed (CVE-2025-10156: a bad CRC made the
 * scanner give up while torch, which ignores CRCs, loaded the file). The rule is: model every
 * loader (Python's zipfile, PyTorch's miniz-based reader), then accept only archives on which all
 * of them must agree:
 *
 * - one end-of-central-directory record, found in the last 64 KiB + 22 bytes, whose comment ends
 *   exactly at the end of the file, and no other plausible EOCD whose comment would also end there;
 * - zip64 locator and record consistent with each other and with the EOCD;
 * - the central directory ends exactly where the (zip64) EOCD starts, so there is no prefix shift
 *   (Python's zipfile silently re-bases all offsets when it finds one: self-extracting archives);
 * - every central-directory entry matches its local header (name bytes, method, flags, CRC and
 *   sizes, or the data descriptor when bit 3 is set);
 * - [local header, end of data/descriptor) ranges tile [0, central directory) exactly: no bytes
 *   before the first entry (a pickle there is a polyglot), no gaps, no overlaps;
 * - no encrypted entries, no unknown flag bits, methods stored(0) and deflate(8) only;
 * - names: relative, no "..", ".", empty segments, backslashes, NUL, drive letters; non-ASCII only
 *   with the UTF-8 flag (without it Python decodes CP437 and others UTF-8); no duplicates;
 * - entry count, per-entry and total uncompressed bytes and the compression ratio under limits;
 * - CRC-32 and size of every entry verified when it is opened (streaming, 1 MiB chunks).
 */

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;

const FLAG_ENCRYPTED = 0x0001;
const FLAG_DESCRIPTOR = 0x0008;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;
/** Deflate option bits (1, 2), data descriptor (3), UTF-8 names (11). Everything else is refused. */
const ALLOWED_FLAGS = 0x0002 | 0x0004 | FLAG_DESCRIPTOR | FLAG_UTF8;

const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

/** APPNOTE 4.3.7: the local header's fixed part, before the name and extra field. */
const LOCAL_HEADER_BYTES = 30;
/** APPNOTE 4.3.9: optional signature, CRC-32, then two 4-byte (or, zip64, 8-byte) sizes. */
const DESCRIPTOR_NARROW_BYTES = 4 + 4 + 4 + 4;
const DESCRIPTOR_WIDE_BYTES = 4 + 4 + 8 + 8;

const EXTRA_ZIP64 = 0x0001;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
const CRC_CHUNK = 1024 * 1024;

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

function malformed(message: string, details?: Record<string, unknown>): GatewayError {
  return new GatewayError("malformed_container", `zip: ${message}`, details);
}

function limitExceeded(message: string, details?: Record<string, unknown>): GatewayError {
  return new GatewayError("limit_exceeded", `zip: ${message}`, details);
}

function cursorAt(source: ByteSource, start: number, end: number, what: string): Cursor {
  if (start < 0 || end > source.size || start > end) {
    throw malformed(`${what} [${start}, ${end}) lies outside the file of ${source.size} bytes`);
  }
  return new Cursor(source, { start, end, errorCode: "malformed_container", what: `zip ${what}`, windowSize: 64 * 1024 });
}

interface Eocd {
  offset: number;
  entriesOnDisk: number;
  entriesTotal: number;
  cdSize: number;
  cdOffset: number;
  commentLength: number;
  disk: number;
  cdDisk: number;
}

function parseEocdAt(tail: Uint8Array, i: number, tailStart: number): Eocd | undefined {
  if (i + 22 > tail.length) return undefined;
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  if (view.getUint32(i, true) !== SIG_EOCD) return undefined;
  return {
    offset: tailStart + i,
    disk: view.getUint16(i + 4, true),
    cdDisk: view.getUint16(i + 6, true),
    entriesOnDisk: view.getUint16(i + 8, true),
    entriesTotal: view.getUint16(i + 10, true),
    cdSize: view.getUint32(i + 12, true),
    cdOffset: view.getUint32(i + 16, true),
    commentLength: view.getUint16(i + 20, true),
  };
}

/** A candidate EOCD that some reader could take as the real one. */
function isPlausibleEocd(e: Eocd): boolean {
  const saturated = e.cdOffset === U32_MAX || e.cdSize === U32_MAX || e.entriesTotal === U16_MAX;
  if (saturated) return true;
  return e.disk === 0 && e.cdDisk === 0 && e.entriesOnDisk === e.entriesTotal && e.cdOffset + e.cdSize <= e.offset;
}

/**
 * The EOCD records in the last 64 KiB + 22 bytes, nearest the end first. Used both by the reader
 * and by the polyglot check of other formats (a zip directory glued to a pickle or an npy).
 */
export function findEocdCandidates(source: ByteSource): Eocd[] {
  const tailLength = Math.min(source.size, ZIP_EOCD_SEARCH_BYTES);
  const tailStart = source.size - tailLength;
  const tail = new Uint8Array(tailLength);
  source.readAt(tail, tailStart);
  const found: Eocd[] = [];
  for (let i = tailLength - 22; i >= 0; i--) {
    if (tail[i] !== 0x50 || tail[i + 1] !== 0x4b || tail[i + 2] !== 0x05 || tail[i + 3] !== 0x06) continue;
    const e = parseEocdAt(tail, i, tailStart);
    if (e) found.push(e);
  }
  return found;
}

/**
 * True when the end of the source holds a zip directory that a zip reader would open: an EOCD
 * whose comment reaches the end of the file, with a plausible layout. For formats other than zip
 * this makes the file a polyglot.
 */
export function hasZipTail(source: ByteSource): boolean {
  return findEocdCandidates(source).some((e) => isPlausibleEocd(e) && e.offset + 22 + e.commentLength === source.size);
}

function locateEocd(source: ByteSource): Eocd {
  const candidates = findEocdCandidates(source);
  const last = candidates[0];
  if (!last) throw malformed("no end-of-central-directory record in the last 64 KiB of the file");
  if (!isPlausibleEocd(last)) {
    throw malformed("the last end-of-central-directory record is not a consistent single-disk directory", { offset: last.offset });
  }
  if (last.offset + 22 + last.commentLength !== source.size) {
    throw malformed("bytes after the end-of-central-directory comment (or a comment running past the end)", {
      offset: last.offset,
      trailing: source.size - (last.offset + 22 + last.commentLength),
    });
  }
  for (const other of candidates.slice(1)) {
    if (isPlausibleEocd(other) && other.offset + 22 + other.commentLength === source.size) {
      throw malformed("two end-of-central-directory records each reach the end of the file: readers would disagree", {
        offsets: [other.offset, last.offset],
      });
    }
  }
  return last;
}

interface DirectoryBounds {
  entries: number;
  cdOffset: number;
  cdSize: number;
  /** Where the central directory must end: the zip64 EOCD record, or the EOCD. */
  cdEnd: number;
  zip64: boolean;
}

function readZip64(source: ByteSource, eocd: Eocd): DirectoryBounds {
  const saturated = eocd.cdOffset === U32_MAX || eocd.cdSize === U32_MAX || eocd.entriesTotal === U16_MAX || eocd.entriesOnDisk === U16_MAX;
  const locatorOffset = eocd.offset - 20;
  let hasLocator = false;
  if (locatorOffset >= 0) {
    const sig = new Uint8Array(4);
    source.readAt(sig, locatorOffset);
    hasLocator = new DataView(sig.buffer).getUint32(0, true) === SIG_ZIP64_LOCATOR;
  }
  if (!hasLocator) {
    if (saturated) throw malformed("end-of-central-directory fields are saturated but there is no zip64 locator");
    return { entries: eocd.entriesTotal, cdOffset: eocd.cdOffset, cdSize: eocd.cdSize, cdEnd: eocd.offset, zip64: false };
  }
  const loc = cursorAt(source, locatorOffset, eocd.offset, "zip64 locator");
  loc.u32le();
  const locDisk = loc.u32le("zip64 locator disk");
  const recordOffset = loc.u64le("zip64 record offset");
  const totalDisks = loc.u32le("zip64 disk count");
  if (locDisk !== 0 || totalDisks !== 1) throw malformed("multi-disk zip64 archives are not supported", { locDisk, totalDisks });
  // Python's zipfile reads the zip64 record right before the locator and ignores this offset;
  // miniz follows the offset. Both must name the same 56 bytes.
  if (recordOffset + 56 !== locatorOffset) {
    throw malformed("zip64 locator does not point at a 56-byte zip64 record right before it", { recordOffset, locatorOffset });
  }
  const rec = cursorAt(source, recordOffset, locatorOffset, "zip64 end-of-central-directory record");
  if (rec.u32le() !== SIG_ZIP64_EOCD) throw malformed("zip64 locator points at no zip64 record", { recordOffset });
  const recordSize = rec.u64le("zip64 record size");
  if (recordSize !== 44) throw malformed("zip64 record with extensible data is not supported", { recordSize });
  rec.u16le();
  rec.u16le();
  const disk = rec.u32le();
  const cdDisk = rec.u32le();
  const entriesOnDisk = rec.u64le("zip64 entries on disk");
  const entriesTotal = rec.u64le("zip64 entries");
  const cdSize = rec.u64le("zip64 central directory size");
  const cdOffset = rec.u64le("zip64 central directory offset");
  if (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== entriesTotal) throw malformed("multi-disk zip64 record");
  const agree = (narrow: number, max: number, wide: number): boolean => narrow === max || narrow === wide;
  if (
    !agree(eocd.entriesTotal, U16_MAX, entriesTotal) ||
    !agree(eocd.entriesOnDisk, U16_MAX, entriesOnDisk) ||
    !agree(eocd.cdSize, U32_MAX, cdSize) ||
    !agree(eocd.cdOffset, U32_MAX, cdOffset)
  ) {
    throw malformed("zip64 record disagrees with the end-of-central-directory record", {
      eocd: [eocd.entriesTotal, eocd.cdSize, eocd.cdOffset],
      zip64: [entriesTotal, cdSize, cdOffset],
    });
  }
  return { entries: entriesTotal, cdOffset, cdSize, cdEnd: recordOffset, zip64: true };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeName(raw: Uint8Array, flags: number): string {
  const ascii = raw.every((b) => b < 0x80);
  if (!ascii && (flags & FLAG_UTF8) === 0) {
    throw malformed("non-ASCII entry name without the UTF-8 flag: readers decode it differently (CP437 vs UTF-8)");
  }
  try {
    return utf8.decode(raw);
  } catch {
    throw malformed("entry name is not valid UTF-8");
  }
}

/** Path rules shared with the tar reader: the name every extractor would write is this name. */
export function checkMemberPath(name: string, what = "entry"): void {
  const fail = (why: string): never => {
    throw malformed(`${what} name ${JSON.stringify(name.slice(0, 200))} ${why}`);
  };
  if (name.length === 0) fail("is empty");
  if (name.includes("\0")) fail("contains NUL");
  if (name.includes("\\")) fail("contains a backslash");
  if (name.startsWith("/")) fail("is absolute");
  if (/^[A-Za-z]:/.test(name)) fail("starts with a drive letter");
  const segments = (name.endsWith("/") ? name.slice(0, -1) : name).split("/");
  for (const seg of segments) {
    if (seg === "..") fail("has a '..' segment");
    if (seg === ".") fail("has a '.' segment");
    if (seg === "") fail("has an empty segment");
  }
  for (const ch of name) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f) fail("contains a control character");
  }
}

interface Extra {
  fields: Map<number, Uint8Array>;
}

function parseExtra(raw: Uint8Array, where: string): Extra {
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
const EXTRA_UNICODE_PATH = 0x7075;
const HOST_UNIX = 3;

function checkExtraIds(extra: Extra, where: string): void {
  if (extra.fields.has(EXTRA_UNICODE_PATH)) throw malformed(`${where} carries an Info-ZIP Unicode Path field (readers disagree on the name)`);
}

interface Zip64Values {
  usize: number;
  csize: number;
  offset: number;
}

/** Resolve saturated 32-bit fields of a central record from its zip64 extra field, which holds exactly the saturated ones, in order. */
function applyZip64(extra: Extra, values: Zip64Values, diskSaturated: boolean, where: string): Zip64Values & { usedZip64: boolean } {
  const field = extra.fields.get(EXTRA_ZIP64);
  const needUsize = values.usize === U32_MAX;
  const needCsize = values.csize === U32_MAX;
  const needOffset = values.offset === U32_MAX;
  if (!field) {
    if (needUsize || needCsize || needOffset || diskSaturated) throw malformed(`${where}: saturated size/offset without a zip64 extra field`);
    return { ...values, usedZip64: false };
  }
  const c = Cursor.ofBytes(field, { errorCode: "malformed_container", what: `zip ${where} zip64 extra` });
  const out = { ...values, usedZip64: true };
  if (needUsize) out.usize = c.u64le("zip64 uncompressed size");
  if (needCsize) out.csize = c.u64le("zip64 compressed size");
  if (needOffset) out.offset = c.u64le("zip64 local header offset");
  if (diskSaturated) c.u32le("zip64 disk number");
  if (!c.atEnd) throw malformed(`${where}: zip64 extra field holds ${c.remaining} unexpected bytes`);
  return out;
}

interface CentralEntry extends ZipEntry {
  rawName: Uint8Array;
  zip64: boolean;
}

function readCentralDirectory(source: ByteSource, bounds: DirectoryBounds, limits: ContainerLimits): CentralEntry[] {
  if (bounds.entries > limits.maxEntries) {
    throw limitExceeded(`${bounds.entries} entries exceed the limit of ${limits.maxEntries}`, { entries: bounds.entries, limit: limits.maxEntries });
  }
  if (bounds.cdOffset + bounds.cdSize !== bounds.cdEnd) {
    // Python's zipfile would re-base every offset by the difference (prepended data).
    throw malformed("central directory does not end where the end-of-central-directory record starts", {
      cdOffset: bounds.cdOffset,
      cdSize: bounds.cdSize,
      expectedEnd: bounds.cdEnd,
    });
  }
  const c = cursorAt(source, bounds.cdOffset, bounds.cdEnd, "central directory");
  const entries: CentralEntry[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (let i = 0; i < bounds.entries; i++) {
    const at = c.position;
    if (c.u32le("central directory signature") !== SIG_CENTRAL) throw malformed(`central directory entry ${i} has a bad signature`, { offset: at });
    const versionMadeBy = c.u16le();
    c.u16le();
    const flags = c.u16le();
    const method = c.u16le();
    c.u16le();
    c.u16le();
    const crc = c.u32le();
    const csize32 = c.u32le();
    const usize32 = c.u32le();
    const nameLength = c.u16le();
    const extraLength = c.u16le();
    const commentLength = c.u16le();
    const diskStart = c.u16le();
    c.u16le();
    const externalAttributes = c.u32le();
    const offset32 = c.u32le();
    if (nameLength > limits.maxEntryNameBytes) {
      throw limitExceeded(`entry name of ${nameLength} bytes exceeds the limit of ${limits.maxEntryNameBytes}`);
    }
    const rawName = c.bytes(nameLength, "entry name");
    const extra = parseExtra(c.bytes(extraLength, "extra field"), `entry ${i}`);
    c.skip(commentLength, "entry comment");
    if (diskStart !== 0 && diskStart !== U16_MAX) throw malformed(`entry ${i} lives on disk ${diskStart}`);
    const name = decodeName(rawName, flags);
    const where = `entry ${JSON.stringify(name.slice(0, 200))}`;
    checkMemberPath(name);
    checkExtraIds(extra, where);
    // A Unix symlink entry (mode S_IFLNK in the high external attributes): extractors create a
    // link that can point anywhere; tar symlinks are refused for the same reason.
    if (versionMadeBy >> 8 === HOST_UNIX && ((externalAttributes >>> 16) & 0xf000) === 0xa000) throw malformed(`${where} is a symbolic link`);
    if ((flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION)) !== 0) throw malformed(`${where} is encrypted`, { flags });
    if ((flags & ~ALLOWED_FLAGS) !== 0) throw malformed(`${where} has unsupported flag bits 0x${flags.toString(16)}`, { flags });
    if (method !== METHOD_STORED && method !== METHOD_DEFLATE)
      throw malformed(`${where} uses compression method ${method} (only stored and deflate)`, { method });
    const z = applyZip64(extra, { usize: usize32, csize: csize32, offset: offset32 }, diskStart === U16_MAX, where);
    const isDirectory = name.endsWith("/");
    const key = isDirectory ? name.slice(0, -1) : name;
    if (seen.has(key)) throw malformed(`duplicate ${where}`);
    seen.add(key);
    if (isDirectory && z.usize !== 0) throw malformed(`directory ${where} has ${z.usize} bytes of content`);
    if (method === METHOD_STORED && z.csize !== z.usize) throw malformed(`stored ${where} has compressed size ${z.csize} != size ${z.usize}`);
    if (z.usize > limits.maxEntryUncompressedBytes) {
      throw limitExceeded(`${where} declares ${z.usize} uncompressed bytes, limit ${limits.maxEntryUncompressedBytes}`);
    }
    if (method === METHOD_DEFLATE) {
      if (z.csize === 0) throw malformed(`deflated ${where} has no compressed bytes`);
      if (z.usize > z.csize * limits.maxCompressionRatio) {
        throw limitExceeded(`${where} compression ratio ${Math.floor(z.usize / z.csize)} exceeds the limit of ${limits.maxCompressionRatio}`);
      }
    }
    total += z.usize;
    if (total > limits.maxTotalUncompressedBytes) {
      throw limitExceeded(`entries declare more than ${limits.maxTotalUncompressedBytes} uncompressed bytes in total`);
    }
    entries.push({
      name,
      rawName,
      isDirectory,
      method,
      flags,
      crc32: crc,
      compressedSize: z.csize,
      uncompressedSize: z.usize,
      localHeaderOffset: z.offset,
      dataStart: 0,
      recordEnd: 0,
      zip64: z.usedZip64,
    });
  }
  if (!c.atEnd) throw malformed(`${c.remaining} bytes in the central directory after its ${bounds.entries} entries`);
  return entries;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Cross-check one entry's local header (and data descriptor) against its central record. */
function checkLocalHeader(source: ByteSource, e: CentralEntry, cdOffset: number): void {
  const where = `entry ${JSON.stringify(e.name.slice(0, 200))}`;
  // Exact-sized reads: the fixed 30 bytes, then name + extra. A cursor reaching to the central
  // directory would fill a 64 KiB window of tensor data per entry (about 50% more bytes read than
  // a torch checkpoint of a thousand tensors holds), only to use the first few dozen.
  const fixedEnd = e.localHeaderOffset + LOCAL_HEADER_BYTES;
  if (fixedEnd > cdOffset) throw malformed(`${where}: local header at ${e.localHeaderOffset} runs into the central directory`, { cdOffset });
  const c = cursorAt(source, e.localHeaderOffset, fixedEnd, `${where} local header`);
  if (c.u32le("local header signature") !== SIG_LOCAL) throw malformed(`${where}: no local header at offset ${e.localHeaderOffset}`);
  c.u16le();
  const flags = c.u16le();
  const method = c.u16le();
  c.u16le();
  c.u16le();
  const crc = c.u32le();
  const csize32 = c.u32le();
  const usize32 = c.u32le();
  const nameLength = c.u16le();
  const extraLength = c.u16le();
  const variableEnd = fixedEnd + nameLength + extraLength;
  if (variableEnd > cdOffset) throw malformed(`${where}: local name and extra field run into the central directory`, { cdOffset });
  const v = cursorAt(source, fixedEnd, variableEnd, `${where} local name and extra field`);
  const rawName = v.bytes(nameLength, "local name");
  const extra = parseExtra(v.bytes(extraLength, "local extra field"), `${where} local header`);
  checkExtraIds(extra, `${where} local header`);
  if (!bytesEqual(rawName, e.rawName)) throw malformed(`${where}: local header names a different file`);
  if (flags !== e.flags) throw malformed(`${where}: local flags 0x${flags.toString(16)} != central 0x${e.flags.toString(16)}`);
  if (method !== e.method) throw malformed(`${where}: local method ${method} != central ${e.method}`);
  const hasDescriptor = (flags & FLAG_DESCRIPTOR) !== 0;
  const local = localSizes(extra, csize32, usize32, e, hasDescriptor, where);
  if (!hasDescriptor) {
    if (crc !== e.crc32 || local.csize !== e.compressedSize || local.usize !== e.uncompressedSize) {
      throw malformed(`${where}: local header CRC/sizes disagree with the central directory`, {
        local: [crc, local.csize, local.usize],
        central: [e.crc32, e.compressedSize, e.uncompressedSize],
      });
    }
  } else {
    // With a data descriptor the local fields are zero (streamed) or already the real values.
    const zeroOrEqual = (v: number, want: number): boolean => v === 0 || v === want;
    if (!zeroOrEqual(crc, e.crc32) || !zeroOrEqual(local.csize, e.compressedSize) || !zeroOrEqual(local.usize, e.uncompressedSize)) {
      throw malformed(`${where}: local header CRC/sizes disagree with the central directory`);
    }
  }
  e.dataStart = variableEnd;
  const dataEnd = e.dataStart + e.compressedSize;
  if (dataEnd > cdOffset) throw malformed(`${where}: data runs into the central directory`, { dataEnd, cdOffset });
  e.recordEnd = dataEnd;
  if (hasDescriptor) {
    // 64-bit sizes when the entry carries a zip64 extra (what miniz and Python's zipfile write);
    // the other width is tried too, and whichever matches the central directory decides where
    // the entry ends (readers take CRC and sizes from the central directory, never from here).
    const wideFirst = e.zip64 || extra.fields.has(EXTRA_ZIP64);
    const end = readDescriptor(source, e, dataEnd, cdOffset, wideFirst) ?? readDescriptor(source, e, dataEnd, cdOffset, !wideFirst);
    if (end === undefined) throw malformed(`${where}: data descriptor disagrees with the central directory`);
    e.recordEnd = end;
  }
}

/**
 * The sizes a local header declares, with its zip64 extra field cross-checked. APPNOTE 4.5.3 puts
 * both sizes there (uncompressed first); Python's zipfile writes them (np.savez forces zip64) next
 * to real or saturated 32-bit fields; miniz (torch) writes the sizes only for entries >= 4 GiB
 * (with zeroed compressed size beside a data descriptor) and the local header offset for entries
 * past 4 GiB. No reader uses these values (all take the central directory's), so every form is
 * accepted only when each value agrees with the central record: a disagreement is a lie one
 * reader might believe.
 */
function localSizes(extra: Extra, csize32: number, usize32: number, e: CentralEntry, hasDescriptor: boolean, where: string): { csize: number; usize: number } {
  const field = extra.fields.get(EXTRA_ZIP64);
  const out = { csize: csize32, usize: usize32 };
  const saturated = usize32 === U32_MAX || csize32 === U32_MAX;
  if (!field) {
    if (saturated) throw malformed(`${where}: saturated local sizes without a zip64 extra field`);
    return out;
  }
  const bad = (what: string): never => {
    throw malformed(`${where}: local zip64 extra field ${what} disagrees with the central directory`);
  };
  const fits = (v: number, want: number): boolean => v === want || (hasDescriptor && v === 0);
  const z = Cursor.ofBytes(field, { errorCode: "malformed_container", what: `zip ${where} local zip64 extra` });
  if (field.length === 8 && !(usize32 === U32_MAX && csize32 === U32_MAX)) {
    // One value: the one saturated size, or (miniz) the local header offset.
    const v = z.u64le("zip64 value");
    if (usize32 === U32_MAX) out.usize = v;
    else if (csize32 === U32_MAX) out.csize = v;
    else if (v !== e.localHeaderOffset) bad("offset");
    return out;
  }
  if (field.length !== 16 && field.length !== 24 && field.length !== 28) throw malformed(`${where}: local zip64 extra field of ${field.length} bytes`);
  const usize = z.u64le("zip64 uncompressed size");
  const csize = z.u64le("zip64 compressed size");
  if (!fits(usize, e.uncompressedSize)) bad("uncompressed size");
  if (!fits(csize, e.compressedSize)) bad("compressed size");
  if (field.length >= 24 && z.u64le("zip64 offset") !== e.localHeaderOffset) bad("offset");
  if (field.length === 28 && z.u32le("zip64 disk") !== 0) bad("disk number");
  if (usize32 === U32_MAX) out.usize = usize;
  if (csize32 === U32_MAX) out.csize = csize;
  return out;
}

/** The end of a data descriptor of the given width that matches the central record, if it does. */
function readDescriptor(source: ByteSource, e: ZipEntry, at: number, cdOffset: number, wide: boolean): number | undefined {
  try {
    // At most signature + CRC + two sizes: read those bytes, not a window of what follows.
    const d = cursorAt(source, at, Math.min(cdOffset, at + (wide ? DESCRIPTOR_WIDE_BYTES : DESCRIPTOR_NARROW_BYTES)), "data descriptor");
    let first = d.u32le("data descriptor");
    if (first === SIG_DESCRIPTOR && e.crc32 !== SIG_DESCRIPTOR) first = d.u32le("data descriptor CRC");
    const dcsize = wide ? d.u64le("descriptor compressed size") : d.u32le("descriptor compressed size");
    const dusize = wide ? d.u64le("descriptor size") : d.u32le("descriptor size");
    return first === e.crc32 && dcsize === e.compressedSize && dusize === e.uncompressedSize ? d.position : undefined;
  } catch (err) {
    if (isGatewayError(err)) return undefined;
    throw err;
  }
}

/**
 * Read and cross-check the whole structure of a zip (no entry data yet). Throws GatewayError
 * (malformed_container, limit_exceeded, polyglot) at the first disagreement.
 */
export function readZipDirectory(source: ByteSource, options: ZipReadOptions): ZipDirectory {
  const eocd = locateEocd(source);
  const bounds = readZip64(source, eocd);
  const entries = readCentralDirectory(source, bounds, options.limits);
  const byOffset = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (const e of byOffset) checkLocalHeader(source, e, bounds.cdOffset);
  let expected = 0;
  for (const e of byOffset) {
    if (e.localHeaderOffset < expected) {
      throw malformed(`entry ${JSON.stringify(e.name.slice(0, 200))} overlaps the previous entry`, { offset: e.localHeaderOffset, previousEnd: expected });
    }
    if (e.localHeaderOffset > expected) {
      if (expected === 0) {
        const prefix = new SliceSource(source, 0, e.localHeaderOffset);
        if (options.isPickle?.(prefix) === true) {
          throw new GatewayError("polyglot", "zip: a pickle sits before the first local header (the file is both a pickle and a zip)", {
            prefixBytes: e.localHeaderOffset,
          });
        }
        throw malformed(`${e.localHeaderOffset} bytes before the first local header`, { prefixBytes: e.localHeaderOffset });
      }
      throw malformed(`${e.localHeaderOffset - expected} unaccounted bytes before entry ${JSON.stringify(e.name.slice(0, 200))}`, {
        offset: expected,
      });
    }
    expected = e.recordEnd;
  }
  if (expected !== bounds.cdOffset) {
    if (expected === 0 && bounds.cdOffset > 0 && options.isPickle?.(new SliceSource(source, 0, bounds.cdOffset)) === true) {
      throw new GatewayError("polyglot", "zip: a pickle sits before the central directory of an empty zip");
    }
    throw malformed(`${bounds.cdOffset - expected} unaccounted bytes before the central directory`, { offset: expected });
  }
  return {
    entries: entries.map(({ rawName: _r, zip64: _z, ...rest }) => rest),
    centralDirectoryOffset: bounds.cdOffset,
    centralDirectorySize: bounds.cdSize,
    eocdOffset: eocd.offset,
    zip64: bounds.zip64,
    commentBytes: eocd.commentLength,
  };
}

/** CRC-32 of a region, streamed in 1 MiB chunks (memory stays flat for multi-GB tensors). */
/**
 * One chunk buffer for every CRC pass (crc32Of is synchronous, so passes never interleave). A new
 * 1 MiB buffer per entry is fresh memory the kernel must fault in page by page: on a torch.save of
 * a thousand tensors that cost more time than the reads themselves.
 */
let crcScratch: Uint8Array | undefined;

export function crc32Of(source: ByteSource, start = 0, length = source.size - start): number {
  crcScratch ??= new Uint8Array(CRC_CHUNK);
  const buf = crcScratch;
  let crc = 0;
  let pos = 0;
  while (pos < length) {
    const n = Math.min(buf.length, length - pos);
    const view = n === buf.length ? buf : buf.subarray(0, n);
    const got = source.readAt(view, start + pos);
    if (got !== n) throw malformed("file ended while reading an entry", { offset: start + pos });
    crc = crc32(view, crc);
    pos += n;
  }
  return crc >>> 0;
}

function checkBudget(ctx: FormatContext, add: number): void {
  ctx.budget.uncompressedBytes += add;
  if (ctx.budget.uncompressedBytes > ctx.containerLimits.maxTotalUncompressedBytes) {
    throw limitExceeded(`decompressed output of the artifact exceeds ${ctx.containerLimits.maxTotalUncompressedBytes} bytes`);
  }
}

/** Inflate one entry into `sink`, bounded by its declared size, verifying size and CRC. */
async function inflateEntry(source: ByteSource, e: ZipEntry, ctx: FormatContext, sink: (chunk: Buffer) => void): Promise<void> {
  const where = `entry ${JSON.stringify(e.name.slice(0, 200))}`;
  let produced = 0;
  let crc = 0;
  async function* compressed(): AsyncGenerator<Buffer> {
    let pos = 0;
    while (pos < e.compressedSize) {
      const n = Math.min(CRC_CHUNK, e.compressedSize - pos);
      const buf = Buffer.allocUnsafe(n);
      if (source.readAt(buf, e.dataStart + pos) !== n) throw malformed(`${where}: file ended inside the compressed data`);
      pos += n;
      yield buf;
      await Promise.resolve();
    }
  }
  const out = new Writable({
    write(chunk: Buffer, _enc, callback): void {
      try {
        produced += chunk.length;
        if (produced > e.uncompressedSize) throw malformed(`${where}: inflates to more than its declared ${e.uncompressedSize} bytes`);
        checkBudget(ctx, chunk.length);
        crc = crc32(chunk, crc);
        sink(chunk);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
  try {
    await pipeline(Readable.from(compressed()), createInflateRaw({ chunkSize: 256 * 1024 }), out);
  } catch (err) {
    if (isGatewayError(err)) throw err;
    // A full disk while writing the member's temp file is not a corrupt stream.
    throwIfEnvironmental(err);
    throw malformed(`${where}: deflate stream is corrupt`, { cause: err instanceof Error ? err.message : String(err) });
  }
  if (produced !== e.uncompressedSize) throw malformed(`${where}: inflated to ${produced} bytes, declared ${e.uncompressedSize}`);
  if (crc >>> 0 !== e.crc32) throw malformed(`${where}: CRC-32 mismatch`, { expected: e.crc32, actual: crc >>> 0 });
}

/**
 * Open one entry: stored entries are a window on the file (CRC verified first, streaming);
 * deflated entries are inflated (bounded) into memory when small, else into a temp file in
 * ctx.tempDir, and verified before the bytes are returned.
 */
export async function openZipEntry(source: ByteSource, e: ZipEntry, ctx: FormatContext): Promise<OpenedMember> {
  const where = `entry ${JSON.stringify(e.name.slice(0, 200))}`;
  if (e.method === METHOD_STORED) {
    const crc = crc32Of(source, e.dataStart, e.compressedSize);
    if (crc !== e.crc32) throw malformed(`${where}: CRC-32 mismatch`, { expected: e.crc32, actual: crc });
    return { source: new SliceSource(source, e.dataStart, e.compressedSize), close: () => undefined };
  }
  if (e.uncompressedSize <= ZIP_INFLATE_IN_MEMORY_BYTES) {
    const chunks: Buffer[] = [];
    await inflateEntry(source, e, ctx, (chunk) => chunks.push(chunk));
    return { source: new BufferSource(Buffer.concat(chunks)), close: () => undefined };
  }
  const tempPath = join(ctx.tempDir, `zip-member-${randomBytes(8).toString("hex")}`);
  const fd = openSync(tempPath, "wx", 0o600);
  let fdOpen = true;
  try {
    await inflateEntry(source, e, ctx, (chunk) => {
      let done = 0;
      while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
    });
    closeSync(fd);
    fdOpen = false;
    const file = new FileSource(tempPath);
    return {
      source: file,
      close: () => {
        file.close();
        unlinkSync(tempPath);
      },
    };
  } catch (err) {
    if (fdOpen) closeSync(fd);
    unlinkSync(tempPath);
    throw err;
  }
}

/**
 * The zip reader the dispatcher calls: every structural check, then the member list for
 * ctx.inspectArchive. Members are opened (and CRC-verified) by the layout inspectors.
 */
export function readZip(source: ByteSource, path: string, ctx: FormatContext, options: Omit<ZipReadOptions, "limits"> = {}): ArchiveContents {
  const dir = readZipDirectory(source, { ...options, limits: ctx.containerLimits });
  const members: ArchiveMember[] = dir.entries.map((e) => ({
    path: e.isDirectory ? e.name.slice(0, -1) : e.name,
    size: e.uncompressedSize,
    isDirectory: e.isDirectory,
    open: () => openZipEntry(source, e, ctx),
  }));
  return {
    kind: "zip",
    members,
    node: {
      kind: "zip",
      path,
      format: "zip",
      findings: [],
      details: {
        entries: dir.entries.length,
        zip64: dir.zip64,
        commentBytes: dir.commentBytes,
        deflatedEntries: dir.entries.filter((e) => e.method === METHOD_DEFLATE).length,
      },
      children: [],
    },
  };
}
