import type { Request, RequestHandler, Response } from "express";
import multer from "multer";
import { z } from "zod";
import { inspectionSummary, type AuditEvent, type AuditSink } from "../audit/types";
import { formatDigest } from "../digest";
import { GatewayError, messageOf } from "../errors";
import type { Inspector } from "../inspect/inspector";
import { contentPolicyDigest } from "../inspect/policy";
import { rejectionCode, rejects, type InspectionReport } from "../inspect/report";
import {
  MAX_DRAIN_BYTES,
  MAX_LINGER_MS,
  MAX_MULTIPART_FIELD_BYTES,
  MAX_MULTIPART_FIELD_NAME_BYTES,
  MAX_MULTIPART_FIELDS,
  MAX_MULTIPART_OVERHEAD_BYTES,
  MAX_MULTIPART_PARTS,
} from "../limits";
import type { GatewayMetrics } from "../metrics/types";
import { namesOf } from "../store/names";
import type { ArtifactRecord, ArtifactStore, StagedBlob } from "../store/types";
import { parseArtifactName, verifyPublish, type Allowlist, type ArtifactName, type PublishVerification } from "../trust";
import type { AllowlistProvider } from "../reload/allowlistHolder";
import { sendError, toGatewayError, toUploadError } from "./errorHandler";
import { logOf, requestIdOf, tokenIdOf } from "./requestContext";
import { beginUpload, signatureField, UploadStorage, type UploadState } from "./uploadStorage";

export interface UploadRouteDeps {
  store: ArtifactStore;
  allowlist: AllowlistProvider;
  inspect: Inspector;
  audit: AuditSink;
  metrics: GatewayMetrics;
  maxUploadBytes: number;
  now: () => Date;
}

/** Text fields of the upload form; unknown fields are refused (zod at the boundary). */
const FieldsSchema = z.strictObject({
  signature: z.string().min(1).optional(),
  // Bounded by the multipart field cap; the name rule (parseArtifactName) runs next.
  name: z.string().optional(),
});

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

/** Whatever the route knows about the upload when it is decided, for the audit entry and the log. */
interface UploadFacts {
  digestHex?: string;
  size?: number;
  name?: string;
  verification?: PublishVerification;
  inspection?: InspectionReport;
}

const ms = (secs: number): number => Math.round(secs * 1000);

function declaredLength(req: Request): number | undefined {
  const header = req.get("content-length");
  if (header === undefined || !/^\d{1,16}$/.test(header)) return undefined;
  return Number(header);
}

/**
 * POST /v1/artifacts. Checks in the order of issue 3: envelope valid -> trusted source and
 * signature -> subject digest equals the computed sha256 -> content inspection -> promote.
 *
 * Audit ordering (the port requires the decision to be durable before the response): an accepted
 * upload's entry is appended BEFORE the blob is promoted. If the append fails, the upload is
 * refused 503 `unavailable` and nothing is promoted. If promotion then fails (disk full), a
 * second, `upload.rejected` entry records it. A crash between the two leaves an audit entry for
 * an artifact the store does not hold, never a served artifact without an audit entry.
 */
export function uploadHandler(deps: UploadRouteDeps): RequestHandler {
  const storage = new UploadStorage({ store: deps.store, maxUploadBytes: deps.maxUploadBytes, allowlist: deps.allowlist, now: deps.now });
  const parseMultipart = multer({
    storage,
    limits: {
      files: 2,
      parts: MAX_MULTIPART_PARTS,
      fields: MAX_MULTIPART_FIELDS,
      fieldSize: MAX_MULTIPART_FIELD_BYTES,
      fieldNameSize: MAX_MULTIPART_FIELD_NAME_BYTES,
    },
    fileFilter: (_req, file, cb) => {
      if (file.fieldname === "artifact" || file.fieldname === "signature") cb(null, true);
      else cb(new GatewayError("bad_request", `unexpected file part '${file.fieldname}' (expected 'signature' and 'artifact')`));
    },
  }).any();

  const runMultipart = (req: Request, res: Response): Promise<void> =>
    new Promise((resolve, reject) => {
      void parseMultipart(req, res, (err?: unknown) => {
        if (err === undefined || err === null) resolve();
        else reject(err instanceof Error ? err : new Error(messageOf(err)));
      });
    });

  return runUpload(deps, async (req, res, state, reject) => {
    if (!req.is("multipart/form-data")) {
      throw new GatewayError("unsupported_media_type", "POST /v1/artifacts takes multipart/form-data with parts 'signature' (first) and 'artifact'");
    }
    const length = declaredLength(req);
    if (length !== undefined && length > deps.maxUploadBytes + MAX_MULTIPART_OVERHEAD_BYTES) {
      throw new GatewayError("too_large", `request body of ${String(length)} bytes exceeds the upload limit of ${String(deps.maxUploadBytes)} bytes`, {
        maxBytes: deps.maxUploadBytes,
      });
    }
    // Refused mid-body with much left to read: answer now and close instead of draining it all.
    state.onArtifactRejected = async (err) => {
      if (length !== undefined && length <= MAX_DRAIN_BYTES) return;
      await reject(err);
    };
    await runMultipart(req, res);
    const fields = FieldsSchema.safeParse({ ...(req.body as Record<string, unknown>) });
    if (!fields.success) {
      throw new GatewayError(
        "bad_request",
        `invalid form fields: ${fields.error.issues.map((i) => `${i.path.join(".") || "(form)"}: ${i.message}`).join("; ")}`,
      );
    }
    state.requestedName = fields.data.name;
    const name = fields.data.name === undefined ? undefined : parseArtifactName(fields.data.name, "the 'name' field");
    const envelope = pickEnvelope(state, req);
    const artifact = state.artifact;
    if (artifact === undefined) throw new GatewayError("bad_request", "the 'artifact' file part is missing");
    return { envelope, artifact, name };
  });
}

/** What a route's receive step hands to the common checks: the envelope and the staged, hashed body. */
export interface ReceivedUpload {
  envelope: string;
  artifact: StagedBlob;
  name: ArtifactName | undefined;
}

/**
 * Receives the body of one upload (multipart or raw) into the store's temp area, enforcing the
 * size cap and the signature preflight on the way; throws a GatewayError to refuse. `reject`
 * answers at once (used when a refusal comes while much of the body is still unread).
 */
export type ReceiveUpload = (req: Request, res: Response, state: UploadState, reject: (err: unknown) => Promise<void>) => Promise<ReceivedUpload>;

/**
 * The checks shared by both upload routes, after the body is received: trusted source and
 * signature -> subject digest equals the computed sha256 -> content inspection -> audit -> promote.
 * Every refusal is audited and logged and leaves no temp file behind.
 */
export function runUpload(deps: UploadRouteDeps, receive: ReceiveUpload): RequestHandler {
  return async (req, res) => {
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    deps.metrics.uploadsInFlight(1);
    // The concurrent-upload gate holds its slot until this settles, even when the client hung up.
    let settle: () => void = () => undefined;
    (res.locals as { uploadSettled?: Promise<void> }).uploadSettled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const state = beginUpload(req);
    const facts: UploadFacts = {};
    // `received`: the body is in; from then on an unexpected error is ours (500), not a malformed body.
    const outcome = { answered: false, received: false };

    const reject = async (err: unknown): Promise<void> => {
      if (outcome.answered) return;
      outcome.answered = true;
      let gerr = outcome.received ? toGatewayError(err) : toUploadError(err);
      if (gerr.code === "internal") logOf(res).error({ err: messageOf(err) }, "upload failed on an unexpected error");
      await discardAll(deps.store, state);
      // A name refused by the name rule is still recorded, as sent (the audit log escapes it).
      if (facts.name === undefined && state.requestedName !== undefined) facts.name = state.requestedName;
      const event: AuditEvent = {
        type: "upload.rejected",
        requestId: requestIdOf(res),
        codes: [gerr.code],
        ...common(req, res, facts),
      };
      try {
        await deps.audit.append(event);
      } catch (auditErr) {
        deps.metrics.auditWriteFailed();
        logOf(res).error({ err: messageOf(auditErr) }, "audit append failed; refusing with 503");
        gerr = new GatewayError("unavailable", "the audit log cannot be written; try again later");
      }
      logOf(res).warn(
        {
          digest: facts.digestHex !== undefined ? formatDigest(facts.digestHex) : undefined,
          source: facts.verification?.source.id,
          verdict: "rejected",
          code: gerr.code,
        },
        "upload rejected",
      );
      deps.metrics.uploadFinished("rejected", gerr.code, seconds());
      if (res.headersSent) return;
      // Node would read (and discard) an unread body to keep the connection alive: not a big one.
      const length = declaredLength(req);
      if (!req.complete && (length === undefined || length > MAX_DRAIN_BYTES)) lingerThenClose(req, res);
      sendError(res, gerr);
    };

    try {
      const received = await receive(req, res, state, reject);
      if (outcome.answered) return;
      outcome.received = true;
      const receivedAt = seconds();
      const { envelope, artifact } = received;
      facts.digestHex = artifact.digestHex;
      facts.size = artifact.size;
      facts.name = received.name;

      const now = deps.now();
      const verifyAgainst = (allowlist: Allowlist): PublishVerification => {
        const v = verifyPublish({ envelope, digestHex: artifact.digestHex, size: artifact.size, name: received.name, allowlist, now });
        facts.verification = v;
        facts.name = v.name;
        return v;
      };
      let allowlist = deps.allowlist.current();
      let verification = verifyAgainst(allowlist);

      // Inspection can take seconds: an allowlist reloaded meanwhile (a key revoked, a source
      // removed, a stricter pickle policy) decides, not the one the upload started under.
      const inspectStarted = process.hrtime.bigint();
      let report: InspectionReport | undefined;
      for (let round = 1; report === undefined; round++) {
        const inspected = await deps.inspect(artifact.path, { policy: verification.source.pickle, fileName: verification.name });
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
      const inspectSeconds = Number(process.hrtime.bigint() - inspectStarted) / 1e9;
      deps.metrics.inspectionSeconds(inspectSeconds);
      facts.inspection = report;
      const refusal = rejectionCode(report);
      if (refusal !== undefined) {
        throw new GatewayError(refusal, `content inspection rejected the artifact (${findingCounts(report)}; format ${report.format})`, { inspection: report });
      }

      const createdAt = now.toISOString();
      const signature = {
        source: verification.source.id,
        keyIds: verification.keyIds,
        envelope,
        addedAt: createdAt,
        name: verification.name,
        policyDigest: contentPolicyDigest(verification.source.pickle),
      };
      const record: ArtifactRecord = {
        digest: formatDigest(artifact.digestHex),
        size: artifact.size,
        name: verification.name,
        names: [verification.name],
        format: report.format,
        createdAt,
        signatures: [signature],
        inspection: report,
      };

      try {
        await deps.audit.append({ type: "upload.accepted", requestId: requestIdOf(res), ...common(req, res, facts) });
      } catch (auditErr) {
        deps.metrics.auditWriteFailed();
        logOf(res).error({ err: messageOf(auditErr) }, "audit append failed; upload not promoted");
        throw new GatewayError("unavailable", "the audit log cannot be written; the upload was not stored, try again later");
      }
      if (deps.allowlist.current() !== allowlist) {
        // Reloaded while the audit entry was written: decide on the allowlist in force now.
        const latest = verifyAgainst(deps.allowlist.current());
        if (!samePolicy(verification, latest)) throw new GatewayError("unavailable", "the allowlist changed while the upload was being stored; try again");
      }
      const promoteStarted = seconds();
      const result = await deps.store.promote({ staged: artifact, record, signature });
      const timings = { receiveMs: ms(receivedAt), inspectMs: ms(inspectSeconds), promoteMs: ms(seconds() - promoteStarted) };
      state.tempPaths.delete(artifact.path);
      outcome.answered = true;
      deps.metrics.bytesIn(artifact.size);
      deps.metrics.uploadFinished("accepted", "ok", seconds());
      logOf(res).info(
        { digest: record.digest, source: verification.source.id, verdict: "accepted", created: result.created, size: artifact.size, ...timings },
        "upload accepted",
      );
      res.status(result.created ? 201 : 200).json({
        digest: result.record.digest,
        size: result.record.size,
        // The name this upload signed; `names` lists every name the stored signatures signed.
        name: verification.name,
        names: namesOf(result.record),
        source: verification.source.id,
        keyIds: verification.keyIds,
        format: result.record.format,
        inspection: result.record.inspection,
        createdAt: result.record.createdAt,
      });
    } catch (err) {
      await reject(err);
    } finally {
      try {
        await discardAll(deps.store, state);
      } finally {
        deps.metrics.uploadsInFlight(-1);
        settle();
      }
    }
  };
}

/** Inspection passes when the allowlist changes under an upload; past this the upload is refused. */
const MAX_INSPECTION_ROUNDS = 3;

/** Whether an inspection run for one verification holds for another (same source, same pickle policy). */
function samePolicy(a: PublishVerification, b: PublishVerification): boolean {
  return a.source.id === b.source.id && JSON.stringify(a.source.pickle) === JSON.stringify(b.source.pickle);
}

/**
 * After answering a refused upload whose body is still arriving: keep reading (and discarding)
 * for a bounded while so the client can read the answer, then cut the connection. Closing at once
 * would make the kernel reset the connection on the client's next write, which can discard the
 * answer unread (the "lingering close" of HTTP servers). Bounded by bytes and by time.
 */
function lingerThenClose(req: Request, res: Response): void {
  let drained = 0;
  const cut = (): void => {
    clearTimeout(timer);
    req.socket.destroy();
  };
  const timer = setTimeout(cut, MAX_LINGER_MS);
  timer.unref();
  res.once("finish", () => {
    req.on("data", (chunk: Buffer) => {
      drained += chunk.length;
      if (drained > MAX_DRAIN_BYTES) cut();
    });
    req.resume();
  });
  req.once("end", () => {
    clearTimeout(timer);
  });
  req.socket.once("close", () => {
    clearTimeout(timer);
  });
}

function pickEnvelope(state: UploadState, req: Request): string {
  const field = signatureField(req);
  if (state.signatureFile !== undefined && field !== undefined) throw new GatewayError("bad_request", "the signature was sent twice (field and file)");
  const envelope = state.signatureFile ?? field;
  if (typeof envelope !== "string" || envelope === "")
    throw new GatewayError("bad_request", "the 'signature' part (the DSSE envelope JSON) is missing; send it first");
  return envelope;
}

function common(req: Request, res: Response, facts: UploadFacts): Omit<AuditEvent, "type"> {
  const event: Omit<AuditEvent, "type"> = {};
  const tokenId = tokenIdOf(res);
  if (tokenId !== undefined) event.tokenId = tokenId;
  if (req.ip !== undefined) event.client = req.ip;
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

async function discardAll(store: ArtifactStore, state: UploadState): Promise<void> {
  const paths = [...state.tempPaths];
  state.tempPaths.clear();
  await Promise.all(paths.map((p) => store.discard(p)));
}
