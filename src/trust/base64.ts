import { GatewayError, type ErrorCode } from "../errors";

/** Standard base64 (RFC 4648 section 4) with padding; no whitespace, no url-safe alphabet. */
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decode base64 strictly: only the standard alphabet, correct padding, and canonical encoding
 * (the unused low bits of the last symbol are zero). Node's Buffer.from(…, "base64") silently
 * skips junk and accepts url-safe symbols, so two different strings could decode to the same
 * bytes; a verifier must have exactly one accepted spelling of a signature (malleability).
 */
export function decodeBase64Strict(text: string, what: string, code: ErrorCode = "malformed_signature"): Uint8Array {
  if (!CANONICAL_BASE64.test(text)) {
    throw new GatewayError(code, `${what} is not canonical standard base64 (padding required; no whitespace, no '-' or '_')`);
  }
  const bytes = Buffer.from(text, "base64");
  if (bytes.toString("base64") !== text) {
    throw new GatewayError(code, `${what} is not canonical base64 (non-zero padding bits)`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}
