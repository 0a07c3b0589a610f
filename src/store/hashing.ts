import { createHash, timingSafeEqual, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { GatewayError } from "../errors";

/**
 * A pass-through that hashes (sha256) and counts the bytes in the same pass and fails with
 * `too_large` the moment the count passes `maxBytes`, so a cap is enforced while bytes arrive,
 * not after they are all on disk (tuf-js checks length and digest of a target in one loop too).
 */
export class HashCounter extends Transform {
  private readonly hash: Hash = createHash("sha256");
  private count = 0;
  private digest: string | undefined;

  constructor(private readonly maxBytes: number = Number.POSITIVE_INFINITY) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.maxBytes) {
      cb(new GatewayError("too_large", `artifact exceeds the upload limit of ${String(this.maxBytes)} bytes`, { maxBytes: this.maxBytes }));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.digest = this.hash.digest("hex");
    cb();
  }

  get size(): number {
    return this.count;
  }

  /** Lowercase hex sha256; only after the stream ended. */
  get digestHex(): string {
    if (this.digest === undefined) throw new GatewayError("internal", "digest read before the stream ended");
    return this.digest;
  }
}

/** Constant-time comparison of two lowercase hex sha256 digests. */
export function sameDigest(aHex: string, bHex: string): boolean {
  const a = Buffer.from(aHex, "hex");
  const b = Buffer.from(bHex, "hex");
  return a.length === 32 && b.length === 32 && timingSafeEqual(a, b);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Guard for store entry points: a digest that reaches the filesystem is always 64 lowercase hex. */
export function assertHexDigest(digestHex: string): void {
  if (!HEX64.test(digestHex)) throw new GatewayError("bad_request", "digest must be 64 lowercase hex characters");
}
