import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { GatewayError } from "../errors";

const SHA256_HEX = /^[0-9a-f]{64}$/;

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

/** "sha256:<64 lowercase hex>" or bare 64 lowercase hex -> hex; anything else is `bad_request`. */
export function parseDigest(text: string): string {
  const hex = text.startsWith("sha256:") ? text.slice("sha256:".length) : text;
  if (!SHA256_HEX.test(hex)) {
    throw new GatewayError("bad_request", "a digest is 'sha256:' followed by 64 lowercase hex characters");
  }
  return hex;
}
