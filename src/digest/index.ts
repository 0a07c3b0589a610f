/**
 * The one place for sha256 digests: the `sha256:<64 lowercase hex>` spelling (parse, format), a
 * constant-time comparison, hashing a file, and a stream that verifies the bytes passing through
 * it. The trust layer, the store, the HTTP routes and the CLI all call these, so a digest is
 * spelled, checked and compared the same way everywhere. A malformed digest is `bad_request`.
 */
import { createHash, timingSafeEqual, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { Transform, type TransformCallback } from "node:stream";
import { z } from "zod";
import { GatewayError } from "../errors";

/** The algorithm prefix of the `sha256:<hex>` spelling (OCI / in-toto style). */
export const SHA256_PREFIX = "sha256:";

/**
 * 64 lowercase hex characters. Uppercase is refused on purpose: the hex is also a file name in
 * the store and a cache key, so one digest has exactly one spelling.
 */
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** True for 64 lowercase hex characters (a bare sha256 digest). */
export function isSha256Hex(text: string): boolean {
  return SHA256_HEX.test(text);
}

/** zod: a bare sha256 digest (64 lowercase hex), for JSON read from disk or from a client. */
export const Sha256HexSchema = z.string().regex(SHA256_HEX, "lowercase hex sha256 (64 characters)");

/** zod: a `sha256:<64 lowercase hex>` digest. */
export const Sha256DigestSchema = z
  .string()
  .refine((text) => text.startsWith(SHA256_PREFIX) && isSha256Hex(text.slice(SHA256_PREFIX.length)), "sha256:<64 lowercase hex>");

/** "sha256:<64 lowercase hex>" or bare 64 lowercase hex -> hex; anything else is `bad_request`. */
export function parseDigest(text: string): string {
  const hex = text.startsWith(SHA256_PREFIX) ? text.slice(SHA256_PREFIX.length) : text;
  if (!isSha256Hex(hex)) {
    throw new GatewayError("bad_request", "a digest is 'sha256:' followed by 64 lowercase hex characters");
  }
  return hex;
}

/** Guard for entry points that take bare hex (a store file name, a subject digest): `bad_request` otherwise. */
export function assertHexDigest(digestHex: string): void {
  if (!isSha256Hex(digestHex)) throw new GatewayError("bad_request", "digest must be 64 lowercase hex characters (sha256)");
}

/** The 32 bytes of a bare hex digest; `bad_request` when it is not 64 lowercase hex. */
export function digestBytes(digestHex: string): Buffer {
  assertHexDigest(digestHex);
  return Buffer.from(digestHex, "hex");
}

/** Bare hex -> "sha256:<hex>" (the spelling in records, headers, URLs, audit events and logs). */
export function formatDigest(digestHex: string): string {
  return `${SHA256_PREFIX}${digestHex}`;
}

/**
 * Constant-time comparison of two lowercase hex sha256 digests: false unless both are 32 bytes and
 * equal (Buffer.from(.., "hex") stops at the first non-hex pair, so malformed input never matches).
 */
export function sameDigest(aHex: string, bHex: string): boolean {
  const a = Buffer.from(aHex, "hex");
  const b = Buffer.from(bHex, "hex");
  return a.length === 32 && b.length === 32 && timingSafeEqual(a, b);
}

/** Hash a file in one streaming pass (files are gigabytes: never read whole). */
export async function sha256File(file: string): Promise<{ digestHex: string; size: number }> {
  const hash = createHash("sha256");
  const size = await hashFileInto(file, hash);
  return { digestHex: hash.digest("hex"), size };
}

/**
 * Feed `file` into `hash` in one streaming pass, only its first `length` bytes when given (a
 * resumed download's bytes on disk); returns how many bytes were read.
 */
export async function hashFileInto(file: string, hash: Hash, length?: number): Promise<number> {
  if (length === 0) return 0;
  let size = 0;
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024, ...(length !== undefined ? { start: 0, end: length - 1 } : {}) })) {
      const buf = chunk as Buffer;
      hash.update(buf);
      size += buf.length;
    }
  } catch (err) {
    throw new GatewayError("io_error", `cannot read ${file}: ${(err as Error).message}`, undefined, { cause: err });
  }
  return size;
}

/**
 * Re-hashes a stream while it passes through and holds back the last chunk until the digest is
 * known: on a mismatch the stream fails (`integrity_error`) before the final byte, so a reader
 * never receives a complete wrong body (an HTTP Content-Length is never satisfied).
 */
export class VerifyingStream extends Transform {
  private readonly hash = createHash("sha256");
  private held: Buffer | undefined;
  bytes = 0;

  constructor(private readonly expectedHex: string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    const previous = this.held;
    this.held = chunk;
    cb(null, previous);
  }

  override _flush(cb: TransformCallback): void {
    const actual = this.hash.digest("hex");
    if (!sameDigest(actual, this.expectedHex)) {
      cb(new GatewayError("integrity_error", `stored blob hashes to ${actual}, not ${this.expectedHex}`, { actual }));
      return;
    }
    if (this.held) this.push(this.held);
    cb();
  }
}
