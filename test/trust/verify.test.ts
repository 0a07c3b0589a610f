import nacl from "tweetnacl";
import { isGatewayError } from "../../src/errors";
import { buildPublishStatement, parseAllowlist, preflightEnvelope, recheckTrust, signEnvelope, verifyPublish, type Allowlist } from "../../src/trust";
import { allowlistOf, DIGEST, NOW, rawEnvelope, signed, source, statementJson, testKey, trusted } from "./helpers";

const a = testKey(1);
const b = testKey(2);
const c = testKey(3);
const stranger = testKey(99);

function verify(envelope: string, allowlist: Allowlist, extra: { digestHex?: string; name?: string; now?: Date; size?: number } = {}) {
  return verifyPublish({
    envelope,
    digestHex: extra.digestHex ?? DIGEST,
    allowlist,
    now: extra.now ?? NOW,
    ...(extra.name !== undefined ? { name: extra.name } : {}),
    ...(extra.size !== undefined ? { size: extra.size } : {}),
  });
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    if (isGatewayError(err)) return err;
  }
  throw new Error("expected a GatewayError");
}

function reasonsOf(fn: () => unknown): { code: string; source?: string; keyId?: string }[] {
  try {
    fn();
  } catch (err) {
    if (isGatewayError(err)) return (err.details?.reasons ?? []) as { code: string }[];
  }
  throw new Error("expected a GatewayError");
}

describe("verifyPublish", () => {
  const one = allowlistOf(source("research", [trusted(a)], { names: ["examples/**"] }));

  it("accepts and names the source, the keys, the statement", () => {
    const r = verify(signed([a]), one);
    expect(r.source.id).toBe("research");
    expect(r.keyIds).toEqual([a.keyId]);
    expect(r.name).toBe("examples/model.pt");
    expect(r.digestHex).toBe(DIGEST);
    expect(r.statement.subject[0].digest.sha256).toBe(DIGEST);
  });

  it("malformed_signature for a broken envelope", () => {
    expect(() => verify("{}", one)).toFailWithCode("malformed_signature");
  });

  it("wrong_predicate_type for an attestation of another kind, even validly signed", () => {
    const env = JSON.stringify(rawEnvelope(statementJson({ predicateType: "https://slsa.dev/provenance/v1" }), [a]));
    expect(() => verify(env, one)).toFailWithCode("wrong_predicate_type");
  });

  it("untrusted_source when no signature is by a known key", () => {
    expect(() => verify(signed([stranger]), one)).toFailWithCode("untrusted_source");
    expect(() => verify(signed([a]), allowlistOf())).toFailWithCode("untrusted_source");
  });

  it("ignores signatures by unknown keys, even invalid ones", () => {
    const env = JSON.parse(signed([a, stranger])) as { signatures: { keyid: string; sig: string }[] };
    const bad = { keyid: "unknown-key", sig: Buffer.alloc(64, 1).toString("base64") };
    expect(verify(JSON.stringify({ ...env, signatures: [bad, ...env.signatures] }), one).keyIds).toEqual([a.keyId]);
  });

  it("bad_signature when a known key's signature does not verify", () => {
    const env = JSON.parse(signed([a])) as { signatures: { keyid: string; sig: string }[] };
    const sig = Buffer.from(env.signatures[0]!.sig, "base64");
    sig[10] = (sig[10] ?? 0) ^ 1;
    expect(() => verify(JSON.stringify({ ...env, signatures: [{ keyid: a.keyId, sig: sig.toString("base64") }] }), one)).toFailWithCode("bad_signature");
  });

  it("bad_signature when a key id is paired with another key's signature", () => {
    const env = JSON.parse(signed([b])) as { signatures: { keyid: string; sig: string }[] };
    expect(() => verify(JSON.stringify({ ...env, signatures: [{ keyid: a.keyId, sig: env.signatures[0]!.sig }] }), one)).toFailWithCode("bad_signature");
  });

  it("bad_signature when the payload was changed after signing", () => {
    const env = JSON.parse(signed([a])) as { payload: string };
    const other = Buffer.from(JSON.stringify(statementJson({ subject: [{ name: "examples/evil.pt", digest: { sha256: DIGEST } }] }))).toString("base64");
    expect(() => verify(JSON.stringify({ ...env, payload: other }), one)).toFailWithCode("bad_signature");
  });

  it("bad_signature even when another valid signature by a trusted key is present", () => {
    const env = JSON.parse(signed([a])) as { signatures: { keyid: string; sig: string }[] };
    const forged = { keyid: a.keyId, sig: Buffer.alloc(64, 3).toString("base64") };
    expect(() => verify(JSON.stringify({ ...env, signatures: [...env.signatures, forged] }), one)).toFailWithCode("bad_signature");
  });

  it("digest_mismatch when the artifact's sha256 differs from the subject's", () => {
    expect(() => verify(signed([a]), one, { digestHex: "b".repeat(64) })).toFailWithCode("digest_mismatch");
  });

  it("digest_mismatch when the signed predicate.size differs from the artifact size", () => {
    const env = JSON.stringify(
      signEnvelope(buildPublishStatement({ name: "examples/model.pt", digestHex: DIGEST, predicate: { size: 10 } }), a.secretKey, a.keyId),
    );
    expect(verify(env, one, { size: 10 }).source.id).toBe("research");
    expect(() => verify(env, one, { size: 11 })).toFailWithCode("digest_mismatch");
  });

  it("bad_request for a digest that is not 64 lowercase hex", () => {
    expect(() => verify(signed([a]), one, { digestHex: DIGEST.toUpperCase() })).toFailWithCode("bad_request");
  });

  it("name_not_allowed outside the source's patterns", () => {
    expect(() => verify(signed([a], "prod/model.pt"), one)).toFailWithCode("name_not_allowed");
  });

  it("any name when the source has no patterns", () => {
    const any = allowlistOf(source("s", [trusted(a)]));
    expect(verify(signed([a], "whatever/deep/name"), any).name).toBe("whatever/deep/name");
  });

  it("name_not_allowed when the requested name differs from the signed subject name", () => {
    expect(() => verify(signed([a], "examples/a.pt"), one, { name: "examples/b.pt" })).toFailWithCode("name_not_allowed");
    expect(verify(signed([a], "examples/a.pt"), one, { name: "examples/a.pt" }).name).toBe("examples/a.pt");
  });

  it("key_revoked for a revoked key", () => {
    const al = allowlistOf(source("s", [trusted(a, { revoked: true })]));
    expect(() => verify(signed([a]), al)).toFailWithCode("key_revoked");
  });

  describe("validity window [notBefore, notAfter)", () => {
    const notBefore = new Date("2026-01-01T00:00:00.000Z");
    const notAfter = new Date("2027-01-01T00:00:00.000Z");
    const al = allowlistOf(source("s", [trusted(a, { notBefore, notAfter })]));
    const at = (ms: number) => new Date(ms);

    it("rejects one millisecond before notBefore", () => {
      expect(() => verify(signed([a]), al, { now: at(notBefore.getTime() - 1) })).toFailWithCode("key_expired");
    });
    it("accepts exactly at notBefore (inclusive)", () => {
      expect(verify(signed([a]), al, { now: notBefore }).source.id).toBe("s");
    });
    it("accepts one millisecond before notAfter", () => {
      expect(verify(signed([a]), al, { now: at(notAfter.getTime() - 1) }).source.id).toBe("s");
    });
    it("rejects exactly at notAfter (exclusive)", () => {
      expect(() => verify(signed([a]), al, { now: notAfter })).toFailWithCode("key_expired");
    });
  });

  describe("thresholds", () => {
    const two = allowlistOf(source("s", [trusted(a), trusted(b), trusted(c)], { threshold: 2 }));

    it("accepts two distinct keys for threshold 2 and lists both", () => {
      expect(verify(signed([a, b]), two).keyIds.sort()).toEqual([a.keyId, b.keyId].sort());
    });

    it("threshold_not_met with one key", () => {
      expect(() => verify(signed([a]), two)).toFailWithCode("threshold_not_met");
    });

    it("counts duplicate signatures by one key once", () => {
      expect(() => verify(signed([a, a]), two)).toFailWithCode("threshold_not_met");
      expect(() => verify(signed([a, a, a, a]), two)).toFailWithCode("threshold_not_met");
    });

    it("does not count revoked or expired keys", () => {
      const al = allowlistOf(source("s", [trusted(a), trusted(b, { revoked: true }), trusted(c, { notAfter: new Date(NOW.getTime()) })], { threshold: 2 }));
      expect(() => verify(signed([a, b]), al)).toFailWithCode("threshold_not_met");
      expect(() => verify(signed([a, c]), al)).toFailWithCode("threshold_not_met");
      expect(verify(signed([a, b, c]), allowlistOf(source("s", [trusted(a), trusted(b), trusted(c)], { threshold: 3 }))).keyIds).toHaveLength(3);
    });

    it("does not count a stranger's signature toward the threshold", () => {
      expect(() => verify(signed([a, stranger]), two)).toFailWithCode("threshold_not_met");
    });

    it("a revoked co-signer does not spoil a threshold met by others", () => {
      const al = allowlistOf(source("s", [trusted(a), trusted(b, { revoked: true })]));
      expect(verify(signed([a, b]), al).keyIds).toEqual([a.keyId]);
    });
  });

  describe("several sources", () => {
    it("picks the source that accepts, and the first in allowlist order when several do", () => {
      const al = allowlistOf(
        source("prod", [trusted(a)], { names: ["prod/**"] }),
        source("research", [trusted(a)], { names: ["research/**"] }),
        source("all", [trusted(a)]),
      );
      expect(verify(signed([a], "research/x"), al).source.id).toBe("research");
      expect(verify(signed([a], "prod/x"), al).source.id).toBe("prod");
      expect(verify(signed([a], "other/x"), al).source.id).toBe("all");
    });

    it("reports a reason per source and key, and the most specific code", () => {
      const al = allowlistOf(
        source("revoking", [trusted(c, { revoked: true })]),
        source("narrow", [trusted(a)], { names: ["only/**"] }),
        source("strict", [trusted(a), trusted(b)], { threshold: 2 }),
      );
      const fn = () => verify(signed([a, c], "x/y"), al);
      expect(fn).toFailWithCode("key_revoked");
      expect(
        reasonsOf(fn)
          .map((r) => `${r.source ?? ""}:${r.code}`)
          .sort(),
      ).toEqual(["narrow:name_not_allowed", "revoking:key_revoked", "strict:threshold_not_met"]);
    });

    it("a key revoked in one source counts for no source, even one listing it unrevoked", () => {
      const al = allowlistOf(
        source("a-src", [trusted(a, { revoked: true })], { names: ["a/**"] }),
        source("b-src", [trusted(a), trusted(b)], { names: ["b/**"] }),
      );
      // Only b-src's name rules would accept this signature; a-src's revocation still applies.
      const fn = () => verify(signed([a], "b/model"), al);
      expect(fn).toFailWithCode("key_revoked");
      expect(reasonsOf(fn)).toContainEqual(expect.objectContaining({ code: "key_revoked", source: "b-src", keyId: a.keyId }));
      expect(errorOf(fn).message).toContain("'a-src'");
      // A revoked co-signer does not count towards a threshold anywhere.
      const thr = allowlistOf(source("a-src", [trusted(a, { revoked: true })]), source("b-src", [trusted(a), trusted(b)], { threshold: 2 }));
      const thrFn = () => verify(signed([a, b], "b/model"), thr);
      expect(thrFn).toFailWithCode("key_revoked");
      expect(reasonsOf(thrFn)).toContainEqual(expect.objectContaining({ code: "threshold_not_met", source: "b-src" }));
      // b-src's other, unrevoked key still works.
      const r = verify(signed([b], "b/model"), al);
      expect([r.source.id, r.keyIds]).toEqual(["b-src", [b.keyId]]);
      expect(verify(signed([a, b], "b/model"), al).keyIds).toEqual([b.keyId]);
    });

    it("parseAllowlist computes the global revoked set", () => {
      const json = {
        version: 1,
        sources: [
          { id: "a-src", description: "", keys: [{ publicKey: Buffer.from(a.publicKey).toString("base64"), revoked: true }] },
          {
            id: "b-src",
            description: "",
            keys: [{ publicKey: Buffer.from(a.publicKey).toString("base64") }, { publicKey: Buffer.from(b.publicKey).toString("base64") }],
          },
        ],
      };
      const al = parseAllowlist(json, "/nonexistent");
      expect([...al.revokedKeyIds]).toEqual([a.keyId]);
      expect(() => verify(signed([a]), al)).toFailWithCode("key_revoked");
      expect(verify(signed([b]), al).source.id).toBe("b-src");
    });
  });

  it("does not depend on key order in the envelope and handles the same key in two sources", () => {
    const al = allowlistOf(source("s1", [trusted(b)]), source("s2", [trusted(a), trusted(b)], { threshold: 2 }));
    expect(verify(signed([b, a]), al).source.id).toBe("s1");
  });

  it("rejects a signature made over the payload without PAE", () => {
    const payload = Buffer.from(JSON.stringify(statementJson()));
    const env = {
      payloadType: "application/vnd.in-toto+json",
      payload: payload.toString("base64"),
      signatures: [{ keyid: a.keyId, sig: Buffer.from(nacl.sign.detached(payload, a.secretKey)).toString("base64") }],
    };
    expect(() => verify(JSON.stringify(env), one)).toFailWithCode("bad_signature");
  });
});

describe("preflightEnvelope", () => {
  const al = allowlistOf(source("research", [trusted(a)], { names: ["examples/**"] }), source("ops", [trusted(a)]));

  it("returns subject and accepting sources without an artifact", () => {
    expect(preflightEnvelope(signed([a]), al, NOW)).toEqual({ subjectName: "examples/model.pt", subjectDigestHex: DIGEST, sourceIds: ["research", "ops"] });
  });

  it("throws the same codes as verifyPublish", () => {
    expect(() => preflightEnvelope(signed([stranger]), al, NOW)).toFailWithCode("untrusted_source");
    expect(() => preflightEnvelope("[]", al, NOW)).toFailWithCode("malformed_signature");
    expect(() => preflightEnvelope(signed([a]), allowlistOf(source("s", [trusted(a, { revoked: true })])), NOW)).toFailWithCode("key_revoked");
    expect(() => preflightEnvelope(signed([a], "x"), allowlistOf(source("s", [trusted(a)], { names: ["y"] })), NOW)).toFailWithCode("name_not_allowed");
  });

  it("a key revoked by another source is key_revoked; the source's other key still works", () => {
    const split = allowlistOf(
      source("a-src", [trusted(a, { revoked: true })], { names: ["a/**"] }),
      source("b-src", [trusted(a), trusted(b)], { names: ["b/**"] }),
    );
    expect(() => preflightEnvelope(signed([a], "b/model"), split, NOW)).toFailWithCode("key_revoked");
    expect(preflightEnvelope(signed([b], "b/model"), split, NOW).sourceIds).toEqual(["b-src"]);
  });
});

describe("recheckTrust", () => {
  const name = "examples/model.pt";

  it("accepts when any stored envelope still verifies", () => {
    const al = allowlistOf(source("old", [trusted(a, { revoked: true })]), source("new", [trusted(b)]));
    expect(recheckTrust({ envelopes: [signed([a]), signed([b])], digestHex: DIGEST, name, allowlist: al, now: NOW }).source.id).toBe("new");
  });

  it("key_revoked, key_expired, untrusted_source: the most specific reason", () => {
    const revoked = allowlistOf(source("s", [trusted(a, { revoked: true })]));
    const expired = allowlistOf(source("s", [trusted(a, { notAfter: new Date(NOW.getTime() - 1) }), trusted(b, { revoked: true })]));
    expect(() => recheckTrust({ envelopes: [signed([a])], digestHex: DIGEST, name, allowlist: revoked, now: NOW })).toFailWithCode("key_revoked");
    expect(() => recheckTrust({ envelopes: [signed([a])], digestHex: DIGEST, name, allowlist: expired, now: NOW })).toFailWithCode("key_expired");
    expect(() => recheckTrust({ envelopes: [signed([stranger]), signed([a])], digestHex: DIGEST, name, allowlist: revoked, now: NOW })).toFailWithCode(
      "key_revoked",
    );
    expect(() => recheckTrust({ envelopes: [signed([a])], digestHex: DIGEST, name, allowlist: allowlistOf(), now: NOW })).toFailWithCode("untrusted_source");
    expect(() => recheckTrust({ envelopes: [], digestHex: DIGEST, name, allowlist: revoked, now: NOW })).toFailWithCode("untrusted_source");
  });

  it("checks each stored envelope against the name it signed; bare strings and unnamed entries use `name`", () => {
    const both = allowlistOf(source("sa", [trusted(a, { revoked: true })], { names: ["a/**"] }), source("sb", [trusted(b)], { names: ["b/**"] }));
    const envelopes = [
      { envelope: signed([a], "a/model"), name: "a/model" },
      { envelope: signed([b], "b/model"), name: "b/model" },
    ];
    const v = recheckTrust({ envelopes, digestHex: DIGEST, name: "a/model", allowlist: both, now: NOW });
    expect([v.source.id, v.name]).toEqual(["sb", "b/model"]);
    // Without its own name, b's envelope is checked against the record's name and refused.
    expect(() =>
      recheckTrust({ envelopes: [envelopes[0] ?? "", { envelope: signed([b], "b/model") }], digestHex: DIGEST, name: "a/model", allowlist: both, now: NOW }),
    ).toFailWithCode("key_revoked");
    expect(() => recheckTrust({ envelopes: [signed([b], "b/model")], digestHex: DIGEST, name: "a/model", allowlist: both, now: NOW })).toFailWithCode(
      "name_not_allowed",
    );
    // A stored name is no override: it must equal the envelope's own subject name.
    expect(() =>
      recheckTrust({ envelopes: [{ envelope: signed([b], "b/model"), name: "b/other" }], digestHex: DIGEST, name: "a/model", allowlist: both, now: NOW }),
    ).toFailWithCode("name_not_allowed");
    const revokedBoth = allowlistOf(
      source("sa", [trusted(a, { revoked: true })], { names: ["a/**"] }),
      source("sb", [trusted(b, { revoked: true })], { names: ["b/**"] }),
    );
    expect(() => recheckTrust({ envelopes, digestHex: DIGEST, name: "a/model", allowlist: revokedBoth, now: NOW })).toFailWithCode("key_revoked");
  });

  it("a key revoked by another source no longer serves through the source listing it unrevoked", () => {
    const split = allowlistOf(
      source("a-src", [trusted(a, { revoked: true })], { names: ["a/**"] }),
      source("b-src", [trusted(a), trusted(b)], { names: ["b/**"] }),
    );
    const envelopes = [{ envelope: signed([a], "b/model"), name: "b/model" }];
    expect(() => recheckTrust({ envelopes, digestHex: DIGEST, name: "b/model", allowlist: split, now: NOW })).toFailWithCode("key_revoked");
    const v = recheckTrust({
      envelopes: [...envelopes, { envelope: signed([b], "b/model"), name: "b/model" }],
      digestHex: DIGEST,
      name: "b/model",
      allowlist: split,
      now: NOW,
    });
    expect([v.source.id, v.keyIds]).toEqual(["b-src", [b.keyId]]);
  });

  it("digest_mismatch when the stored bytes no longer match", () => {
    const al = allowlistOf(source("s", [trusted(a)]));
    expect(() => recheckTrust({ envelopes: [signed([a])], digestHex: "c".repeat(64), name, allowlist: al, now: NOW })).toFailWithCode("digest_mismatch");
  });
});
