import { randomUUID } from "node:crypto";
import { closeSync, openSync, unlinkSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInflate, createInflateRaw, crc32 } from "node:zlib";
import { Cursor } from "../../bytes/cursor";
import { FileSource, type ByteSource } from "../../bytes/source";
import { GatewayError, isGatewayError, type InspectionErrorCode } from "../../errors";
import type { InspectionNode } from "../../inspect/report";
import { DECOMPRESSION_RATIO_GRACE_BYTES, MAX_GZIP_HEADER_FIELD_BYTES, MAX_LZMA_DECODER_MEMORY_BYTES } from "../../limits";
import type { OpenedMember } from "../containers/archive";
import type { FormatContext, FormatInspector } from "../context";
import { decodeBzip2 } from "./bzip2";
import { throwIfEnvironmental } from "../ioFailure";
import { decodeLz4Frame } from "./lz4";

/**
 * Bounded streaming decompression of whole-file compression layers: the six compressors
 * joblib.dump writes (zlib, gzip, bz2, lzma, xz, lz4) and the gzip of a .tar.gz. Output goes
 * to a temp file in ctx.tempDir, never to memory, and is bounded while it is produced: per
 * stream (maxEntryUncompressedBytes), per artifact (ctx.budget against
 * maxTotalUncompressedBytes) and by ratio (maxCompressionRatio once past a small grace).
 *
 * Model the loader, then be stricter: joblib detects compression by the same prefixes as
 * `detectCompression`, in the same order. Where Python's readers are lenient (bz2/lzma/xz
 * readers ignore trailing garbage, Python's lzma reads concatenated .lzma streams that
 * liblzma's alone decoder stops after), we reject: exactly one stream and no byte after it.
 * The one exception is bz2, where concatenated streams are read in full both by Python's
 * BZ2File and by our decoder, so both see the same bytes.
 */

export type Compression = "zlib" | "gzip" | "bz2" | "xz" | "lzma" | "lz4";

export const COMPRESSIONS: readonly Compression[] = ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"];

const INPUT_CHUNK_BYTES = 256 * 1024;
/** zlib output chunks: Node's 16 KiB default costs one write per 16 KiB. */
const OUTPUT_CHUNK_BYTES = 256 * 1024;

function startsWith(head: Uint8Array, prefix: readonly number[]): boolean {
  if (head.length < prefix.length) return false;
  return prefix.every((b, i) => head[i] === b);
}

/**
 * The compression of a source by its first bytes, in joblib's order (numpy_pickle_utils.
 * _detect_compressor: zlib 'x', gzip, bz2 'BZ', lzma '\x5d\x00', xz, lz4). Stricter than
 * joblib where a prefix alone is ambiguous: zlib needs a valid CMF/FLG pair without a preset
 * dictionary and bz2 needs 'BZh1'..'BZh9' (joblib would fail on anything else, so such a file
 * is not a compressed joblib dump and is left to the other sniffers).
 */
export function detectCompression(source: ByteSource): Compression | undefined {
  const head = new Uint8Array(Math.min(6, source.size));
  source.readAt(head, 0);
  const b0 = head[0];
  const b1 = head[1];
  if (b0 === 0x78 && b1 !== undefined && (b0 * 256 + b1) % 31 === 0 && (b1 & 0x20) === 0) return "zlib";
  if (startsWith(head, [0x1f, 0x8b])) return "gzip";
  if (startsWith(head, [0x42, 0x5a, 0x68])) {
    const level = head[3];
    if (level !== undefined && level >= 0x31 && level <= 0x39) return "bz2";
    return undefined;
  }
  if (startsWith(head, [0x5d, 0x00])) return "lzma";
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return "xz";
  if (startsWith(head, [0x04, 0x22, 0x4d, 0x18])) return "lz4";
  return undefined;
}

/** What decompression needs from the format context. */
export type DecompressContext = Pick<FormatContext, "containerLimits" | "budget" | "tempDir">;

export interface DecompressOptions {
  /** liblzma decoder memory cap (dictionary size); defaults to MAX_LZMA_DECODER_MEMORY_BYTES. */
  lzmaMemoryLimit?: number;
  /** Output allowed regardless of ratio; defaults to DECOMPRESSION_RATIO_GRACE_BYTES. */
  ratioGraceBytes?: number;
  /** Label for messages ("model.joblib"). */
  what?: string;
}

export interface DecompressedStream extends OpenedMember {
  source: FileSource;
  compression: Compression;
  compressedBytes: number;
  uncompressedBytes: number;
}

function malformed(compression: Compression, what: string, message: string, cause?: unknown): GatewayError {
  return new GatewayError("malformed_container", `${what}: ${compression} stream ${message}`, { compression }, cause === undefined ? undefined : { cause });
}

/**
 * Writes decompressed bytes to the temp file, enforcing every output bound before a byte is
 * written, and charging the shared budget.
 */
interface ChunkSink {
  write(chunk: Uint8Array): void;
}

class BoundedSink implements ChunkSink {
  produced = 0;
  private readonly maxOutput: number;

  constructor(
    private readonly fd: number,
    private readonly ctx: DecompressContext,
    private readonly compression: Compression,
    private readonly what: string,
    compressedBytes: number,
    graceBytes: number,
  ) {
    const limits = ctx.containerLimits;
    this.ratioLimit = Math.max(compressedBytes * limits.maxCompressionRatio, graceBytes);
    this.maxOutput = limits.maxEntryUncompressedBytes;
  }

  private readonly ratioLimit: number;

  write(chunk: Uint8Array): void {
    const next = this.produced + chunk.length;
    const limits = this.ctx.containerLimits;
    if (next > this.maxOutput) {
      throw new GatewayError(
        "limit_exceeded",
        `${this.what}: ${this.compression} stream decompresses to more than ${limits.maxEntryUncompressedBytes} bytes (maxEntryUncompressedBytes)`,
        {
          limit: "maxEntryUncompressedBytes",
        },
      );
    }
    if (next > this.ratioLimit) {
      throw new GatewayError(
        "limit_exceeded",
        `${this.what}: ${this.compression} stream expands more than ${limits.maxCompressionRatio}x (maxCompressionRatio)`,
        {
          limit: "maxCompressionRatio",
        },
      );
    }
    if (this.ctx.budget.uncompressedBytes + chunk.length > limits.maxTotalUncompressedBytes) {
      throw new GatewayError(
        "limit_exceeded",
        `${this.what}: the artifact decompresses to more than ${limits.maxTotalUncompressedBytes} bytes in total (maxTotalUncompressedBytes)`,
        {
          limit: "maxTotalUncompressedBytes",
        },
      );
    }
    let done = 0;
    while (done < chunk.length) done += writeSync(this.fd, chunk, done, chunk.length - done);
    this.produced = next;
    this.ctx.budget.uncompressedBytes += chunk.length;
  }
}

/** The subset of a Node/readable-stream/through stream the pump uses. */
interface DecoderStream {
  write(chunk: Buffer): boolean;
  end(): void;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "error", listener: (err: unknown) => void): unknown;
  on(event: "end" | "drain", listener: () => void): unknown;
  once(event: "drain", listener: () => void): unknown;
  destroy?(err?: Error): unknown;
}

/**
 * Feed [start, end) of the source to a decoder stream chunk by chunk (input backpressure via
 * 'drain'), hand every output chunk to the sink, and settle once the decoder ends or fails.
 */
function pump(decoder: DecoderStream, source: ByteSource, start: number, end: number, sink: ChunkSink): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      try {
        decoder.destroy?.();
      } catch {
        // Destroying a failed decoder may itself throw; the first error is the one reported.
      }
      reject(err instanceof Error ? err : Object.assign(new Error(errorMessage(err)), { name: errorName(err) ?? "Error" }));
    };
    decoder.on("data", (chunk: Buffer) => {
      if (settled) return;
      try {
        sink.write(chunk);
      } catch (err) {
        fail(err);
      }
    });
    decoder.on("error", fail);
    decoder.on("end", () => {
      if (settled) return;
      settled = true;
      resolve();
    });
    let pos = start;
    const feed = (): void => {
      try {
        while (!settled && pos < end) {
          const n = Math.min(INPUT_CHUNK_BYTES, end - pos);
          const buf = Buffer.allocUnsafe(n);
          const got = source.readAt(buf, pos);
          if (got !== n) throw new GatewayError("io_error", `short read at ${pos}: ${got} of ${n} bytes`);
          pos += n;
          if (!decoder.write(buf)) {
            decoder.once("drain", feed);
            return;
          }
        }
        if (!settled) decoder.end();
      } catch (err) {
        fail(err);
      }
    };
    feed();
  });
}

interface LzmaStream extends DecoderStream {
  totalIn(): number;
}
interface LzmaNative {
  createStream(coder: "streamDecoder" | "aloneDecoder", options: { memlimit: number; flags?: number }): LzmaStream;
}
let lzmaNativeModule: LzmaNative | undefined;
/**
 * lzma-native, loaded at the first xz/lzma layer rather than at import: the native addon and its
 * JS wrapper cost every `modelgate scan` / `push` / `pull` start-up time that only an xz/lzma
 * decode needs. It ships no type declarations: load it untyped and describe the two calls we use.
 * A failure to load (missing prebuild) propagates unchanged, as it did when loaded at import.
 */
function lzmaNative(): LzmaNative {
  lzmaNativeModule ??= createRequire(__filename)("lzma-native") as LzmaNative;
  return lzmaNativeModule;
}

interface GzipHeader {
  end: number;
}

/** RFC 1952 member header, parsed strictly (reserved flags, header CRC, bounded name/comment). */
function parseGzipHeader(source: ByteSource, what: string): GzipHeader {
  const c = new Cursor(source, { errorCode: "malformed_container", what: `${what}: gzip header` });
  const id1 = c.u8();
  const id2 = c.u8();
  if (id1 !== 0x1f || id2 !== 0x8b) c.fail("bad magic", {}, 0);
  const cm = c.u8("CM");
  if (cm !== 8) c.fail(`compression method ${cm} is not deflate`, {}, 2);
  const flg = c.u8("FLG");
  if ((flg & 0xe0) !== 0) c.fail("reserved FLG bits set", {}, 3);
  c.skip(6, "MTIME/XFL/OS");
  if ((flg & 0x04) !== 0) c.skip(c.u16le("XLEN"), "extra field");
  const zeroTerminated = (field: string): void => {
    const limit = c.position + MAX_GZIP_HEADER_FIELD_BYTES;
    while (c.u8(field) !== 0) {
      if (c.position > limit) c.fail(`${field} longer than ${MAX_GZIP_HEADER_FIELD_BYTES} bytes`);
    }
  };
  if ((flg & 0x08) !== 0) zeroTerminated("file name");
  if ((flg & 0x10) !== 0) zeroTerminated("comment");
  if ((flg & 0x02) !== 0) {
    const headerEnd = c.position;
    const expected = c.u16le("header CRC");
    c.seek(0);
    const header = c.bytes(headerEnd, "header");
    c.skip(2);
    if ((crc32(header) & 0xffff) !== expected) c.fail("header CRC mismatch", {}, headerEnd);
  }
  return { end: c.position };
}

async function decodeGzip(source: ByteSource, sink: BoundedSink, what: string): Promise<void> {
  const header = parseGzipHeader(source, what);
  const inflate = createInflateRaw({ chunkSize: OUTPUT_CHUNK_BYTES });
  let crc = 0;
  const crcSink: ChunkSink = {
    write: (chunk) => {
      sink.write(chunk);
      crc = crc32(chunk, crc);
    },
  };
  await pump(inflate, source, header.end, source.size, crcSink);
  const trailerAt = header.end + inflate.bytesWritten;
  // Exactly one member: Node's gunzip would go on into a second member, joblib's reader does not.
  if (trailerAt + 8 !== source.size) {
    throw malformed(
      "gzip",
      what,
      trailerAt + 8 > source.size ? "ends inside its trailer" : `has ${source.size - trailerAt - 8} bytes after its end (a second member or trailing data)`,
    );
  }
  const trailer = new Cursor(source, { start: trailerAt, errorCode: "malformed_container", what: `${what}: gzip trailer` });
  const expectedCrc = trailer.u32le("CRC32");
  const expectedSize = trailer.u32le("ISIZE");
  if (expectedCrc !== crc >>> 0) throw malformed("gzip", what, "CRC-32 does not match its trailer");
  if (expectedSize !== sink.produced % 0x100000000) throw malformed("gzip", what, "size does not match its trailer");
}

/**
 * Decompress `source` (one stream of `compression`) into a temp file in ctx.tempDir. Throws
 * `malformed_container` for corrupt, truncated or trailing data and `limit_exceeded` for
 * output past a bound; the temp file is removed on failure, and by `close()` on success.
 */
export async function decompressToTempFile(
  source: ByteSource,
  compression: Compression,
  ctx: DecompressContext,
  options: DecompressOptions = {},
): Promise<DecompressedStream> {
  const what = options.what ?? "stream";
  // Load the decoder before the temp file and outside the try below: a broken install (the
  // addon failing to load) is not a malformed stream, and propagates as it did at import time.
  if (compression === "xz" || compression === "lzma") lzmaNative();
  const path = join(ctx.tempDir, `decompressed-${randomUUID()}`);
  const fd = openSync(path, "wx", 0o600);
  let fdOpen = true;
  const removeTemp = (): void => {
    if (fdOpen) closeSync(fd);
    fdOpen = false;
    try {
      unlinkSync(path);
    } catch {
      // Already removed: nothing left to clean.
    }
  };
  const sink = new BoundedSink(fd, ctx, compression, what, source.size, options.ratioGraceBytes ?? DECOMPRESSION_RATIO_GRACE_BYTES);
  try {
    await decodeInto(source, compression, sink, what, options);
    closeSync(fd);
    fdOpen = false;
    const out = new FileSource(path);
    return {
      source: out,
      compression,
      compressedBytes: source.size,
      uncompressedBytes: sink.produced,
      close: () => {
        out.close();
        removeTemp();
      },
    };
  } catch (err) {
    removeTemp();
    if (isGatewayError(err)) throw err;
    if (errorName(err) === "LZMA_MEMLIMIT_ERROR") {
      throw new GatewayError(
        "limit_exceeded",
        `${what}: ${compression} stream needs more decoder memory than ${options.lzmaMemoryLimit ?? MAX_LZMA_DECODER_MEMORY_BYTES} bytes (MAX_LZMA_DECODER_MEMORY_BYTES)`,
        {
          limit: "MAX_LZMA_DECODER_MEMORY_BYTES",
        },
      );
    }
    // A full disk while writing the temp file is not a corrupt stream.
    throwIfEnvironmental(err);
    throw malformed(compression, what, `could not be decompressed (${errorMessage(err)})`, err);
  }
}

// Errors made by native addons may come from another realm (instanceof Error fails): read by shape.
function errorName(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "name" in err && typeof err.name === "string" ? err.name : undefined;
}

function errorMessage(err: unknown): string {
  return typeof err === "object" && err !== null && "message" in err && typeof err.message === "string" ? err.message : String(err);
}

async function decodeInto(source: ByteSource, compression: Compression, sink: BoundedSink, what: string, options: DecompressOptions): Promise<void> {
  switch (compression) {
    case "zlib": {
      const inflate = createInflate({ chunkSize: OUTPUT_CHUNK_BYTES });
      await pump(inflate, source, 0, source.size, sink);
      if (inflate.bytesWritten !== source.size) throw malformed(compression, what, `has ${source.size - inflate.bytesWritten} bytes after its end`);
      return;
    }
    case "gzip":
      return decodeGzip(source, sink, what);
    case "bz2":
      // Our decoder (bzip2.ts) verifies block and stream CRCs, reads concatenated streams (as
      // Python's BZ2File does) and fails on anything after the last stream that is not another.
      decodeBzip2(source, (chunk) => {
        sink.write(chunk);
      });
      return;
    case "xz":
    case "lzma": {
      const memlimit = options.lzmaMemoryLimit ?? MAX_LZMA_DECODER_MEMORY_BYTES;
      const decoder = lzmaNative().createStream(compression === "xz" ? "streamDecoder" : "aloneDecoder", { memlimit });
      await pump(decoder, source, 0, source.size, sink);
      // totalIn counts the first stream only: a concatenated stream or trailing bytes show here.
      if (decoder.totalIn() !== source.size) throw malformed(compression, what, `has ${source.size - decoder.totalIn()} bytes after its first stream`);
      return;
    }
    case "lz4":
      decodeLz4Frame(source, (chunk) => {
        sink.write(chunk);
      });
      return;
  }
}

const FINDING_CODES: ReadonlySet<string> = new Set<InspectionErrorCode>([
  "malformed_container",
  "limit_exceeded",
  "malformed_pickle",
  "unknown_format",
  "unsupported_format",
]);

/** A child context one nesting level deeper that shares everything else (budget included). */
export function nestedContext(ctx: FormatContext): FormatContext {
  return {
    policy: ctx.policy,
    containerLimits: ctx.containerLimits,
    pickleLimits: ctx.pickleLimits,
    depth: ctx.depth + 1,
    tempDir: ctx.tempDir,
    budget: ctx.budget,
    inspectMember: (source, path, c) => ctx.inspectMember(source, path, c),
    inspectArchive: (archive, path, c) => ctx.inspectArchive(archive, path, c),
  };
}

/**
 * FormatInspector for a compressed file or member: decompress (bounded) into a temp file, then
 * sniff and inspect the result through ctx.inspectMember one nesting level deeper. A compressed
 * pickle is what joblib writes, so the node's format is "joblib" with details.compression.
 */
export const inspectCompressed: FormatInspector = async (source, path, ctx) => {
  const compression = detectCompression(source);
  const node: InspectionNode = {
    kind: "compressed",
    path,
    format: compression ?? "unknown",
    findings: [],
    details: { compression: compression ?? null, compressedBytes: source.size },
    children: [],
  };
  if (compression === undefined) {
    node.findings.push({ code: "unknown_format", severity: "malformed", message: "no known compression prefix", location: path });
    return node;
  }
  if (ctx.depth >= ctx.containerLimits.maxNestingDepth) {
    node.findings.push({
      code: "limit_exceeded",
      severity: "malformed",
      message: `${compression} stream nested deeper than ${ctx.containerLimits.maxNestingDepth} levels (maxNestingDepth)`,
      location: path,
    });
    return node;
  }
  let out: DecompressedStream;
  try {
    out = await decompressToTempFile(source, compression, ctx, { what: path === "" ? "artifact" : path });
  } catch (err) {
    if (isGatewayError(err) && FINDING_CODES.has(err.code)) {
      node.findings.push({ code: err.code as InspectionErrorCode, severity: "malformed", message: err.message, location: path });
      return node;
    }
    throw err;
  }
  try {
    if (node.details) node.details.uncompressedBytes = out.uncompressedBytes;
    const inner = await ctx.inspectMember(out.source, path === "" ? compression : `${path}#${compression}`, nestedContext(ctx));
    node.children.push(inner);
    if (inner.format === "pickle" || inner.format === "joblib") node.format = "joblib";
  } finally {
    out.close();
  }
  return node;
};
