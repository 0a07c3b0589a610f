import type { Readable } from "node:stream";
import type { Request } from "express";
import type multer from "multer";
import { GatewayError } from "../errors";
import { MAX_ENVELOPE_BYTES } from "../limits";
import { writeHashed } from "../store/hashing";
import type { ArtifactStore, StagedBlob } from "../store/types";
import { preflightEnvelope, utf8Strict } from "../trust";
import type { AllowlistProvider } from "../reload/allowlistHolder";

/** What the storage engine learned about one upload request, read by the upload route. */
export interface UploadState {
  /** The envelope when it arrived as a file part. */
  signatureFile?: string;
  /** Set while a signature file part is being read, so a following artifact part waits for it. */
  signaturePending?: Promise<void>;
  signatureParts: number;
  artifact?: StagedBlob & { fileName: string };
  artifactParts: number;
  /** Subject of a preflighted envelope: trusted before a byte of the artifact was stored. */
  preflight?: { subjectName: string; subjectDigestHex: string; sourceIds: string[] };
  /** The name the client asked for, as sent (before the name rule), for the audit entry of a refusal. */
  requestedName?: string;
  /** Every temp file this request created; the route removes them whatever the outcome. */
  tempPaths: Set<string>;
  /**
   * Called when the artifact part fails (untrusted signature, size cap) before multer has read
   * the body: the route answers right away (and closes the connection when the rest of the body
   * is too big to drain), instead of reading gigabytes only to refuse them.
   */
  onArtifactRejected?: (err: unknown) => Promise<void>;
}

const states = new WeakMap<Request, UploadState>();

export function beginUpload(req: Request): UploadState {
  const state: UploadState = { signatureParts: 0, artifactParts: 0, tempPaths: new Set() };
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
 * multer StorageEngine that streams the `artifact` part into the store's temp area through a
 * sha256+count pass, enforcing the size cap while the bytes arrive (never memoryStorage). A
 * `signature` file part is read into memory with the envelope cap. When the signature came first,
 * it is preflighted against the allowlist before a single artifact byte is written.
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
    const p = file.path as string | undefined;
    if (typeof p !== "string" || p === "") {
      callback(null);
      return;
    }
    stateOf(req).tempPaths.delete(p);
    this.options.store.discard(p).then(
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
    const { store, maxUploadBytes } = this.options;
    const tempPath = store.tempPath();
    state.tempPaths.add(tempPath);
    let written: { digestHex: string; size: number };
    try {
      written = await writeHashed(file.stream, tempPath, { maxBytes: maxUploadBytes });
    } catch (err) {
      // The part's stream is busboy's, not the request: nothing more is read from it.
      file.stream.destroy();
      await store.discard(tempPath);
      state.tempPaths.delete(tempPath);
      throw err;
    }
    state.artifact = { path: tempPath, digestHex: written.digestHex, size: written.size, fileName: file.originalname };
    return { path: tempPath, size: written.size };
  }
}
