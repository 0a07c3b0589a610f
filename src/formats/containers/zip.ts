import { SliceSource, type ByteSource } from "../../bytes/source";
import { GatewayError } from "../../errors";
import type { ArchiveContents, ArchiveMember } from "./archive";
import type { FormatContext } from "../context";
import { locateEocd, readCentralDirectory, readZip64 } from "./zipCentralDirectory";
import { checkLocalHeader } from "./zipLocalHeader";
import { openZipEntry } from "./zipMember";
import { malformed, METHOD_DEFLATE, type ZipDirectory, type ZipReadOptions } from "./zipRecords";

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
 *
 * The steps live in their own files: zipCentralDirectory.ts (EOCD, zip64, central records),
 * zipLocalHeader.ts (local header and data descriptor cross-check), zipMember.ts (opening a
 * member: CRC, inflate); zipRecords.ts holds what they share and memberPath.ts the name rule.
 * This file ties them together: the tiling check and the member list.
 */

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
