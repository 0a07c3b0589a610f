import type { Readable } from "node:stream";
import type { Request } from "express";
import type multer from "multer";
import { GatewayError } from "../errors";
import { MAX_ENVELOPE_BYTES } from "../limits";
import type { AllowlistProvider } from "../reload/allowlistHolder";
import type { ArtifactStore, StagedUpload } from "../store/types";
import { preflightEnvelope, utf8Strict, type TrustPreflight } from "../trust";

/** What the storage engine learned about one upload request, read by the upload route. */
export interface UploadState {
  /** The envelope when it arrived as a file part. */
  signatureFile?: string;
  /** Set while a signature file part is being read, so a following artifact part waits for it. */
  signaturePending?: Promise<void>;
  signatureParts: number;
  /** The artifact part's staged upload: its one owner, aborted by the route whatever the outcome (and by multer's _removeFile). */
  upload?: StagedUpload;
  artifactParts: number;
  /** The envelope's verdict when it came before the artifact: trusted before a byte of the artifact was stored. */
  preflight?: TrustPreflight;
  /** The name the client asked for, as sent (before the name rule), for the audit entry of a refusal. */
  requestedName?: string;
  /**
   * Called when the artifact part fails (untrusted signature, size cap) before multer has read
   * the body: the route answers right away (and closes the connection when the rest of the body
   * is too big to drain), instead of reading gigabytes only to refuse them.
   */
  onArtifactRejected?: (err: unknown) => Promise<void>;
}

const states = new WeakMap<Request, UploadState>();

export function beginUpload(req: Request): UploadState {
  const state: UploadState = { signatureParts: 0, artifactParts: 0 };
  states.set(req, state);
  return state;
}

function stateOf(req: Request): UploadState {
  const state = states.get(req);
  if (!state) throw new GatewayError("internal", "upload state missing");
  return state;
}

export interface UploadStorageOptions {
  store: ArtifactStore;
  maxUploadBytes: number;
  allowlist: AllowlistProvider;
  now: () => Date;
}

/** The envelope as a text field, when it came as one (multer puts fields on req.body as they arrive). */
export function signatureField(req: Request): unknown {
  const body = req.body as Record<string, unknown> | undefined;
  return body?.signature;
}

async function readCapped(stream: Readable, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > cap) {
      stream.destroy();
      throw new GatewayError("too_large", `the signature part exceeds ${String(cap)} bytes`, { maxBytes: cap });
    }
    chunks.push(buf);
  }
  // Strict UTF-8 (malformed_signature), not Buffer's toString, which turns bad bytes into U+FFFD.
  return utf8Strict(Buffer.concat(chunks), "the signature part");
}

/**
 * multer StorageEngine, a thin adapter over the store's staged upload: the `artifact` part streams
 * into a `begin()` handle (sha256, count and size cap in one pass while the bytes arrive; never
 * memoryStorage), and `_removeFile` aborts that handle. A `signature` file part is read into
 * memory with the envelope cap. When the signature came first, it is preflighted against the
 * allowlist before a single artifact byte is written.
 */
export class UploadStorage implements multer.StorageEngine {
  constructor(private readonly options: UploadStorageOptions) {}

  _handleFile(req: Request, file: Express.Multer.File, callback: (error?: unknown, info?: Partial<Express.Multer.File>) => void): void {
    this.handle(req, file).then(
      (info) => {
        callback(null, info);
      },
      (err: unknown) => {
        callback(err);
      },
    );
  }

  _removeFile(req: Request, file: Express.Multer.File, callback: (error: Error | null) => void): void {
    const upload = file.fieldname === "artifact" ? states.get(req)?.upload : undefined;
    if (upload === undefined) {
      callback(null);
      return;
    }
    upload.abort().then(
      () => {
        callback(null);
      },
      (err: unknown) => {
        callback(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  private async handle(req: Request, file: Express.Multer.File): Promise<Partial<Express.Multer.File>> {
    const state = stateOf(req);
    if (file.fieldname === "signature") return this.handleSignature(state, file);
    if (file.fieldname !== "artifact") {
      throw new GatewayError("bad_request", `unexpected file part '${file.fieldname}' (expected 'signature' and 'artifact')`);
    }
    try {
      return await this.handleArtifact(req, state, file);
    } catch (err) {
      if (state.onArtifactRejected) await state.onArtifactRejected(err);
      throw err;
    }
  }

  private async handleSignature(state: UploadState, file: Express.Multer.File): Promise<Partial<Express.Multer.File>> {
    state.signatureParts += 1;
    if (state.signatureParts > 1) throw new GatewayError("bad_request", "more than one signature part");
    const reading = readCapped(file.stream, MAX_ENVELOPE_BYTES).then((text) => {
      state.signatureFile = text;
    });
    state.signaturePending = reading.catch(() => undefined);
    await reading;
    return { size: Buffer.byteLength(state.signatureFile ?? "") };
  }

  private async handleArtifact(req: Request, state: UploadState, file: Express.Multer.File): Promise<Partial<Express.Multer.File>> {
    state.artifactParts += 1;
    if (state.artifactParts > 1) throw new GatewayError("bad_request", "exactly one artifact part is allowed");
    if (state.signaturePending) await state.signaturePending;
    const field = signatureField(req);
    if (state.signatureFile !== undefined && field !== undefined) throw new GatewayError("bad_request", "the signature was sent twice (field and file)");
    const envelope = state.signatureFile ?? (typeof field === "string" ? field : undefined);
    if (envelope !== undefined) {
      // Signature first: refuse an untrusted upload before its body touches the disk.
      state.preflight = preflightEnvelope(envelope, this.options.allowlist.current(), this.options.now());
    }
    const upload = this.options.store.begin({ maxBytes: this.options.maxUploadBytes });
    state.upload = upload;
    try {
      const blob = await upload.receive(file.stream);
      return { size: blob.size };
    } catch (err) {
      // The part's stream is busboy's, not the request: nothing more is read from it.
      file.stream.destroy();
      await upload.abort();
      throw err;
    }
  }
}
