import type { Request, RequestHandler, Response } from "express";
import multer from "multer";
import { z } from "zod";
import type { AuditSink } from "../audit/types";
import { GatewayError, messageOf } from "../errors";
import { publish, refusePublish, type PublishResult } from "../gateway/publish";
import type { Inspector } from "../inspect/inspector";
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
import type { AllowlistProvider } from "../reload/allowlistHolder";
import { namesOf } from "../store/names";
import type { ArtifactStore, StagedUpload } from "../store/types";
import { parseArtifactName, type ArtifactName } from "../trust";
import { sendError, toGatewayError, toUploadError } from "./errorHandler";
import { callOf } from "./requestContext";
import { beginUpload, signatureField, UploadStorage, type UploadState } from "./uploadStorage";

export interface UploadRouteDeps {
  store: ArtifactStore;
  allowlist: AllowlistProvider;
  inspect: Inspector;
  audit: AuditSink;
  metrics: GatewayMetrics;
  maxUploadBytes: number;
  now: () => Date;
  /** Aborted when the server stops for good: the inspections of uploads in flight are cancelled. */
  stopping?: AbortSignal | undefined;
}

/** Text fields of the upload form; unknown fields are refused (zod at the boundary). */
const FieldsSchema = z.strictObject({
  signature: z.string().min(1).optional(),
  // Bounded by the multipart field cap; the name rule (parseArtifactName) runs next.
  name: z.string().optional(),
});

function declaredLength(req: Request): number | undefined {
  const header = req.get("content-length");
  if (header === undefined || !/^\d{1,16}$/.test(header)) return undefined;
  return Number(header);
}

/**
 * POST /v1/artifacts: multipart parts `signature` (first), `artifact`, optional `name`. The checks
 * and their order are the publish use case's (src/gateway/publish.ts); this route parses the
 * form, streams the artifact part into a staged upload (UploadStorage, refusing an untrusted
 * signature before the body touches the disk) and answers.
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
    const upload = state.upload;
    if (upload?.blob === undefined) throw new GatewayError("bad_request", "the 'artifact' file part is missing");
    return { envelope, upload, name };
  });
}

/** What a route's receive step hands to the publish use case: the envelope, the received upload, the name. */
export interface ReceivedUpload {
  envelope: string;
  upload: StagedUpload;
  name: ArtifactName | undefined;
}

/**
 * Receives the body of one upload (multipart or raw) into a staged upload of the store, kept on
 * `state.upload`, enforcing the size cap and the signature preflight (`state.preflight`) on the
 * way; throws to refuse. `reject` answers at once (used when a refusal comes while much of the
 * body is still unread).
 */
export type ReceiveUpload = (req: Request, res: Response, state: UploadState, reject: (err: unknown) => Promise<void>) => Promise<ReceivedUpload>;

/**
 * What both upload routes share around their receive step: the publish use case on what was
 * received, every refusal audited (refusePublish) and answered, the staged upload aborted
 * whatever the outcome (after a commit, that does nothing), and the upload's cancellation
 * (client hang-up, server stop) handed to the inspection.
 */
export function runUpload(deps: UploadRouteDeps, receive: ReceiveUpload): RequestHandler {
  return async (req, res) => {
    const startedAt = process.hrtime.bigint();
    deps.metrics.uploadsInFlight(1);
    // The concurrent-upload gate holds its slot until this settles, even when the client hung up.
    let settle: () => void = () => undefined;
    (res.locals as { uploadSettled?: Promise<void> }).uploadSettled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    // Cancelled when the client hangs up before the answer or the server stops for good.
    const cancel = new AbortController();
    const onClose = (): void => {
      // 'close' after the answer was sent is the normal end; before it, the client is gone.
      if (!res.writableFinished) cancel.abort(new GatewayError("unavailable", "the client closed the connection before the answer"));
    };
    const onStop = (): void => {
      cancel.abort(new GatewayError("unavailable", "the server is stopping"));
    };
    res.once("close", onClose);
    if (deps.stopping?.aborted === true) onStop();
    else deps.stopping?.addEventListener("abort", onStop, { once: true });
    const { signal } = cancel;
    const state = beginUpload(req);
    const call = callOf(req, res);
    // Set once a refusal or the result is on its way (a refusal may come from inside the receive step).
    const outcome = { answered: false };

    // A refusal before the body is in: audited (the staged upload dropped first), then answered.
    const reject = async (err: unknown): Promise<void> => {
      if (outcome.answered) return;
      outcome.answered = true;
      const refusal = await refusePublish(deps, {
        ...call,
        error: toUploadError(err),
        // A name refused by the name rule is still recorded, as sent (the audit log escapes it).
        facts: { name: state.requestedName },
        upload: state.upload,
        startedAt,
      });
      answerRefusal(req, res, refusal);
    };

    try {
      let received: ReceivedUpload;
      try {
        received = await receive(req, res, state, reject);
      } catch (err) {
        await reject(err);
        return;
      }
      if (outcome.answered) return;
      outcome.answered = true;
      let result: PublishResult;
      try {
        result = await publish(deps, { ...call, ...received, preflight: state.preflight, signal, startedAt });
      } catch (err) {
        // Audited by publish; anything but a GatewayError would be a bug there (500).
        answerRefusal(req, res, toGatewayError(err));
        return;
      }
      const { record, verification } = result;
      res.status(result.created ? 201 : 200).json({
        digest: record.digest,
        size: record.size,
        // The name this upload signed; `names` lists every name the stored signatures signed.
        name: verification.name,
        names: namesOf(record),
        source: verification.source.id,
        keyIds: verification.keyIds,
        format: record.format,
        inspection: record.inspection,
        createdAt: record.createdAt,
      });
    } finally {
      try {
        await state.upload?.abort();
      } finally {
        res.off("close", onClose);
        deps.stopping?.removeEventListener("abort", onStop);
        deps.metrics.uploadsInFlight(-1);
        settle();
      }
    }
  };
}

/** Answer a refusal; when much of the body is still unread, linger, then close the connection. */
function answerRefusal(req: Request, res: Response, err: GatewayError): void {
  if (res.headersSent) return;
  // Node would read (and discard) an unread body to keep the connection alive: not a big one.
  const length = declaredLength(req);
  if (!req.complete && (length === undefined || length > MAX_DRAIN_BYTES)) lingerThenClose(req, res);
  sendError(res, err);
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
