import { inspectionSummary, type AuditSink } from "../audit/types";
import { formatDigest, sameDigest, sha256File } from "../digest";
import { GatewayError } from "../errors";
import { MAX_REMEMBERED_REFUSALS } from "../limits";
import type { Inspector } from "../inspect/inspector";
import { contentPolicyDigest } from "../inspect/policy";
import { rejectionCode, type InspectionReport } from "../inspect/report";
import type { GatewayMetrics } from "../metrics/types";
import { recordPolicyAcceptance } from "../store/record";
import type { ArtifactRecord, ArtifactStore } from "../store/types";
import type { PublishVerification, TrustedEnvelope } from "../trust";

export interface ReinspectionDeps {
  store: ArtifactStore;
  inspect: Inspector;
  audit: AuditSink;
  metrics: GatewayMetrics;
}

/**
 * Whether one of the trusted signatures was accepted under its source's content policy as it is now.
 * A signature without a recorded policy (records written before it was kept) never was.
 */
export function acceptedUnderCurrentPolicy(record: ArtifactRecord, trusted: readonly TrustedEnvelope[]): TrustedEnvelope | undefined {
  return trusted.find((t) => record.signatures[t.index]?.policyDigest === contentPolicyDigest(t.verification.source.pickle));
}

/**
 * Inspection again, on the way out, of an artifact none of whose trusted signatures was accepted
 * under its source's current content policy: an operator who tightens a policy (removes an
 * allowed import, turns off TorchScript) must not keep serving what the new policy refuses, and
 * a loosened policy must not serve what nobody inspected under it. The blob is re-hashed, then
 * inspected under each trusted signature's current policy until one accepts; the acceptance is
 * audited and recorded on the record (the policy digest on those signatures, the new report), so
 * it happens once per policy change. A refusal is audited and remembered (bounded), and the fetch
 * is refused with the inspection's code; the blob stays (a policy can be loosened again).
 * Concurrent fetches of the same artifact share one inspection.
 */
export class Reinspector {
  private readonly inFlight = new Map<string, Promise<InspectionReport>>();
  private readonly refusals = new Map<string, InspectionReport>();

  constructor(private readonly deps: ReinspectionDeps) {}

  /** The verification to serve under, and the record as updated; throws the refusal. */
  async admit(
    hexDigest: string,
    record: ArtifactRecord,
    trusted: readonly TrustedEnvelope[],
    context: { requestId?: string },
  ): Promise<{ verification: PublishVerification; record: ArtifactRecord }> {
    let refusal: { report: InspectionReport; verification: PublishVerification; code: "unsafe_artifact" | "malformed_artifact" } | undefined;
    const tried = new Set<string>();
    for (const candidate of trusted) {
      const { verification } = candidate;
      const policyDigest = contentPolicyDigest(verification.source.pickle);
      const key = `${hexDigest}/${verification.source.id}/${verification.name}/${policyDigest}`;
      if (tried.has(key)) continue;
      tried.add(key);
      const report = await this.inspectOnce(key, hexDigest, verification, context);
      const code = rejectionCode(report);
      if (code !== undefined) {
        refusal ??= { report, verification, code };
        continue;
      }
      // Every trusted signature of this source and name holds under this policy now.
      const envelopes = new Set(
        trusted
          .filter((t) => t.verification.source.id === verification.source.id && t.verification.name === verification.name)
          .flatMap((t) => record.signatures[t.index]?.envelope ?? []),
      );
      const updated = await this.deps.store.updateRecord(hexDigest, (current) =>
        recordPolicyAcceptance(current, { inspection: report, envelopes, policyDigest }),
      );
      return { verification, record: updated ?? record };
    }
    if (refusal === undefined) throw new GatewayError("internal", "no trusted signature to inspect the artifact for");
    throw new GatewayError(
      refusal.code,
      `the content policy of source '${refusal.verification.source.id}' changed since this artifact was accepted, and inspection under the current policy rejects it (format ${refusal.report.format})`,
      { source: refusal.verification.source.id, reinspected: true, inspection: refusal.report },
    );
  }

  private inspectOnce(key: string, hexDigest: string, verification: PublishVerification, context: { requestId?: string }): Promise<InspectionReport> {
    const remembered = this.refusals.get(key);
    if (remembered !== undefined) return Promise.resolve(remembered);
    let running = this.inFlight.get(key);
    if (running === undefined) {
      running = this.inspect(key, hexDigest, verification, context).finally(() => {
        this.inFlight.delete(key);
      });
      this.inFlight.set(key, running);
    }
    return running;
  }

  private async inspect(key: string, hexDigest: string, verification: PublishVerification, context: { requestId?: string }): Promise<InspectionReport> {
    const file = await this.deps.store.localFile(hexDigest);
    if (file === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hexDigest)}`);
    let report: InspectionReport;
    try {
      // The inspector reads the file itself: make sure it reads the bytes that were signed.
      const { digestHex } = await sha256File(file.path);
      if (!sameDigest(digestHex, hexDigest)) {
        throw new GatewayError("integrity_error", `stored blob hashes to ${digestHex}, not ${hexDigest}`, { actual: digestHex });
      }
      const started = process.hrtime.bigint();
      report = await this.deps.inspect(file.path, { policy: verification.source.pickle, fileName: verification.name });
      this.deps.metrics.inspectionSeconds(Number(process.hrtime.bigint() - started) / 1e9);
    } finally {
      await file.release();
    }
    const code = rejectionCode(report);
    try {
      await this.deps.audit.append({
        type: "artifact.reinspected",
        ...(context.requestId !== undefined ? { requestId: context.requestId } : {}),
        digest: formatDigest(hexDigest),
        name: verification.name,
        source: verification.source.id,
        keyIds: verification.keyIds,
        ...(code !== undefined ? { codes: [code] } : {}),
        inspection: inspectionSummary(report),
        details: { reason: "content policy changed since acceptance", policyDigest: contentPolicyDigest(verification.source.pickle) },
      });
    } catch {
      this.deps.metrics.auditWriteFailed();
      throw new GatewayError("unavailable", "the audit log cannot be written; try again later");
    }
    if (code !== undefined) {
      if (this.refusals.size >= MAX_REMEMBERED_REFUSALS) {
        const oldest = this.refusals.keys().next().value;
        if (oldest !== undefined) this.refusals.delete(oldest);
      }
      this.refusals.set(key, report);
    }
    return report;
  }
}
