import type { ByteSource } from "../../bytes/source";
import { Cursor } from "../../bytes/cursor";
import { isGatewayError } from "../../errors";
import type { CentralEntry } from "./zipCentralDirectory";
import {
  checkExtraIds,
  cursorAt,
  DESCRIPTOR_NARROW_BYTES,
  DESCRIPTOR_WIDE_BYTES,
  EXTRA_ZIP64,
  FLAG_DESCRIPTOR,
  LOCAL_HEADER_BYTES,
  malformed,
  parseExtra,
  SIG_DESCRIPTOR,
  SIG_LOCAL,
  U32_MAX,
  type Extra,
  type ZipEntry,
} from "./zipRecords";

/**
 * Step 2 of the zip reader (zip.ts): cross-check each entry's local header (and data descriptor)
 * against its central record, and find where the entry's bytes end.
 */

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Cross-check one entry's local header (and data descriptor) against its central record. */
export function checkLocalHeader(source: ByteSource, e: CentralEntry, cdOffset: number): void {
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
