import { inspectionSummary, type AuditEvent, type AuditSink } from "../audit/types";
import { formatDigest } from "../digest";
import { GatewayError, messageOf } from "../errors";
import type { Inspector } from "../inspect/inspector";
import { contentPolicyDigest } from "../inspect/policy";
import { rejectionCode, rejects, type InspectionReport } from "../inspect/report";
import type { GatewayMetrics } from "../metrics/types";
import type { AllowlistProvider } from "../reload/allowlistHolder";
import type { ArtifactRecord, StagedUpload, StoredSignature } from "../store/types";
import { completePublish, verifyPublish, type Allowlist, type ArtifactName, type PublishVerification, type TrustPreflight } from "../trust";
import { asGatewayError, type Call, type CallerIdentity } from "./call";

export interface PublishDeps {
  /** The allowlist in force; read again after inspection and after the audit append. */
  allowlist: AllowlistProvider;
  inspect: Inspector;
  /** Every decision is appended here before it takes effect (an accepted upload before its commit). */
  audit: AuditSink;
  metrics: GatewayMetrics;
  /** Trust decisions (validity windows) and the record's times use it. */
  now: () => Date;
}

export interface PublishInput extends Call {
  /** A received upload (its `blob` is set). publish commits it; its owner aborts it afterwards whatever the outcome. */
  upload: StagedUpload;
  /** The DSSE envelope as received (JSON text). */
  envelope: string;
  /** The name asked for, already through the name rule; default: the statement's subject name. */
  name?: ArtifactName | undefined;
  /** The envelope's preflight, when it ran before the body: its verdict stands while the allowlist is the same. */
  preflight?: TrustPreflight | undefined;
  /** Aborted when nobody waits for the answer any more (client hang-up, server shutdown); passed to the inspector. */
  signal?: AbortSignal | undefined;
  /** process.hrtime.bigint() when the attempt began (the request arrived): the duration metrics count from it. */
  startedAt?: bigint | undefined;
}

export interface PublishResult {
  /** True when this upload stored the bytes; false when they were already stored (a signature was merged). */
  created: boolean;
  /** The record as stored after the upload. */
  record: ArtifactRecord;
  /** This upload's verification: its source, keys and signed name. */
  verification: PublishVerification;
}

/** Whatever is known about an upload when it is decided, for the audit entry and the log. */
export interface PublishFacts {
  digestHex?: string | undefined;
  size?: number | undefined;
  name?: string | undefined;
  verification?: PublishVerification | undefined;
  inspection?: InspectionReport | undefined;
}

/** Inspection passes when the allowlist changes under an upload; past this the upload is refused. */
const MAX_INSPECTION_ROUNDS = 3;

const secondsSince = (started: bigint): number => Number(process.hrtime.bigint() - started) / 1e9;
const ms = (secs: number): number => Math.round(secs * 1000);

/**
 * The finding counts of a rejection message, omitted findings included: a report lists at most
 * MAX_REPORT_FINDINGS findings and counts the rest in `omittedFindings` (report.ts capFindings),
 * so counting `findings` alone understated big rejections ("1000" for 25,000). The cut list keeps
 * rejecting findings before innocuous ones: when it still lists an innocuous finding, every
 * rejecting finding is listed and their count is exact; otherwise it is a lower bound.
 */
export function findingCounts(report: InspectionReport): string {
  const listed = report.findings.length;
  const rejecting = report.findings.filter(rejects).length;
  const omitted = report.omittedFindings?.count ?? 0;
  if (omitted === 0) return `${String(listed)} finding(s), ${String(rejecting)} rejecting`;
  const exact = report.findings.some((f) => !rejects(f));
  return `${String(listed + omitted)} finding(s) (${String(listed)} listed, ${String(omitted)} counted by code in omittedFindings), ${exact ? "" : "at least "}${String(rejecting)} rejecting`;
}

/** Whether an inspection run for one verification holds for another (same source, same pickle policy). */
function samePolicy(a: PublishVerification, b: PublishVerification): boolean {
  return a.source.id === b.source.id && JSON.stringify(a.source.pickle) === JSON.stringify(b.source.pickle);
}

/** The audit fields of an upload decision: the caller and the facts known. */
function auditFields(caller: CallerIdentity, facts: PublishFacts): Omit<AuditEvent, "type"> {
  const event: Omit<AuditEvent, "type"> = {};
  if (caller.tokenId !== undefined) event.tokenId = caller.tokenId;
  if (caller.client !== undefined) event.client = caller.client;
  if (facts.digestHex !== undefined) event.digest = formatDigest(facts.digestHex);
  if (facts.name !== undefined) event.name = facts.name;
  if (facts.size !== undefined) event.size = facts.size;
  if (facts.verification) {
    event.source = facts.verification.source.id;
    event.keyIds = facts.verification.keyIds;
  }
  if (facts.inspection) event.inspection = inspectionSummary(facts.inspection);
  return event;
}

export interface PublishRefusal extends Call {
  /** Why: a GatewayError, or anything else (then `internal`, or `insufficient_storage` for a full disk). */
  error: unknown;
  facts?: PublishFacts | undefined;
  /** The staged upload, dropped before the refusal is recorded (nothing of a refused upload stays). */
  upload?: StagedUpload | undefined;
  /** process.hrtime.bigint() when the attempt began. */
  startedAt?: bigint | undefined;
}

/**
 * Refuse an upload: drop what was staged, append `upload.rejected` (with whatever was learnt:
 * digest, name, source, inspection), log, count. Returns the error to answer with: the refusal,
 * or `unavailable` when the audit log cannot be written. Used by publish, and by a transport that
 * refuses an upload before it reaches publish (untrusted preflight, size cap, malformed body).
 */
export async function refusePublish(deps: Pick<PublishDeps, "audit" | "metrics">, refusal: PublishRefusal): Promise<GatewayError> {
  const { caller, log } = refusal;
  const facts = refusal.facts ?? {};
  let gerr = asGatewayError(refusal.error);
  if (gerr.code === "internal") log.error({ err: messageOf(gerr.cause ?? refusal.error) }, "upload failed on an unexpected error");
  await refusal.upload?.abort();
  const event: AuditEvent = { type: "upload.rejected", requestId: caller.requestId, codes: [gerr.code], ...auditFields(caller, facts) };
  try {
    await deps.audit.append(event);
  } catch (auditErr) {
    deps.metrics.auditWriteFailed();
    log.error({ err: messageOf(auditErr) }, "audit append failed; refusing with 503");
    gerr = new GatewayError("unavailable", "the audit log cannot be written; try again later");
  }
  log.warn(
    {
      digest: facts.digestHex !== undefined ? formatDigest(facts.digestHex) : undefined,
      source: facts.verification?.source.id,
      verdict: "rejected",
      code: gerr.code,
    },
    "upload rejected",
  );
  deps.metrics.uploadFinished("rejected", gerr.code, refusal.startedAt !== undefined ? secondsSince(refusal.startedAt) : 0);
  return gerr;
}

/**
 * Publish a received upload, in the order of issue 3: trusted source and signature -> subject
 * digest equals the computed sha256 -> content inspection -> audit -> commit.
 *
 * The envelope is verified once per allowlist version: a preflight made before the body (on the
 * allowlist still in force) is completed with the name, digest and size checks only, so a
 * mismatch fails at once, without verifying a signature again. Inspection can take seconds: an
 * allowlist reloaded meanwhile (a key revoked, a source removed, a stricter pickle policy) decides,
 * not the one the upload started under; a changed content policy means inspecting again.
 *
 * Audit ordering (the port requires the decision to be durable before the answer): an accepted
 * upload's entry is appended BEFORE the commit. If the append fails, the upload is refused
 * `unavailable` and nothing is stored. If the commit then fails (disk full), a second,
 * `upload.rejected` entry records it. A crash between the two leaves an audit entry for an
 * artifact the store does not hold, never a stored artifact without an audit entry.
 *
 * Every refusal is audited (refusePublish) and thrown as a GatewayError; the staged upload is
 * dropped before the refusal is recorded.
 */
export async function publish(deps: PublishDeps, input: PublishInput): Promise<PublishResult> {
  const started = input.startedAt ?? process.hrtime.bigint();
  const receivedAt = secondsSince(started);
  const { upload, envelope, log } = input;
  const facts: PublishFacts = {};
  try {
    const blob = upload.blob;
    if (blob === undefined) throw new GatewayError("internal", "publish takes a received upload");
    facts.digestHex = blob.digestHex;
    facts.size = blob.size;
    facts.name = input.name;

    const now = deps.now();
    const verifyAgainst = (allowlist: Allowlist, preflight?: TrustPreflight): PublishVerification => {
      const request = { envelope, digestHex: blob.digestHex, size: blob.size, name: input.name, allowlist, now };
      const v = preflight !== undefined ? completePublish(preflight, request) : verifyPublish(request);
      facts.verification = v;
      facts.name = v.name;
      return v;
    };
    let allowlist = deps.allowlist.current();
    let verification = verifyAgainst(allowlist, input.preflight);

    const inspectStarted = process.hrtime.bigint();
    let report: InspectionReport | undefined;
    for (let round = 1; report === undefined; round++) {
      const inspected = await inspectUpload(deps, blob.path, verification, input.signal);
      const latest = deps.allowlist.current();
      if (latest === allowlist) {
        report = inspected;
        break;
      }
      const previous = verification;
      allowlist = latest;
      verification = verifyAgainst(allowlist);
      if (samePolicy(previous, verification)) report = inspected;
      else if (round >= MAX_INSPECTION_ROUNDS) throw new GatewayError("unavailable", "the allowlist kept changing while the upload was inspected; try again");
    }
    const inspectSeconds = secondsSince(inspectStarted);
    deps.metrics.inspectionSeconds(inspectSeconds);
    facts.inspection = report;
    const refusal = rejectionCode(report);
    if (refusal !== undefined) {
      throw new GatewayError(refusal, `content inspection rejected the artifact (${findingCounts(report)}; format ${report.format})`, { inspection: report });
    }

    const createdAt = now.toISOString();
    const signature: StoredSignature = {
      source: verification.source.id,
      keyIds: verification.keyIds,
      envelope,
      addedAt: createdAt,
      name: verification.name,
      policyDigest: contentPolicyDigest(verification.source.pickle),
    };
    const record: ArtifactRecord = {
      digest: formatDigest(blob.digestHex),
      size: blob.size,
      name: verification.name,
      names: [verification.name],
      format: report.format,
      createdAt,
      signatures: [signature],
      inspection: report,
    };

    try {
      await deps.audit.append({ type: "upload.accepted", requestId: input.caller.requestId, ...auditFields(input.caller, facts) });
    } catch (auditErr) {
      deps.metrics.auditWriteFailed();
      log.error({ err: messageOf(auditErr) }, "audit append failed; upload not promoted");
      throw new GatewayError("unavailable", "the audit log cannot be written; the upload was not stored, try again later");
    }
    if (deps.allowlist.current() !== allowlist) {
      // Reloaded while the audit entry was written: decide on the allowlist in force now.
      const latest = verifyAgainst(deps.allowlist.current());
      if (!samePolicy(verification, latest)) throw new GatewayError("unavailable", "the allowlist changed while the upload was being stored; try again");
    }
    const commitStarted = secondsSince(started);
    const result = await upload.commit(record, signature);
    const timings = { receiveMs: ms(receivedAt), inspectMs: ms(inspectSeconds), promoteMs: ms(secondsSince(started) - commitStarted) };
    deps.metrics.bytesIn(blob.size);
    deps.metrics.uploadFinished("accepted", "ok", secondsSince(started));
    log.info(
      { digest: record.digest, source: verification.source.id, verdict: "accepted", created: result.created, size: blob.size, ...timings },
      "upload accepted",
    );
    return { created: result.created, record: result.record, verification };
  } catch (err) {
    throw await refusePublish(deps, { error: err, facts, upload, caller: input.caller, log, startedAt: started });
  }
}

/** One inspection of the staged bytes under the verification's content policy; cancelled with `signal`. */
async function inspectUpload(deps: PublishDeps, file: string, verification: PublishVerification, signal: AbortSignal | undefined): Promise<InspectionReport> {
  try {
    return await deps.inspect(file, { policy: verification.source.pickle, fileName: verification.name, ...(signal !== undefined ? { signal } : {}) });
  } catch (err) {
    // An inspection stopped because nobody waits for it is not a verdict on the bytes.
    if (signal?.aborted === true) {
      throw new GatewayError("unavailable", "the upload was cancelled (client gone or server stopping) while it was inspected", undefined, { cause: err });
    }
    throw err;
  }
}
