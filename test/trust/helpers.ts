import nacl from "tweetnacl";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import {
  addSignature,
  buildPublishStatement,
  keyIdOf,
  pae,
  revokedKeyIdsOf,
  signEnvelope,
  type Allowlist,
  type Envelope,
  type TrustedKey,
  type TrustedSource,
} from "../../src/trust";

export interface TestKey {
  keyId: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** Deterministic key pairs: seed byte n repeated. */
export function testKey(n: number): TestKey {
  const pair = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(n));
  return { keyId: keyIdOf(pair.publicKey), publicKey: pair.publicKey, secretKey: pair.secretKey };
}

export function trusted(key: TestKey, extra: Partial<TrustedKey> = {}): TrustedKey {
  return { keyId: key.keyId, publicKey: key.publicKey, revoked: false, origin: "inline", ...extra };
}

export function source(id: string, keys: TrustedKey[], extra: Partial<TrustedSource> = {}): TrustedSource {
  return { id, description: id, keys, threshold: 1, pickle: { ...DEFAULT_CONTENT_POLICY, allowGlobals: [] }, ...extra };
}

export function allowlistOf(...sources: TrustedSource[]): Allowlist {
  return { sources, revokedKeyIds: revokedKeyIdsOf(sources) };
}

export const DIGEST = "a".repeat(64);
export const NOW = new Date("2026-06-01T00:00:00.000Z");

export function signed(keys: TestKey[], name = "examples/model.pt", digestHex = DIGEST): string {
  const [first, ...rest] = keys;
  if (!first) throw new Error("need a key");
  let env: Envelope = signEnvelope(buildPublishStatement({ name, digestHex }), first.secretKey, first.keyId);
  for (const k of rest) env = addSignature(env, k.secretKey, k.keyId);
  return JSON.stringify(env);
}

/** The code of the GatewayError thrown by fn (fails the test when nothing is thrown). */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code ?? "no-code";
  }
  throw new Error("expected an error");
}

/** Sign arbitrary payload bytes (or a JSON value) into an envelope, bypassing statement validation. */
export function rawEnvelope(payload: unknown, keys: TestKey[], payloadType = "application/vnd.in-toto+json"): Envelope {
  const bytes = payload instanceof Uint8Array ? payload : Buffer.from(JSON.stringify(payload));
  const msg = pae(payloadType, bytes);
  return {
    payloadType,
    payload: Buffer.from(bytes).toString("base64"),
    signatures: keys.map((k) => ({ keyid: k.keyId, sig: Buffer.from(nacl.sign.detached(msg, k.secretKey)).toString("base64") })),
  };
}

export function statementJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "examples/model.pt", digest: { sha256: DIGEST } }],
    predicateType: "https://modelgate.dev/attestation/publish/v1",
    predicate: {},
    ...overrides,
  };
}
