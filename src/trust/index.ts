/**
 * The trust layer: allowlist.json, Ed25519 keys, DSSE envelopes with in-toto publish statements,
 * and the pure verification functions the HTTP layer and the CLI call. Nothing here reads env,
 * logs or touches the network; time is injected.
 */
export { loadAllowlist, parseAllowlist, revokedKeyIdsOf, parseAllowlistFile, readAllowlistJson, AllowlistFileSchema, SOURCE_ID_PATTERN } from "./allowlist";
export type { Allowlist, AllowlistFile, AllowlistKeyEntry, AllowlistSourceEntry, TrustedKey, TrustedSource } from "./allowlist";
export { decodeBase64Strict, encodeBase64 } from "./base64";
export {
  PUBLISH_PREDICATE_TYPE,
  DSSE_PAYLOAD_TYPE,
  STATEMENT_TYPE,
  PublishPredicateSchema,
  pae,
  parseEnvelope,
  parseStatement,
  buildPublishStatement,
  serializeStatement,
  signEnvelope,
  addSignature,
  utf8Strict,
} from "./dsse";
export { parseArtifactName, isValidArtifactName, artifactNameProblem } from "./artifactName";
export type { ArtifactName } from "./artifactName";
export { parseStrictJson } from "./strictJson";
export type { Envelope, PublishPredicate, Statement } from "./dsse";
export { matchesNameGlob, namePatternProblem } from "./glob";
export { keyIdOf, parsePublicKey, publicKeyToPem, privateKeyToPem, readPrivateKey, verifyEd25519 } from "./keys";
export { verifyPublish, preflightEnvelope, completePublish, recheckTrust, recheckTrustAll, isNameAllowed } from "./verify";
export type { PublishVerification, RecheckInput, StoredEnvelope, TrustedEnvelope, TrustPreflight, TrustReason } from "./verify";
export { addKeyEntry, formatAllowlistJson, keyIdsBySource, writeFileAtomicSync } from "./edit";
export type { AddKeyOutcome } from "./edit";
