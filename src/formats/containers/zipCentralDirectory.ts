import { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import type { ContainerLimits } from "../../limits";
import { ZIP_EOCD_SEARCH_BYTES } from "../../limits";
import { checkMemberPath } from "./memberPath";
import {
  ALLOWED_FLAGS,
  checkExtraIds,
  cursorAt,
  FLAG_ENCRYPTED,
  FLAG_STRONG_ENCRYPTION,
  FLAG_UTF8,
  HOST_UNIX,
  limitExceeded,
  malformed,
  METHOD_DEFLATE,
  METHOD_STORED,
  parseExtra,
  SIG_CENTRAL,
  SIG_EOCD,
  SIG_ZIP64_EOCD,
  SIG_ZIP64_LOCATOR,
  EXTRA_ZIP64,
  U16_MAX,
  U32_MAX,
  type Extra,
  type ZipEntry,
} from "./zipRecords";

/**
 * Step 1 of the zip reader (zip.ts): find the one end-of-central-directory record, resolve zip64,
 * and read and check every central-directory record (names, flags, methods, sizes, limits).
 */

export interface Eocd {
  offset: number;
  entriesOnDisk: number;
  entriesTotal: number;
  cdSize: number;
  cdOffset: number;
  commentLength: number;
  disk: number;
  cdDisk: number;
}

export function parseEocdAt(tail: Uint8Array, i: number, tailStart: number): Eocd | undefined {
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
export function isPlausibleEocd(e: Eocd): boolean {
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

export function locateEocd(source: ByteSource): Eocd {
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

export interface DirectoryBounds {
  entries: number;
  cdOffset: number;
  cdSize: number;
  /** Where the central directory must end: the zip64 EOCD record, or the EOCD. */
  cdEnd: number;
  zip64: boolean;
}

export function readZip64(source: ByteSource, eocd: Eocd): DirectoryBounds {
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

export interface Zip64Values {
  usize: number;
  csize: number;
  offset: number;
}

/** Resolve saturated 32-bit fields of a central record from its zip64 extra field, which holds exactly the saturated ones, in order. */
export function applyZip64(extra: Extra, values: Zip64Values, diskSaturated: boolean, where: string): Zip64Values & { usedZip64: boolean } {
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

export interface CentralEntry extends ZipEntry {
  rawName: Uint8Array;
  zip64: boolean;
}

export function readCentralDirectory(source: ByteSource, bounds: DirectoryBounds, limits: ContainerLimits): CentralEntry[] {
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
