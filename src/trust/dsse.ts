import nacl from "tweetnacl";
import { z } from "zod";
import { Sha256HexSchema } from "../digest";
import { GatewayError } from "../errors";
import { MAX_ENVELOPE_BYTES, MAX_SIG_BASE64_LENGTH, MAX_SIGNATURES_PER_ENVELOPE } from "../limits";
import { parseArtifactName, quoteUntrusted, type ArtifactName } from "./artifactName";
import { decodeBase64Strict, encodeBase64 } from "./base64";
import { parseStrictJson } from "./strictJson";

/** The predicate type that means "publish this artifact to modelgate". Any other is refused, so
 * an attestation made for another purpose (SLSA provenance, a test result…) cannot be replayed
 * as a publish approval. */
export const PUBLISH_PREDICATE_TYPE = "https://modelgate.dev/attestation/publish/v1";
/** DSSE payloadType of an in-toto attestation. */
export const DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json";
/** in-toto Statement v1. */
export const STATEMENT_TYPE = "https://in-toto.io/Statement/v1";

/** DSSE allows any key id string; we accept printable ASCII only (they end up in messages and logs). */
const KEYID_PATTERN = /^[\x21-\x7e]{1,256}$/;

/** Optional metadata a publisher may attach; strict: an unknown field is malformed. */
export const PublishPredicateSchema = z.strictObject({
  framework: z.string().min(1).max(64).optional(),
  description: z.string().max(4096).optional(),
  version: z.string().min(1).max(128).optional(),
  license: z.string().min(1).max(128).optional(),
  /** Artifact size in bytes; when present it must equal the uploaded size. */
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).optional(),
});
export type PublishPredicate = z.infer<typeof PublishPredicateSchema>;

export { quoteUntrusted };

const SubjectSchema = z.strictObject({
  // Checked after the schema by parseArtifactName, so a bad name is `invalid_name`, not malformed.
  name: z.string(),
  digest: z.strictObject({ sha256: Sha256HexSchema }),
});

/** First pass: everything but the predicate, so a foreign predicateType is reported as such. */
const StatementHeadSchema = z.strictObject({
  _type: z.literal(STATEMENT_TYPE),
  subject: z.tuple([SubjectSchema]),
  predicateType: z.string().max(1024),
  predicate: z.unknown().optional(),
});

export interface Statement {
  _type: string;
  subject: [{ name: ArtifactName; digest: { sha256: string } }];
  predicateType: string;
  predicate: PublishPredicate;
}

export interface Envelope {
  payloadType: string;
  payload: string;
  signatures: { keyid: string; sig: string }[];
}

const EnvelopeSchema = z.strictObject({
  payloadType: z.string().max(256),
  payload: z.string().min(1),
  signatures: z
    .array(z.strictObject({ keyid: z.string().regex(KEYID_PATTERN, "1 to 256 printable ASCII characters"), sig: z.string().min(1).max(MAX_SIG_BASE64_LENGTH) }))
    .min(1)
    .max(MAX_SIGNATURES_PER_ENVELOPE),
});

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((i) => `${i.path.length > 0 ? i.path.map(String).join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

/**
 * DSSE pre-authentication encoding (DSSE protocol v1):
 * "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths as ASCII decimal byte counts.
 * The signature covers this, so a payload cannot be reinterpreted under another payloadType.
 */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, "utf8");
  const head = Buffer.from(`DSSEv1 ${String(type.length)} ${payloadType} ${String(payload.length)} `, "utf8");
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/**
 * Bytes of an envelope or statement as text: invalid UTF-8 is `malformed_signature`, and a byte
 * order mark is KEPT (`ignoreBOM: true`) so the strict JSON scan refuses it: TextDecoder would
 * strip it silently, while Python's json.loads and Go's encoding/json refuse a BOM-prefixed text.
 */
export function utf8Strict(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    throw new GatewayError("malformed_signature", `${what} is not valid UTF-8`, undefined, { cause: err });
  }
}

/**
 * Validate a statement object: in-toto v1, one subject, the publish predicate type, strict
 * predicate, and the subject name through the name rule (`invalid_name`, src/trust/artifactName.ts).
 */
export function parseStatement(json: unknown): Statement {
  const head = StatementHeadSchema.safeParse(json);
  if (!head.success) {
    throw new GatewayError("malformed_signature", `statement is not an in-toto Statement v1 with one subject: ${describeIssues(head.error)}`);
  }
  if (head.data.predicateType !== PUBLISH_PREDICATE_TYPE) {
    throw new GatewayError(
      "wrong_predicate_type",
      `statement predicateType is ${quoteUntrusted(head.data.predicateType)}, expected '${PUBLISH_PREDICATE_TYPE}'`,
    );
  }
  const predicate = PublishPredicateSchema.safeParse(head.data.predicate ?? {});
  if (!predicate.success) {
    throw new GatewayError("malformed_signature", `statement predicate is invalid: ${describeIssues(predicate.error)}`);
  }
  const [subject] = head.data.subject;
  const name = parseArtifactName(subject.name, "the statement's subject name");
  return { ...head.data, subject: [{ name, digest: subject.digest }], predicate: predicate.data };
}

/**
 * Parse a DSSE envelope (size-capped, strict schema, strict base64) and its in-toto statement.
 * Does not verify signatures. Throws `malformed_signature` or `wrong_predicate_type`.
 */
export function parseEnvelope(bytes: Uint8Array | string): { envelope: Envelope; statement: Statement; payload: Uint8Array } {
  const size = typeof bytes === "string" ? Buffer.byteLength(bytes, "utf8") : bytes.length;
  if (size > MAX_ENVELOPE_BYTES) {
    throw new GatewayError("malformed_signature", `signature envelope is ${String(size)} bytes, more than the limit of ${String(MAX_ENVELOPE_BYTES)}`);
  }
  const text = typeof bytes === "string" ? bytes : utf8Strict(bytes, "signature envelope");
  const parsed = EnvelopeSchema.safeParse(parseStrictJson(text, "signature envelope"));
  if (!parsed.success) {
    throw new GatewayError("malformed_signature", `signature envelope is not a DSSE envelope: ${describeIssues(parsed.error)}`);
  }
  const envelope = parsed.data;
  if (envelope.payloadType !== DSSE_PAYLOAD_TYPE) {
    throw new GatewayError("malformed_signature", `envelope payloadType is ${quoteUntrusted(envelope.payloadType)}, expected '${DSSE_PAYLOAD_TYPE}'`);
  }
  for (const [i, s] of envelope.signatures.entries()) {
    const sig = decodeBase64Strict(s.sig, `signatures.${String(i)}.sig`);
    if (sig.length !== nacl.sign.signatureLength) {
      throw new GatewayError("malformed_signature", `signatures.${String(i)}.sig has ${String(sig.length)} bytes, an Ed25519 signature has 64`);
    }
  }
  const payload = decodeBase64Strict(envelope.payload, "envelope payload");
  const statement = parseStatement(parseStrictJson(utf8Strict(payload, "envelope payload"), "envelope payload"));
  return { envelope, statement, payload };
}

/** Build the publish statement for an artifact. */
export function buildPublishStatement(input: { name: string; digestHex: string; predicate?: PublishPredicate }): Statement {
  return parseStatement({
    _type: STATEMENT_TYPE,
    subject: [{ name: input.name, digest: { sha256: input.digestHex } }],
    predicateType: PUBLISH_PREDICATE_TYPE,
    predicate: input.predicate ?? {},
  });
}

/** Serialize a statement the way `signEnvelope` signs it (compact JSON, field order as given). */
export function serializeStatement(statement: Statement): Uint8Array {
  return new Uint8Array(Buffer.from(JSON.stringify(statement), "utf8"));
}

/** Sign a statement into a one-signature DSSE envelope with a tweetnacl 64-byte secret key. */
export function signEnvelope(statement: Statement, secretKey: Uint8Array, keyId: string): Envelope {
  if (secretKey.length !== nacl.sign.secretKeyLength) {
    throw new GatewayError("invalid_key", `a tweetnacl secret key has ${String(nacl.sign.secretKeyLength)} bytes, found ${String(secretKey.length)}`);
  }
  const payload = serializeStatement(statement);
  const sig = nacl.sign.detached(pae(DSSE_PAYLOAD_TYPE, payload), secretKey);
  return { payloadType: DSSE_PAYLOAD_TYPE, payload: encodeBase64(payload), signatures: [{ keyid: keyId, sig: encodeBase64(sig) }] };
}

/** Add a co-signature (for thresholds > 1) to an existing envelope; the payload is unchanged. */
export function addSignature(envelope: Envelope, secretKey: Uint8Array, keyId: string): Envelope {
  const payload = decodeBase64Strict(envelope.payload, "envelope payload");
  const sig = nacl.sign.detached(pae(envelope.payloadType, payload), secretKey);
  return { ...envelope, signatures: [...envelope.signatures, { keyid: keyId, sig: encodeBase64(sig) }] };
}
