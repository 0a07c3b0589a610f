import { closeSync, openSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { crc32, createInflateRaw } from "node:zlib";
import { BufferSource, FileSource, SliceSource, type ByteSource } from "../../bytes/source";
import { isGatewayError } from "../../errors";
import { ZIP_INFLATE_IN_MEMORY_BYTES } from "../../limits";
import type { FormatContext } from "../context";
import { throwIfEnvironmental } from "../ioFailure";
import type { OpenedMember } from "./archive";
import { CRC_CHUNK, limitExceeded, malformed, METHOD_STORED, type ZipEntry } from "./zipRecords";

/**
 * Step 3 of the zip reader (zip.ts): read one member's bytes. Stored entries are a window on the
 * file, deflated ones are inflated (bounded by the declared size and the artifact's budget); the
 * CRC-32 and size are verified before any layout inspector sees a byte.
 */

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
