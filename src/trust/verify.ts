import { assertHexDigest, sameDigest } from "../digest";
import { GatewayError, isGatewayError, type ErrorCode, type TrustErrorCode } from "../errors";
import type { Allowlist, TrustedKey, TrustedSource } from "./allowlist";
import { decodeBase64Strict } from "./base64";
import { parseArtifactName, quoteUntrusted, type ArtifactName } from "./artifactName";
import { pae, parseEnvelope, type Statement } from "./dsse";
import { matchesNameGlob } from "./glob";
import { verifyEd25519 } from "./keys";

/** One reason a source or key did not approve the publish, reported in error details. */
export interface TrustReason {
  code: TrustErrorCode;
  message: string;
  source?: string;
  keyId?: string;
}

export interface PublishVerification {
  /** The accepting source (the first in allowlist order when several accept). */
  source: TrustedSource;
  /** Distinct, valid, usable key ids of that source that signed. */
  keyIds: string[];
  statement: Statement;
  name: ArtifactName;
  digestHex: string;
}

interface TrustDecision {
  statement: Statement;
  name: ArtifactName;
  accepted: { source: TrustedSource; keyIds: string[] }[];
}

/**
 * When several reasons apply, the error carries the most specific one: a revoked or expired key
 * says more than a missing name pattern, which says more than "not enough signatures", which
 * says more than "no known key".
 */
const SPECIFICITY: readonly TrustErrorCode[] = ["key_revoked", "key_expired", "name_not_allowed", "threshold_not_met", "untrusted_source"];

function mostSpecific(reasons: readonly TrustReason[]): TrustReason | undefined {
  for (const code of SPECIFICITY) {
    const r = reasons.find((x) => x.code === code);
    if (r) return r;
  }
  return reasons[0];
}

/** Validity window: notBefore inclusive, notAfter exclusive ([notBefore, notAfter)). */
function keyWindowProblem(key: TrustedKey, now: Date): string | undefined {
  const t = now.getTime();
  if (key.notBefore && t < key.notBefore.getTime()) return `key ${key.keyId} is not valid before ${key.notBefore.toISOString()}`;
  if (key.notAfter && t >= key.notAfter.getTime()) return `key ${key.keyId} expired at ${key.notAfter.toISOString()}`;
  return undefined;
}

/** Globs match validated names only (segment by segment, src/trust/glob.ts). */
export function isNameAllowed(source: TrustedSource, name: ArtifactName): boolean {
  return source.names === undefined || source.names.some((p) => matchesNameGlob(p, name));
}

/** The sources that mark keyId revoked (for the rejection reason). */
function revokingSourceIds(allowlist: Allowlist, keyId: string): string[] {
  return allowlist.sources.filter((s) => s.keys.some((k) => k.keyId === keyId && k.revoked)).map((s) => s.id);
}

function knownSourceIds(allowlist: Allowlist): string {
  const ids = allowlist.sources.map((s) => s.id);
  return ids.length === 0 ? "none" : ids.slice(0, 10).join(", ") + (ids.length > 10 ? ", …" : "");
}

/**
 * Everything of the verification that does not depend on the artifact's bytes: parse, check
 * every signature by a known key, and evaluate each source's rules for `name`.
 */
function decideTrust(envelopeBytes: Uint8Array | string, allowlist: Allowlist, now: Date, nameOverride: string | undefined): TrustDecision {
  const { envelope, statement, payload } = parseEnvelope(envelopeBytes);
  const name = checkRequestedName(statement.subject[0].name, nameOverride);

  const keysById = new Map<string, { source: TrustedSource; key: TrustedKey }[]>();
  for (const source of allowlist.sources) {
    for (const key of source.keys) {
      const list = keysById.get(key.keyId) ?? [];
      list.push({ source, key });
      keysById.set(key.keyId, list);
    }
  }

  // Verify each signature naming a known key (ignore unknown key ids). One bad signature by a
  // known key is an error on its own: it is either corruption or an attempt to forge.
  const message = pae(envelope.payloadType, payload);
  const validKeyIds = new Set<string>();
  for (const [i, s] of envelope.signatures.entries()) {
    const holders = keysById.get(s.keyid);
    const first = holders?.[0];
    if (!first) continue;
    const sig = decodeBase64Strict(s.sig, `signatures.${String(i)}.sig`);
    if (!verifyEd25519(message, sig, first.key.publicKey)) {
      throw new GatewayError("bad_signature", `signature ${String(i)} by key ${s.keyid} does not verify`, {
        reasons: [{ code: "bad_signature", message: "signature does not verify", keyId: s.keyid }],
      });
    }
    validKeyIds.add(s.keyid);
  }
  if (validKeyIds.size === 0) {
    const ids = envelope.signatures.map((s) => s.keyid.slice(0, 16)).join(", "); // printable ASCII (schema)
    throw new GatewayError("untrusted_source", `no signature is by a key in the allowlist (key ids ${ids}; known sources: ${knownSourceIds(allowlist)})`, {
      reasons: [{ code: "untrusted_source", message: "no signature by a known key" }],
    });
  }

  // Every rejection goes into `reasons`; each source also gets one primary reason, and the error
  // code is the most specific primary: a source whose only signers are revoked says key_revoked,
  // one that had some usable signers but too few says threshold_not_met.
  const reasons: TrustReason[] = [];
  const primaries: TrustReason[] = [];
  const accepted: TrustDecision["accepted"] = [];
  for (const source of allowlist.sources) {
    const signers = source.keys.filter((k) => validKeyIds.has(k.keyId));
    if (signers.length === 0) continue;
    const usable: string[] = [];
    const keyReasons: TrustReason[] = [];
    for (const key of signers) {
      if (key.revoked) {
        keyReasons.push({ code: "key_revoked", message: `key ${key.keyId} of source '${source.id}' is revoked`, source: source.id, keyId: key.keyId });
        continue;
      }
      if (allowlist.revokedKeyIds.has(key.keyId)) {
        // Revocation is global: a key revoked by any source is trusted through none.
        const by = revokingSourceIds(allowlist, key.keyId);
        keyReasons.push({
          code: "key_revoked",
          message: `key ${key.keyId} is revoked by source ${by.length > 0 ? by.map((id) => `'${id}'`).join(", ") : "(unknown)"}, so it counts for no source ('${source.id}' lists it unrevoked)`,
          source: source.id,
          keyId: key.keyId,
        });
        continue;
      }
      const window = keyWindowProblem(key, now);
      if (window !== undefined) {
        keyReasons.push({ code: "key_expired", message: `${window} (source '${source.id}')`, source: source.id, keyId: key.keyId });
        continue;
      }
      usable.push(key.keyId);
    }
    reasons.push(...keyReasons);
    let primary: TrustReason | undefined;
    if (usable.length === 0) {
      primary = mostSpecific(keyReasons);
    } else if (usable.length < source.threshold) {
      primary = {
        code: "threshold_not_met",
        message: `source '${source.id}' needs ${String(source.threshold)} distinct valid key(s), found ${String(usable.length)}`,
        source: source.id,
      };
      reasons.push(primary);
    } else if (!isNameAllowed(source, name)) {
      primary = {
        code: "name_not_allowed",
        message: `source '${source.id}' may not publish ${quoteUntrusted(name)} (allowed: ${(source.names ?? []).join(", ")})`,
        source: source.id,
      };
      reasons.push(primary);
    }
    if (primary) primaries.push(primary);
    else accepted.push({ source, keyIds: usable });
  }
  if (accepted.length === 0) {
    const top = mostSpecific(primaries) ?? { code: "untrusted_source" as const, message: "no source accepts the signatures" };
    throw new GatewayError(top.code, top.message, { reasons });
  }
  return { statement, name, accepted };
}

/**
 * Verify a publish: the envelope's signatures against the allowlist (see decideTrust), then the
 * statement's subject digest against the artifact's (constant-time), and the optional predicate
 * size. Pure: time is injected. Throws a GatewayError whose details.reasons lists every
 * rejection per source and key.
 */
export function verifyPublish(input: {
  envelope: Uint8Array | string;
  digestHex: string;
  size?: number;
  name?: string;
  allowlist: Allowlist;
  now: Date;
}): PublishVerification {
  const decision = decideTrust(input.envelope, input.allowlist, input.now, input.name);
  return checkSubject(decision, input);
}

/** The checks of a publish that need the artifact: subject digest (constant-time), then the optional predicate size. */
function checkSubject(decision: TrustDecision, input: { digestHex: string; size?: number }): PublishVerification {
  assertHexDigest(input.digestHex);
  if (!sameDigest(input.digestHex, decision.statement.subject[0].digest.sha256)) {
    throw new GatewayError(
      "digest_mismatch",
      `artifact sha256 ${input.digestHex} differs from the signed digest ${decision.statement.subject[0].digest.sha256}`,
      {
        reasons: [{ code: "digest_mismatch", message: "artifact digest differs from the statement's subject digest" }],
      },
    );
  }
  const signedSize = decision.statement.predicate.size;
  if (input.size !== undefined && signedSize !== undefined && signedSize !== input.size) {
    throw new GatewayError("digest_mismatch", `artifact is ${String(input.size)} bytes, the statement says ${String(signedSize)}`, {
      reasons: [{ code: "digest_mismatch", message: "artifact size differs from the statement's predicate.size" }],
    });
  }
  const first = decision.accepted[0];
  if (!first) throw new GatewayError("untrusted_source", "no source accepts the signatures");
  return { source: first.source, keyIds: first.keyIds, statement: decision.statement, name: decision.name, digestHex: input.digestHex };
}

/** The upload path's early verdict on an envelope, before the artifact's bytes are known. */
export interface TrustPreflight {
  subjectName: string;
  subjectDigestHex: string;
  sourceIds: string[];
}

/** What completePublish needs to finish a preflight: the decision and what it was made on. */
interface PreflightBasis {
  envelope: Uint8Array | string;
  allowlist: Allowlist;
  at: Date;
  decision: TrustDecision;
}

const preflightBases = new WeakMap<TrustPreflight, PreflightBasis>();

/**
 * The upload path's early check, before the artifact body is stored: everything verifyPublish
 * checks except the digest (the PAE covers the statement, not the artifact). Throws the same codes.
 * completePublish finishes it once the body's digest is known.
 */
export function preflightEnvelope(envelope: Uint8Array | string, allowlist: Allowlist, now: Date): TrustPreflight {
  const decision = decideTrust(envelope, allowlist, now, undefined);
  const preflight: TrustPreflight = {
    subjectName: decision.statement.subject[0].name,
    subjectDigestHex: decision.statement.subject[0].digest.sha256,
    sourceIds: decision.accepted.map((a) => a.source.id),
  };
  preflightBases.set(preflight, { envelope, allowlist, at: now, decision });
  return preflight;
}

/** Whether some key of the allowlist is inside its validity window at one time and not at the other. */
function keyWindowsDiffer(allowlist: Allowlist, a: Date, b: Date): boolean {
  if (a.getTime() === b.getTime()) return false;
  return allowlist.sources.some((s) => s.keys.some((k) => (keyWindowProblem(k, a) === undefined) !== (keyWindowProblem(k, b) === undefined)));
}

/**
 * verifyPublish for an envelope that was preflighted: the same result and the same codes, without
 * verifying the signatures again when they were judged on the same envelope against the same
 * allowlist object, and no key's validity window opened or closed since (the signatures and each
 * source's rules then decide as they did). What remains is what the preflight could not check:
 * the requested name, then the subject digest (constant-time) and size against the received
 * bytes, in verifyPublish's order. Otherwise it is verifyPublish.
 */
export function completePublish(
  preflight: TrustPreflight,
  input: { envelope: Uint8Array | string; digestHex: string; size?: number; name?: string; allowlist: Allowlist; now: Date },
): PublishVerification {
  const basis = preflightBases.get(preflight);
  if (
    basis === undefined ||
    basis.envelope !== input.envelope ||
    basis.allowlist !== input.allowlist ||
    keyWindowsDiffer(input.allowlist, basis.at, input.now)
  ) {
    return verifyPublish(input);
  }
  const { decision } = basis;
  checkRequestedName(decision.name, input.name);
  return checkSubject(decision, input);
}

/** The rule of a requested name: it passes the name rule and equals the statement's subject name. */
function checkRequestedName(subjectName: ArtifactName, requested: string | undefined): ArtifactName {
  // A requested name goes through the same rule as the signed one: `verify --name`, the upload's
  // name field and header, a stored record's name on re-check.
  const name = requested === undefined ? subjectName : parseArtifactName(requested, "the requested name");
  if (name !== subjectName) {
    throw new GatewayError("name_not_allowed", `the signed statement names ${quoteUntrusted(subjectName)}, not ${quoteUntrusted(name)}`, {
      reasons: [{ code: "name_not_allowed", message: "artifact name differs from the statement's subject name" }],
    });
  }
  return name;
}

const RECHECK_ORDER: readonly ErrorCode[] = [...SPECIFICITY, "bad_signature", "digest_mismatch", "wrong_predicate_type", "invalid_name", "malformed_signature"];

/** One stored envelope with the name its statement signed (absent in records written before names were kept). */
export interface StoredEnvelope {
  envelope: string;
  name?: string | undefined;
}

/** What a re-check takes: the stored envelopes, the artifact, the allowlist in force now. */
export interface RecheckInput {
  envelopes: readonly (string | StoredEnvelope)[];
  digestHex: string;
  name: string;
  allowlist: Allowlist;
  now: Date;
}

/** A stored envelope that still verifies, with its index in `envelopes`. */
export interface TrustedEnvelope {
  index: number;
  verification: PublishVerification;
}

/**
 * The stored envelopes that still verify, in order, lazily (a caller that needs one stops at
 * it); every failure met on the way is pushed onto `failures`.
 */
function* verifiedEnvelopes(input: RecheckInput, failures: GatewayError[]): Generator<TrustedEnvelope> {
  for (const [index, entry] of input.envelopes.entries()) {
    const envelope = typeof entry === "string" ? entry : entry.envelope;
    const name = (typeof entry === "string" ? undefined : entry.name) ?? input.name;
    let verification: PublishVerification;
    try {
      verification = verifyPublish({ envelope, digestHex: input.digestHex, name, allowlist: input.allowlist, now: input.now });
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      failures.push(err);
      continue;
    }
    yield { index, verification };
  }
}

/** The refusal when no stored envelope verifies: the most specific failure, with every reason. */
function noneTrusted(failures: readonly GatewayError[]): GatewayError {
  for (const code of RECHECK_ORDER) {
    const hit = failures.find((f) => f.code === code);
    if (hit) return new GatewayError(hit.code, hit.message, { reasons: failures.map((f) => ({ code: f.code, message: f.message })) });
  }
  return failures[0] ?? new GatewayError("untrusted_source", "the artifact has no stored signature envelope", { reasons: [] });
}

/**
 * The fetch path: a stored artifact stays servable while ANY of its stored envelopes still
 * verifies against the current allowlist (keys get revoked, expire, sources are removed).
 * Each envelope is checked against its own signed name (the same bytes may be published under
 * different names by different sources); a bare string or an entry without a name falls back
 * to `name` (the record's name). Returns the first that verifies; otherwise throws the most
 * specific reason (key_revoked, key_expired, …, untrusted_source).
 */
export function recheckTrust(input: RecheckInput): PublishVerification {
  const failures: GatewayError[] = [];
  for (const trusted of verifiedEnvelopes(input, failures)) return trusted.verification;
  throw noneTrusted(failures);
}

/** recheckTrust for every stored envelope: each one that still verifies (never none); throws as recheckTrust does. */
export function recheckTrustAll(input: RecheckInput): [TrustedEnvelope, ...TrustedEnvelope[]] {
  const failures: GatewayError[] = [];
  const [first, ...rest] = verifiedEnvelopes(input, failures);
  if (first === undefined) throw noneTrusted(failures);
  return [first, ...rest];
}
