import { SliceSource, type ByteSource } from "../../bytes/source";
import { GatewayError, isGatewayError } from "../../errors";
import type { InspectionNode } from "../../inspect/report";
import { MAX_TAR_EXTENDED_HEADER_BYTES, TAR_TRAILER_CHUNK_BYTES } from "../../limits";
import type { ArchiveContents, ArchiveMember } from "./archive";
import type { FormatContext, FormatInspector } from "../context";
import { checkMemberPath } from "./memberPath";

/**
 * The tar reader (POSIX.1-2001 ustar + pax extended headers, GNU long names). MLflow bundles and
 * other model directories travel as tar(.gz); tarfile, GNU tar and libarchive must all read the
 * same members from anything we accept, so we model what they share and refuse the rest:
 * - every header's checksum is verified (unsigned or signed sum, as tarfile and GNU tar accept);
 * - "ustar\0" (POSIX) or "ustar  \0" (GNU) magic only; v7 archives are refused;
 * - only regular files ('0', '\0') and directories ('5'); links, devices, FIFOs, sparse and
 *   contiguous files are refused (a symlink member is the classic tar path escape, CWE-59);
 * - names from pax `path`, GNU 'L' long names or ustar prefix/name, checked like zip names
 *   (relative, no "..", no backslash, no NUL, no duplicates, no file/directory conflicts);
 *   a pax `size` overrides the header's size as every reader does;
 * - the archive ends with two zero blocks, and anything after them must be zero padding: a loader
 *   that ignores the end marker must not find more members than we did.
 * Members are stored, not compressed: opening one is a slice of the source.
 */

const BLOCK = 512;

function malformed(message: string, details: Record<string, unknown> = {}): GatewayError {
  return new GatewayError("malformed_container", `tar: ${message}`, details);
}
function limitExceeded(message: string, details: Record<string, unknown> = {}): GatewayError {
  return new GatewayError("limit_exceeded", `tar: ${message}`, details);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeUtf8(bytes: Uint8Array, what: string, offset: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw malformed(`${what} is not valid UTF-8`, { offset });
  }
}

/** Bytes up to the first NUL (tarfile's nts). */
function nts(bytes: Uint8Array): Uint8Array {
  const i = bytes.indexOf(0);
  return i < 0 ? bytes : bytes.subarray(0, i);
}

/**
 * A numeric header field (tarfile's nti): octal ASCII, NUL/space terminated, or GNU base-256
 * (first byte 0x80 positive, 0xff negative). Returns a bigint; undefined for a negative value.
 */
function numericField(field: Uint8Array, what: string, offset: number): bigint | undefined {
  const first = field[0] ?? 0;
  if (first === 0x80 || first === 0xff) {
    let n = 0n;
    for (let i = 1; i < field.length; i++) n = (n << 8n) | BigInt(field[i] ?? 0);
    if (first === 0xff) return undefined;
    return n;
  }
  const text = String.fromCharCode(...nts(field)).trim();
  if (text === "") return 0n;
  if (!/^[0-7]+$/.test(text)) throw malformed(`${what} field is not octal`, { offset });
  return BigInt(`0o${text}`);
}

function isZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

function readBlock(source: ByteSource, at: number, length = BLOCK): Uint8Array {
  const buf = new Uint8Array(length);
  if (source.readAt(buf, at) !== length) throw malformed(`truncated at offset ${at}`, { offset: at });
  return buf;
}

/**
 * The data of a pax or GNU long-name header. tarfile parses the whole padded block (pax records
 * until a NUL, the long name until a NUL), GNU tar exactly `size` bytes: the padding after `size`
 * must be zero so both read the same records and name.
 */
function extendedData(source: ByteSource, dataOffset: number, size: number): Uint8Array {
  const block = readBlock(source, dataOffset, Math.ceil(size / BLOCK) * BLOCK);
  if (!isZero(block.subarray(size))) throw malformed("non-zero bytes after an extended header's data (tarfile would read them)", { offset: dataOffset + size });
  return block.subarray(0, size);
}

/** Header checksum: the sum of the block with the checksum field read as 8 spaces. */
function checksumMatches(block: Uint8Array, stored: bigint): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b >= 0x80 ? b - 0x100 : b;
  }
  return stored === BigInt(unsigned) || stored === BigInt(signed);
}

/** pax records: "<len> <key>=<value>\n", len counting the whole record. Duplicate keys refused. */
export function parsePaxRecords(data: Uint8Array, offset: number): Map<string, string> {
  const records = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    // A block of pax data may end in NUL padding in some writers; refuse anything but records.
    let q = p;
    while (q < data.length && q - p < 20 && (data[q] as number) >= 0x30 && (data[q] as number) <= 0x39) q++;
    if (q === p || data[q] !== 0x20) throw malformed("pax record without a length", { offset: offset + p });
    const len = Number(String.fromCharCode(...data.subarray(p, q)));
    if (!Number.isSafeInteger(len) || p + len > data.length || len <= q - p + 1) throw malformed("pax record length out of range", { offset: offset + p });
    const record = data.subarray(q + 1, p + len);
    if (record[record.length - 1] !== 0x0a) throw malformed("pax record not ended by a newline", { offset: offset + p });
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw malformed("pax record without key=value", { offset: offset + p });
    const key = decodeUtf8(record.subarray(0, eq), "pax key", offset + p);
    const value = decodeUtf8(record.subarray(eq + 1, record.length - 1), "pax value", offset + p);
    if (records.has(key)) throw malformed(`duplicate pax record ${JSON.stringify(key.slice(0, 64))}`, { offset: offset + p });
    records.set(key, value);
    p += len;
  }
  return records;
}

/** Keys that change how a member's bytes or name are read, beyond path and size: refused. */
function checkPaxKeys(records: Map<string, string>, global: boolean, offset: number): void {
  for (const [key, value] of records) {
    if (key.startsWith("GNU.sparse.")) throw malformed("sparse files are not supported", { offset });
    if (key === "hdrcharset" && value !== "ISO-IEC 10646 2000 UTF-8") throw malformed("pax hdrcharset other than UTF-8", { offset });
    if (global && (key === "path" || key === "size" || key === "linkpath")) {
      throw malformed(`global pax header sets ${key} for every member`, { offset });
    }
  }
}

export interface TarEntry {
  path: string;
  isDirectory: boolean;
  size: number;
  dataOffset: number;
  headerOffset: number;
}

/** Walk and check the whole archive; returns its entries (throws GatewayError on any problem). */
export function readTarEntries(
  source: ByteSource,
  ctx: Pick<FormatContext, "containerLimits">,
): { entries: TarEntry[]; paxHeaders: number; gnuLongNames: number; endOffset: number } {
  const limits = ctx.containerLimits;
  const entries: TarEntry[] = [];
  const files = new Set<string>();
  const dirs = new Set<string>();
  const explicitDirs = new Set<string>();
  let pos = 0;
  let pax: Map<string, string> | undefined;
  let longName: string | undefined;
  let paxHeaders = 0;
  let gnuLongNames = 0;
  for (;;) {
    if (pos + BLOCK > source.size) throw malformed("archive ends without its two zero end blocks", { offset: pos });
    const block = readBlock(source, pos);
    if (isZero(block)) {
      if (pax !== undefined || longName !== undefined) throw malformed("extended header not followed by a member", { offset: pos });
      if (pos + 2 * BLOCK > source.size || !isZero(readBlock(source, pos + BLOCK))) {
        throw malformed("a lone zero block: the end of archive needs two", { offset: pos });
      }
      const endOffset = pos + 2 * BLOCK;
      checkTrailingZeros(source, endOffset);
      return { entries, paxHeaders, gnuLongNames, endOffset };
    }
    const headerOffset = pos;
    const storedSum = numericField(block.subarray(148, 156), "checksum", pos);
    if (storedSum === undefined || !checksumMatches(block, storedSum)) throw malformed(`bad header checksum at offset ${pos}`, { offset: pos });
    const magic = String.fromCharCode(...block.subarray(257, 265));
    const posix = magic.startsWith("ustar\0");
    const gnu = magic === "ustar  \0";
    if (!posix && !gnu) throw malformed(`header at offset ${pos} has no ustar magic`, { offset: pos });
    // GNU headers keep atime/ctime where ustar has its prefix; tarfile would read a non-empty one as a prefix.
    if (gnu && block[345] !== 0) throw malformed("GNU header with a non-empty prefix area (read differently by tarfile and GNU tar)", { offset: pos });
    for (const [start, end, what] of [
      [100, 108, "mode"],
      [108, 116, "uid"],
      [116, 124, "gid"],
      [136, 148, "mtime"],
      [329, 337, "devmajor"],
      [337, 345, "devminor"],
    ] as const) {
      numericField(block.subarray(start, end), what, pos);
    }
    const headerSize = numericField(block.subarray(124, 136), "size", pos);
    if (headerSize === undefined) throw malformed("negative size", { offset: pos });
    const type = String.fromCharCode(block[156] as number);
    const dataOffset = pos + BLOCK;
    let size = headerSize;
    if ((type === "0" || type === "\0" || type === "5") && pax?.has("size") === true) {
      const s = pax.get("size") ?? "";
      if (!/^(0|[1-9]\d{0,19})$/.test(s)) throw malformed("pax size is not a decimal integer", { offset: pos });
      size = BigInt(s);
    }
    if (size > BigInt(source.size - dataOffset))
      throw malformed(`member at offset ${pos} claims ${size.toString()} bytes, past the end of the archive`, { offset: pos });
    const n = Number(size);
    const next = dataOffset + Math.ceil(n / BLOCK) * BLOCK;
    if (next > source.size) throw malformed(`member data at offset ${dataOffset} is not padded to a whole block`, { offset: pos });

    switch (type) {
      case "x":
      case "g": {
        if (n > MAX_TAR_EXTENDED_HEADER_BYTES) throw limitExceeded(`pax header of ${n} bytes exceeds ${MAX_TAR_EXTENDED_HEADER_BYTES}`, { offset: pos });
        const records = parsePaxRecords(extendedData(source, dataOffset, n), dataOffset);
        checkPaxKeys(records, type === "g", pos);
        if (type === "x") {
          if (pax !== undefined) throw malformed("two pax headers for one member", { offset: pos });
          pax = records;
        }
        paxHeaders++;
        pos = next;
        continue;
      }
      case "L": {
        if (n > Math.min(MAX_TAR_EXTENDED_HEADER_BYTES, limits.maxEntryNameBytes + 1)) {
          throw limitExceeded(`GNU long name of ${n} bytes exceeds the name limit of ${limits.maxEntryNameBytes}`, { offset: pos });
        }
        if (longName !== undefined) throw malformed("two GNU long names for one member", { offset: pos });
        const data = extendedData(source, dataOffset, n);
        // GNU tar reads `size` bytes, tarfile the whole block up to its first NUL: they agree when the NUL is inside `size`.
        if (data.indexOf(0) < 0) throw malformed("GNU long name not NUL-terminated within its size", { offset: pos });
        longName = decodeUtf8(nts(data), "GNU long name", dataOffset);
        gnuLongNames++;
        pos = next;
        continue;
      }
      case "0":
      case "\0":
      case "5":
        break;
      case "1":
      case "2":
      case "K":
        throw malformed(`link member at offset ${pos}: hard and symbolic links are not accepted`, { offset: pos });
      case "3":
      case "4":
      case "6":
        throw malformed(`device or FIFO member at offset ${pos} is not accepted`, { offset: pos });
      default:
        throw malformed(`member type ${JSON.stringify(type)} at offset ${pos} is not supported (regular files and directories only)`, { offset: pos });
    }

    let name: string;
    const paxPath = pax?.get("path");
    if (paxPath !== undefined && longName !== undefined) throw malformed("both a pax path and a GNU long name", { offset: pos });
    if (paxPath !== undefined) name = paxPath;
    else if (longName !== undefined) name = longName;
    else {
      const base = decodeUtf8(nts(block.subarray(0, 100)), "member name", pos);
      const prefix = posix ? decodeUtf8(nts(block.subarray(345, 500)), "member name prefix", pos) : "";
      name = prefix === "" ? base : `${prefix}/${base}`;
    }
    pax = undefined;
    longName = undefined;
    if (Buffer.byteLength(name, "utf8") > limits.maxEntryNameBytes) {
      throw limitExceeded(`member name longer than ${limits.maxEntryNameBytes} bytes`, { offset: pos });
    }
    const isDirectory = type === "5";
    if (isDirectory) {
      if (n !== 0) throw malformed("directory member with data (tarfile and GNU tar disagree on skipping it)", { offset: pos });
      if (name.endsWith("/")) name = name.slice(0, -1);
    } else if (name.endsWith("/")) {
      throw malformed(`regular member ${JSON.stringify(name.slice(0, 200))} has a directory name`, { offset: pos });
    }
    // `tar -C dir .` writes "./a/b" and a "./" (or ".") entry for the top: every reader resolves
    // "./a" to "a", so the prefix is dropped (then "a" and "./a" are duplicates) and the top entry skipped.
    while (name.startsWith("./")) name = name.slice(2);
    if (isDirectory && (name === "." || name === "")) {
      pos = next;
      continue;
    }
    checkMemberPath(name, "tar member");
    if (files.has(name) || (isDirectory && explicitDirs.has(name))) throw malformed(`duplicate member ${JSON.stringify(name.slice(0, 200))}`, { offset: pos });
    if (!isDirectory && dirs.has(name)) throw malformed(`member ${JSON.stringify(name.slice(0, 200))} is both a file and a directory`, { offset: pos });
    // A file used as a parent directory of a later member (or the reverse) is a conflict too.
    const segments = name.split("/");
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join("/");
      if (files.has(parent))
        throw malformed(`member ${JSON.stringify(name.slice(0, 200))} is inside the file ${JSON.stringify(parent.slice(0, 200))}`, { offset: pos });
      dirs.add(parent);
    }
    if (isDirectory) {
      dirs.add(name);
      explicitDirs.add(name);
    } else files.add(name);
    if (n > limits.maxEntryUncompressedBytes) {
      throw limitExceeded(`member of ${n} bytes exceeds the limit of ${limits.maxEntryUncompressedBytes}`, { offset: pos });
    }
    if (entries.length >= limits.maxEntries) throw limitExceeded(`more than ${limits.maxEntries} members`, { limit: limits.maxEntries });
    entries.push({ path: name, isDirectory, size: n, dataOffset, headerOffset });
    pos = next;
  }
}

/** After the end blocks only zero padding (tar records are 10 KiB): anything else is hidden data. */
function checkTrailingZeros(source: ByteSource, from: number): void {
  const chunk = new Uint8Array(TAR_TRAILER_CHUNK_BYTES);
  for (let at = from; at < source.size; at += chunk.length) {
    const n = source.readAt(chunk, at);
    if (!isZero(chunk.subarray(0, n))) throw malformed(`non-zero bytes after the end of the archive (from offset ${at})`, { offset: at });
    if (n === 0) break;
  }
}

/** Read a tar archive into ArchiveContents (kind "tar"); throws GatewayError on any structural problem. */
export function readTar(source: ByteSource, path: string, ctx: FormatContext): Promise<ArchiveContents> {
  try {
    const { entries, paxHeaders, gnuLongNames, endOffset } = readTarEntries(source, ctx);
    const members: ArchiveMember[] = entries.map((e) => ({
      path: e.path,
      size: e.size,
      isDirectory: e.isDirectory,
      open: () => Promise.resolve({ source: new SliceSource(source, e.dataOffset, e.size), close: () => undefined }),
    }));
    const node: InspectionNode = {
      kind: "tar",
      path,
      format: "tar",
      findings: [],
      details: { entries: entries.length, paxHeaders, gnuLongNames, endOffset, paddingBytes: source.size - endOffset },
      children: [],
    };
    return Promise.resolve({ kind: "tar", members, node });
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** `inspectTar`: readTar, then the shared layout classification; structural errors become findings. */
export const inspectTar: FormatInspector = async (source, path, ctx) => {
  let archive: ArchiveContents;
  try {
    archive = await readTar(source, path, ctx);
  } catch (err) {
    if (isGatewayError(err) && (err.code === "malformed_container" || err.code === "limit_exceeded")) {
      return { kind: "tar", path, format: "tar", findings: [{ code: err.code, severity: "malformed", message: err.message, location: path }], children: [] };
    }
    throw err;
  }
  return ctx.inspectArchive(archive, path, ctx);
};
