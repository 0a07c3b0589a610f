import { namesOf } from "./names";
import type { ArtifactRecord, StoredSignature } from "./types";

/**
 * The record rules every store backend applies, as pure functions: what a new approval of bytes
 * already stored does to their record, and what an acceptance under a changed content policy
 * does to it. The backend only reads, locks and writes (the filesystem store under its
 * per-digest lock; an object store with a conditional write).
 */

/**
 * Whether a stored signature already approves what `sig` approves: the same envelope, or one by
 * the same source for the same name with the same keys. Envelopes are public (GET .../metadata)
 * and any re-spelling of one verifies, so comparing the text alone let a publish token grow a
 * record without bound by re-uploading the same bytes with re-indented copies.
 */
export function sameApproval(stored: StoredSignature, sig: StoredSignature, recordName: string): boolean {
  if (stored.envelope === sig.envelope) return true;
  const keys = (s: StoredSignature): string => [...new Set(s.keyIds)].sort().join(",");
  return stored.source === sig.source && (stored.name ?? recordName) === (sig.name ?? recordName) && keys(stored) === keys(sig);
}

/**
 * The record after the same bytes were accepted again with `sig`; undefined when it stays as it
 * is. A new approval is appended (its name joins `names`); the same approval again, inspected
 * just now under its source's current policy, records that policy on the stored signature (a
 * fetch need not inspect it again); the same approval under the policy already recorded, or one
 * without a policy, changes nothing. The first acceptance's name, time and report stay.
 */
export function mergeApproval(existing: ArtifactRecord, sig: StoredSignature): ArtifactRecord | undefined {
  const known = existing.signatures.findIndex((s) => sameApproval(s, sig, existing.name));
  if (known >= 0) {
    if (sig.policyDigest === undefined || existing.signatures[known]?.policyDigest === sig.policyDigest) return undefined;
    return { ...existing, signatures: existing.signatures.map((s, i) => (i === known ? { ...s, policyDigest: sig.policyDigest } : s)) };
  }
  return { ...existing, names: [...new Set([...namesOf(existing), sig.name ?? existing.name])], signatures: [...existing.signatures, sig] };
}

/**
 * The record after its bytes were inspected again and accepted under a changed content policy:
 * the new report replaces the old one, and the signatures whose envelopes the acceptance holds
 * for (one source, one name) carry the policy it ran under.
 */
export function recordPolicyAcceptance(
  record: ArtifactRecord,
  acceptance: { inspection: ArtifactRecord["inspection"]; envelopes: ReadonlySet<string>; policyDigest: string },
): ArtifactRecord {
  return {
    ...record,
    inspection: acceptance.inspection,
    signatures: record.signatures.map((s) => (acceptance.envelopes.has(s.envelope) ? { ...s, policyDigest: acceptance.policyDigest } : s)),
  };
}
