import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import * as path from "node:path";
import nacl from "tweetnacl";
import { buildPublishStatement, DSSE_PAYLOAD_TYPE, keyIdOf, pae, privateKeyToPem, publicKeyToPem, signEnvelope, type Envelope } from "../../src/trust";

/**
 * The one publisher factory of the tests: an Ed25519 key pair with its key id, the envelope it
 * signs for an artifact, the allowlist that trusts it, and its key files in a temp folder.
 */
export interface Publisher {
  keyId: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A fresh key pair, or a deterministic one when `seed` is given (seed byte n repeated). */
export function makePublisher(seed?: number): Publisher {
  const pair = seed === undefined ? nacl.sign.keyPair() : nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(seed));
  return { keyId: keyIdOf(pair.publicKey), publicKey: pair.publicKey, secretKey: pair.secretKey };
}

export const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** The DSSE envelope a publisher sends for these bytes under this name. */
export function envelopeFor(pub: Publisher, bytes: Uint8Array, name: string, digestHex = sha256Hex(bytes)): Envelope {
  return signEnvelope(buildPublishStatement({ name, digestHex }), pub.secretKey, pub.keyId);
}

/** The envelope JSON a publisher would send for these bytes under this name. */
export function signFor(pub: Publisher, bytes: Uint8Array, name: string, digestHex = sha256Hex(bytes)): string {
  return JSON.stringify(envelopeFor(pub, bytes, name, digestHex));
}

/**
 * Sign arbitrary payload bytes (or a JSON value) into an envelope with each publisher, bypassing
 * the statement builder's checks: for envelopes the gateway must refuse.
 */
export function rawEnvelope(payload: unknown, pubs: Publisher[], payloadType = DSSE_PAYLOAD_TYPE): Envelope {
  const bytes = payload instanceof Uint8Array ? payload : Buffer.from(JSON.stringify(payload));
  const msg = pae(payloadType, bytes);
  return {
    payloadType,
    payload: Buffer.from(bytes).toString("base64"),
    signatures: pubs.map((p) => ({ keyid: p.keyId, sig: Buffer.from(nacl.sign.detached(msg, p.secretKey)).toString("base64") })),
  };
}

/** The public key as allowlist.json's raw form spells it: base64 of the 32 bytes. */
export function publicKeyBase64(pub: Publisher): string {
  return Buffer.from(pub.publicKey).toString("base64");
}

export interface KeySpec {
  pub: Publisher;
  revoked?: boolean;
  notAfter?: string;
  /** How allowlist.json spells the public key: base64 of the raw 32 bytes (default) or SPKI PEM. */
  encoding?: "base64" | "pem";
}

export interface SourceSpec {
  id: string;
  keys: KeySpec[];
  description?: string;
  names?: string[];
  threshold?: number;
  /** The source's content policy, as allowlist.json writes it. */
  pickle?: unknown;
}

/** An allowlist.json document (version 1) trusting these sources. */
export function allowlistDocument(sources: SourceSpec[]): { version: 1; sources: Record<string, unknown>[] } {
  return {
    version: 1,
    sources: sources.map((s) => ({
      id: s.id,
      description: s.description ?? `test source ${s.id}`,
      keys: s.keys.map((k) => ({
        publicKey: k.encoding === "pem" ? publicKeyToPem(k.pub.publicKey) : publicKeyBase64(k.pub),
        ...(k.revoked !== undefined ? { revoked: k.revoked } : {}),
        ...(k.notAfter !== undefined ? { notAfter: k.notAfter } : {}),
      })),
      ...(s.names ? { names: s.names } : {}),
      ...(s.threshold !== undefined ? { threshold: s.threshold } : {}),
      ...(s.pickle !== undefined ? { pickle: s.pickle } : {}),
    })),
  };
}

export function allowlistJson(sources: SourceSpec[]): string {
  return JSON.stringify(allowlistDocument(sources), null, 2);
}

/** Write allowlist.json for these sources to `file`. */
export function writeAllowlist(file: string, sources: SourceSpec[]): void {
  writeFileSync(file, allowlistJson(sources));
}

/** Write `<base>.key` (PKCS#8 PEM, mode 0600) and `<base>.pub` (SPKI PEM) for `pub` in `dir`, as `modelgate keygen` does. */
export function writeKeyFiles(dir: string, pub: Publisher, base: string): { keyPath: string; pubPath: string } {
  const keyPath = path.join(dir, `${base}.key`);
  const pubPath = path.join(dir, `${base}.pub`);
  writeFileSync(keyPath, privateKeyToPem(pub.secretKey), { mode: 0o600 });
  writeFileSync(pubPath, publicKeyToPem(pub.publicKey));
  return { keyPath, pubPath };
}
