import { MAX_ARTIFACT_NAME_LENGTH, MAX_ENVELOPE_BYTES, MAX_SIGNATURES_PER_ENVELOPE } from "../../src/limits";
import { buildPublishStatement, parseEnvelope, PUBLISH_PREDICATE_TYPE, signEnvelope } from "../../src/trust";
import { DIGEST, rawEnvelope, statementJson, testKey } from "./helpers";

const k = testKey(1);

function padTo(json: string, size: number): string {
  // JSON allows whitespace between tokens: pad before the closing brace to an exact byte size.
  return `${json.slice(0, -1)}${" ".repeat(size - Buffer.byteLength(json))}}`;
}

describe("parseEnvelope", () => {
  it("parses what signEnvelope writes, from a string or bytes", () => {
    const env = JSON.stringify(
      signEnvelope(buildPublishStatement({ name: "a/b", digestHex: DIGEST, predicate: { framework: "pytorch" } }), k.secretKey, k.keyId),
    );
    for (const input of [env, Buffer.from(env)]) {
      const { statement, envelope } = parseEnvelope(input);
      expect(statement.subject[0]).toEqual({ name: "a/b", digest: { sha256: DIGEST } });
      expect(statement.predicateType).toBe(PUBLISH_PREDICATE_TYPE);
      expect(statement.predicate.framework).toBe("pytorch");
      expect(envelope.signatures[0]?.keyid).toBe(k.keyId);
    }
  });

  it("accepts an envelope of exactly MAX_ENVELOPE_BYTES and rejects one byte more", () => {
    const env = JSON.stringify(rawEnvelope(statementJson(), [k]));
    expect(parseEnvelope(padTo(env, MAX_ENVELOPE_BYTES)).statement.subject[0].name).toBe("examples/model.pt");
    expect(() => parseEnvelope(padTo(env, MAX_ENVELOPE_BYTES + 1))).toFailWithCode("malformed_signature");
    expect(() => parseEnvelope(Buffer.from(padTo(env, MAX_ENVELOPE_BYTES + 1)))).toFailWithCode("malformed_signature");
  });

  it("accepts MAX_SIGNATURES_PER_ENVELOPE signatures and rejects one more", () => {
    const keys = Array.from({ length: MAX_SIGNATURES_PER_ENVELOPE + 1 }, (_, i) => testKey(i + 10));
    expect(parseEnvelope(JSON.stringify(rawEnvelope(statementJson(), keys.slice(0, -1)))).envelope.signatures).toHaveLength(MAX_SIGNATURES_PER_ENVELOPE);
    expect(() => parseEnvelope(JSON.stringify(rawEnvelope(statementJson(), keys)))).toFailWithCode("malformed_signature");
  });

  it.each<[string, (e: Record<string, unknown>) => unknown]>([
    ["not JSON", () => "{"],
    ["a JSON array", () => []],
    ["no signatures", (e) => ({ ...e, signatures: [] })],
    ["unknown envelope field", (e) => ({ ...e, extra: 1 })],
    ["unknown signature field", (e) => ({ ...e, signatures: [{ ...(e.signatures as object[])[0], cert: "x" }] })],
    ["missing keyid", (e) => ({ ...e, signatures: [{ sig: ((e.signatures as { sig: string }[])[0] ?? { sig: "" }).sig }] })],
    ["signature of 63 bytes", (e) => ({ ...e, signatures: [{ keyid: k.keyId, sig: Buffer.alloc(63).toString("base64") }] })],
    ["non-canonical signature base64", (e) => ({ ...e, signatures: [{ keyid: k.keyId, sig: Buffer.alloc(64).toString("base64url") + "=" }] })],
    ["payload with whitespace in base64", (e) => ({ ...e, payload: `${(e.payload as string).slice(0, 8)}\n${(e.payload as string).slice(8)}` })],
    ["another payloadType", (e) => ({ ...e, payloadType: "application/json" })],
  ])("rejects %s as malformed_signature", (_label, mutate) => {
    const env = rawEnvelope(statementJson(), [k]) as unknown as Record<string, unknown>;
    const mutated = mutate(env);
    expect(() => parseEnvelope(typeof mutated === "string" ? mutated : JSON.stringify(mutated))).toFailWithCode("malformed_signature");
  });

  it("rejects invalid UTF-8 envelope bytes", () => {
    expect(() => parseEnvelope(new Uint8Array([0x7b, 0xff, 0x7d]))).toFailWithCode("malformed_signature");
  });

  it.each<[string, unknown]>([
    ["payload not JSON", Buffer.from("not json")],
    ["statement v0.1 _type", statementJson({ _type: "https://in-toto.io/Statement/v0.1" })],
    [
      "two subjects",
      statementJson({
        subject: [
          { name: "a", digest: { sha256: DIGEST } },
          { name: "b", digest: { sha256: DIGEST } },
        ],
      }),
    ],
    ["no subject", statementJson({ subject: [] })],
    ["uppercase digest", statementJson({ subject: [{ name: "a", digest: { sha256: DIGEST.toUpperCase() } }] })],
    ["short digest", statementJson({ subject: [{ name: "a", digest: { sha256: "ab" } }] })],
    ["extra digest algorithm", statementJson({ subject: [{ name: "a", digest: { sha256: DIGEST, md5: "00" } }] })],
    ["unknown statement field", statementJson({ extra: true })],
    ["unknown predicate field", statementJson({ predicate: { framework: "x", runThis: "rm -rf /" } })],
    ["predicate size not an integer", statementJson({ predicate: { size: 1.5 } })],
  ])("rejects a statement with %s as malformed_signature", (_label, payload) => {
    expect(() => parseEnvelope(JSON.stringify(rawEnvelope(payload, [k])))).toFailWithCode("malformed_signature");
  });

  it.each<[string, unknown]>([
    ["empty name", statementJson({ subject: [{ name: "", digest: { sha256: DIGEST } }] })],
    ["name with a newline", statementJson({ subject: [{ name: "a\nverdict=accepted", digest: { sha256: DIGEST } }] })],
    ["name with an escape character", statementJson({ subject: [{ name: "a\u001b[2J", digest: { sha256: DIGEST } }] })],
    ["name longer than MAX_ARTIFACT_NAME_LENGTH", statementJson({ subject: [{ name: "n".repeat(MAX_ARTIFACT_NAME_LENGTH + 1), digest: { sha256: DIGEST } }] })],
  ])("rejects a statement with %s as invalid_name", (_label, payload) => {
    expect(() => parseEnvelope(JSON.stringify(rawEnvelope(payload, [k])))).toFailWithCode("invalid_name");
  });

  it("rejects another predicate type as wrong_predicate_type", () => {
    const slsa = statementJson({ predicateType: "https://slsa.dev/provenance/v1", predicate: { buildDefinition: {} } });
    expect(() => parseEnvelope(JSON.stringify(rawEnvelope(slsa, [k])))).toFailWithCode("wrong_predicate_type");
  });

  it("accepts a name of exactly MAX_ARTIFACT_NAME_LENGTH, unicode included", () => {
    const name = `é${"n".repeat(MAX_ARTIFACT_NAME_LENGTH - 1)}`;
    expect(parseEnvelope(JSON.stringify(rawEnvelope(statementJson({ subject: [{ name, digest: { sha256: DIGEST } }] }), [k]))).statement.subject[0].name).toBe(
      name,
    );
  });

  it("treats a missing predicate as empty metadata", () => {
    const { predicate: _omit, ...rest } = statementJson();
    expect(parseEnvelope(JSON.stringify(rawEnvelope(rest, [k]))).statement.predicate).toEqual({});
  });
});

describe("key ids", () => {
  it.each([
    ["with a space", "a b"],
    ["with a newline", "ab\n"],
    ["non-ASCII", "clé"],
    ["too long", "k".repeat(257)],
  ])("rejects a keyid %s", (_l, keyid) => {
    const env = rawEnvelope(statementJson(), [k]);
    const sig = env.signatures[0]?.sig ?? "";
    expect(() => parseEnvelope(JSON.stringify({ ...env, signatures: [{ keyid, sig }] }))).toFailWithCode("malformed_signature");
  });
  it("accepts any printable ASCII keyid up to 256 characters", () => {
    const env = rawEnvelope(statementJson(), [k]);
    const sig = env.signatures[0]?.sig ?? "";
    expect(parseEnvelope(JSON.stringify({ ...env, signatures: [{ keyid: "k".repeat(256), sig }] })).envelope.signatures).toHaveLength(1);
  });
});
