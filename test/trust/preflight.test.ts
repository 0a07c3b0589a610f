import { buildPublishStatement, completePublish, preflightEnvelope, signEnvelope, verifyPublish, type Allowlist } from "../../src/trust";
import * as keys from "../../src/trust/keys";
import { allowlistOf, DIGEST, NOW, signed, source, testKey, trusted } from "./helpers";

/**
 * completePublish finishes a preflight: the same verdict and the same codes as verifyPublish, with
 * no signature verified again while the preflight's allowlist and key windows still hold.
 */

const key = testKey(41);
const allowlist = allowlistOf(source("research", [trusted(key)]));

/** The outcome of a verification: the accepting source, or the code it failed with. */
function outcome(fn: () => { source: { id: string }; name: string }): string {
  try {
    const v = fn();
    return `accepted by ${v.source.id} as ${v.name}`;
  } catch (err) {
    return (err as { code?: string }).code ?? "no-code";
  }
}

describe("completePublish", () => {
  afterEach(() => {
    jest.restoreAllMocks();
  });

  const sized = JSON.stringify(
    signEnvelope(buildPublishStatement({ name: "examples/model.pt", digestHex: DIGEST, predicate: { size: 10 } }), key.secretKey, key.keyId),
  );
  const cases: { what: string; envelope: string; digestHex: string; size?: number; name?: string }[] = [
    { what: "matching digest", envelope: signed([key]), digestHex: DIGEST },
    { what: "the signed name asked for", envelope: signed([key]), digestHex: DIGEST, name: "examples/model.pt" },
    { what: "another name asked for", envelope: signed([key]), digestHex: DIGEST, name: "examples/other.pt" },
    { what: "a name outside the name rule", envelope: signed([key]), digestHex: DIGEST, name: "../x" },
    { what: "another digest", envelope: signed([key]), digestHex: "b".repeat(64) },
    { what: "another name and another digest (the name decides first)", envelope: signed([key]), digestHex: "b".repeat(64), name: "examples/other.pt" },
    { what: "the signed size", envelope: sized, digestHex: DIGEST, size: 10 },
    { what: "another size", envelope: sized, digestHex: DIGEST, size: 11 },
  ];

  it.each(cases)("$what: the verdict of verifyPublish, without verifying a signature again", ({ envelope, digestHex, size, name }) => {
    const request = { envelope, digestHex, allowlist, now: NOW, ...(size !== undefined ? { size } : {}), ...(name !== undefined ? { name } : {}) };
    const expected = outcome(() => verifyPublish(request));
    const preflight = preflightEnvelope(envelope, allowlist, NOW);
    const verify = jest.spyOn(keys, "verifyEd25519");
    expect(outcome(() => completePublish(preflight, request))).toBe(expected);
    expect(verify).not.toHaveBeenCalled();
  });

  it("another allowlist object (a reload) verifies again and decides on it", () => {
    const envelope = signed([key]);
    const preflight = preflightEnvelope(envelope, allowlist, NOW);
    const revoked: Allowlist = allowlistOf(source("research", [trusted(key, { revoked: true })]));
    const verify = jest.spyOn(keys, "verifyEd25519");
    expect(outcome(() => completePublish(preflight, { envelope, digestHex: DIGEST, allowlist: revoked, now: NOW }))).toBe("key_revoked");
    expect(verify).toHaveBeenCalledTimes(1);
  });

  it("a key window that closed or opened since the preflight verifies again; time passing inside the windows does not", () => {
    const windowed = allowlistOf(
      source("research", [trusted(key, { notBefore: new Date("2026-01-01T00:00:00.000Z"), notAfter: new Date("2026-06-01T00:00:10.000Z") })]),
    );
    const envelope = signed([key]);
    const preflight = preflightEnvelope(envelope, windowed, NOW);
    const verify = jest.spyOn(keys, "verifyEd25519");
    const at = (iso: string) => outcome(() => completePublish(preflight, { envelope, digestHex: DIGEST, allowlist: windowed, now: new Date(iso) }));
    expect(at("2026-06-01T00:00:09.000Z")).toBe("accepted by research as examples/model.pt");
    expect(verify).not.toHaveBeenCalled();
    expect(at("2026-06-01T00:00:10.000Z")).toBe("key_expired");
    expect(verify).toHaveBeenCalledTimes(1);
  });

  it("a preflight of another envelope verifies this one", () => {
    const other = testKey(42);
    const preflight = preflightEnvelope(signed([key]), allowlist, NOW);
    expect(outcome(() => completePublish(preflight, { envelope: signed([other]), digestHex: DIGEST, allowlist, now: NOW }))).toBe("untrusted_source");
  });

  it("a preflight object built by hand (not by preflightEnvelope) is no evidence: verifies in full", () => {
    const forged = { subjectName: "examples/model.pt", subjectDigestHex: DIGEST, sourceIds: ["research"] };
    const stranger = testKey(43);
    expect(outcome(() => completePublish(forged, { envelope: signed([stranger]), digestHex: DIGEST, allowlist, now: NOW }))).toBe("untrusted_source");
  });
});
