import { createHash, createPrivateKey, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import nacl from "tweetnacl";
import { GatewayError } from "../errors";
import { decodeBase64Strict } from "./base64";

export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SEED_BYTES = 32;

const PEM_PUBLIC = /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----\r?\n?$/;
const PEM_PRIVATE = /^-----BEGIN PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PRIVATE KEY-----\r?\n?$/;

/**
 * Encodings of the points of small order on edwards25519 (identity, order 2, 4 and 8). A
 * "public key" of small order lets a forger produce signatures that verify for many messages
 * under cofactorless verification ("Taming the many EdDSAs", Chalkias et al. 2020), so such a
 * key is refused when the allowlist is loaded.
 */
const SMALL_ORDER_KEYS: ReadonlySet<string> = new Set([
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]);

function bytesOfBase64Url(text: unknown, what: string): Uint8Array {
  if (typeof text !== "string") throw new GatewayError("invalid_key", `${what} is missing`);
  return new Uint8Array(Buffer.from(text, "base64url"));
}

function ed25519Jwk(key: KeyObject, what: string): { x: Uint8Array; d: Uint8Array | undefined } {
  if (key.asymmetricKeyType !== "ed25519") {
    throw new GatewayError("invalid_key", `${what} is a ${key.asymmetricKeyType ?? "unknown"} key, expected ed25519`);
  }
  const jwk = key.export({ format: "jwk" });
  return { x: bytesOfBase64Url(jwk.x, `${what} public part`), d: typeof jwk.d === "string" ? bytesOfBase64Url(jwk.d, `${what} seed`) : undefined };
}

function checkRawPublicKey(raw: Uint8Array): Uint8Array {
  if (raw.length !== ED25519_PUBLIC_KEY_BYTES) {
    throw new GatewayError("invalid_key", `an Ed25519 public key has ${String(ED25519_PUBLIC_KEY_BYTES)} bytes, found ${String(raw.length)}`);
  }
  if (SMALL_ORDER_KEYS.has(Buffer.from(raw).toString("hex"))) {
    throw new GatewayError("invalid_key", "public key is a point of small order (not a real Ed25519 key)");
  }
  return raw;
}

/**
 * Parse an Ed25519 public key in either form people have: PEM SubjectPublicKeyInfo (what
 * `openssl pkey -pubout` writes) or standard base64 of the raw 32 bytes. Surrounding whitespace
 * is ignored. Anything else, any other algorithm, or a small-order point is `invalid_key`.
 */
export function parsePublicKey(text: string): Uint8Array {
  const trimmed = text.trim();
  if (trimmed.startsWith("-----BEGIN")) {
    if (!PEM_PUBLIC.test(`${trimmed}\n`)) {
      throw new GatewayError("invalid_key", "expected a PEM block '-----BEGIN PUBLIC KEY-----' (SubjectPublicKeyInfo)");
    }
    let key: KeyObject;
    try {
      key = createPublicKey({ key: trimmed, format: "pem" });
    } catch (err) {
      throw new GatewayError("invalid_key", "PEM public key could not be parsed", undefined, { cause: err });
    }
    return checkRawPublicKey(ed25519Jwk(key, "public key").x);
  }
  return checkRawPublicKey(decodeBase64Strict(trimmed, "public key", "invalid_key"));
}

/** A key's id: lowercase hex SHA-256 of its raw 32-byte public key. */
export function keyIdOf(publicKey: Uint8Array): string {
  return createHash("sha256").update(publicKey).digest("hex");
}

/** PEM SubjectPublicKeyInfo of a raw Ed25519 public key (as `openssl pkey -pubout` writes it). */
export function publicKeyToPem(publicKey: Uint8Array): string {
  const key = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(checkRawPublicKey(publicKey)).toString("base64url") },
    format: "jwk",
  });
  return key.export({ type: "spki", format: "pem" }).toString();
}

/** PEM PKCS#8 of an Ed25519 key pair given as tweetnacl's 64-byte secret key (seed ‖ public). */
export function privateKeyToPem(secretKey: Uint8Array): string {
  if (secretKey.length !== nacl.sign.secretKeyLength) {
    throw new GatewayError("invalid_key", `a tweetnacl secret key has ${String(nacl.sign.secretKeyLength)} bytes`);
  }
  const seed = secretKey.subarray(0, ED25519_SEED_BYTES);
  const pub = secretKey.subarray(ED25519_SEED_BYTES);
  const key = createPrivateKey({
    key: { kty: "OKP", crv: "Ed25519", d: Buffer.from(seed).toString("base64url"), x: Buffer.from(pub).toString("base64url") },
    format: "jwk",
  });
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

/**
 * Read an unencrypted PKCS#8 PEM Ed25519 private key (what `openssl genpkey -algorithm ed25519`
 * and `modelgate keygen` write) into tweetnacl's form. The public half is recomputed from the
 * seed and must match the one the file declares, if any.
 */
export function readPrivateKey(pem: string): { secretKey: Uint8Array; publicKey: Uint8Array } {
  const trimmed = pem.trim();
  if (!PEM_PRIVATE.test(`${trimmed}\n`)) {
    throw new GatewayError("invalid_key", "expected an unencrypted PEM block '-----BEGIN PRIVATE KEY-----' (PKCS#8)");
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: trimmed, format: "pem" });
  } catch (err) {
    throw new GatewayError("invalid_key", "PEM private key could not be parsed", undefined, { cause: err });
  }
  const { x, d } = ed25519Jwk(key, "private key");
  if (d?.length !== ED25519_SEED_BYTES) throw new GatewayError("invalid_key", "private key has no 32-byte Ed25519 seed");
  const pair = nacl.sign.keyPair.fromSeed(d);
  if (!Buffer.from(pair.publicKey).equals(Buffer.from(x))) {
    throw new GatewayError("invalid_key", "private key's public half does not match its seed");
  }
  return { secretKey: pair.secretKey, publicKey: pair.publicKey };
}

/** The order of the edwards25519 base point (RFC 8032 section 5.1). */
const ED25519_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

function isCanonicalScalar(sig: Uint8Array): boolean {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] ?? 0);
  return s < ED25519_ORDER;
}

/**
 * Verify an Ed25519 signature (RFC 8032; the signatures tweetnacl and OpenSSL make). Verification
 * goes through node:crypto (OpenSSL), about 50 times faster than tweetnacl's JavaScript, which
 * matters on the fetch path where stored envelopes are re-checked. A signature whose scalar S
 * is not reduced (S >= L) is refused explicitly: tweetnacl would accept S + L, a second spelling
 * of the same signature (malleability).
 */
export function verifyEd25519(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== nacl.sign.signatureLength || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) return false;
  if (!isCanonicalScalar(signature)) return false;
  try {
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(publicKey).toString("base64url") }, format: "jwk" });
    return cryptoVerify(null, message, key, signature);
  } catch {
    return false;
  }
}
