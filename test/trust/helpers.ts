import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import {
  addSignature,
  buildPublishStatement,
  revokedKeyIdsOf,
  signEnvelope,
  type Allowlist,
  type Envelope,
  type TrustedKey,
  type TrustedSource,
} from "../../src/trust";
import { makePublisher, type Publisher } from "../support/publisher";

export { rawEnvelope } from "../support/publisher";

export type TestKey = Publisher;

/** Deterministic key pairs: seed byte n repeated (the one publisher factory, test/support/publisher.ts). */
export function testKey(n: number): TestKey {
  return makePublisher(n);
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

export function statementJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "examples/model.pt", digest: { sha256: DIGEST } }],
    predicateType: "https://modelgate.dev/attestation/publish/v1",
    predicate: {},
    ...overrides,
  };
}
