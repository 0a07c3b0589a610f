import type { Readable } from "node:stream";
import type { InspectionReport } from "../inspect/report";

/**
 * The content-addressed store behind the use cases (src/gateway). Streams in and out, addressed by
 * the lowercase hex sha256 of the bytes, so an object-storage backend can implement the same
 * interface without touching the use cases or the routes. Callers validate digests (parseDigest) before calling.
 */

/** One trusted signature over the artifact, kept verbatim so consumers can verify it themselves. */
export interface StoredSignature {
  /** Allowlist source id that vouched for the artifact at upload time. */
  source: string;
  /** Key ids whose signatures verified at upload time. */
  keyIds: string[];
  /** The DSSE envelope exactly as uploaded (a JSON string). */
  envelope: string;
  /** When this signature was added to the record (ISO 8601). */
  addedAt: string;
  /**
   * The name this envelope's statement signed (its subject name). The same bytes may be
   * published under different names by different sources; each signature is re-checked against
   * its own name. Absent in records written before names were kept: use the record's `name`.
   */
  name?: string;
  /**
   * contentPolicyDigest of the source's content policy under which the bytes were inspected and
   * accepted for this signature. A fetch serves on this signature only while the source's policy
   * is still that one; otherwise the blob is inspected again under the current one. Absent in
   * records written before it was kept: inspected again on the first fetch.
   */
  policyDigest?: string;
}

/** The metadata record stored beside each blob. Plain JSON. */
export interface ArtifactRecord {
  /** "sha256:<hex>" */
  digest: string;
  size: number;
  /** The name of the first acceptance. */
  name: string;
  /** Every name a stored signature signed, first acceptance first (absent in older records: [name]). */
  names?: string[];
  format: string;
  /** First acceptance (ISO 8601). */
  createdAt: string;
  signatures: StoredSignature[];
  /** The report of the first acceptance; replaced when a fetch inspects the bytes again under a changed policy. */
  inspection: InspectionReport;
}

/** An inclusive byte range, already validated against the blob size. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface OpenedBlob {
  stream: Readable;
  /** Size of the whole blob, read from the open file descriptor. */
  size: number;
}

/** An upload's bytes as staged: hashed and counted on the way in, held where the inspector can read them. */
export interface StagedBlob {
  /** A local file holding exactly the staged bytes: read-only, for the content inspector (random access). */
  readonly path: string;
  readonly digestHex: string;
  readonly size: number;
}

export interface CommitResult {
  /** True when this commit stored the blob; false when the same bytes were already there. */
  created: boolean;
  /** The record as stored after the commit. */
  record: ArtifactRecord;
}

/**
 * One upload being staged, from its first byte to its commit or its abort: the one owner of its
 * temp object (distribution's BlobWriter with Commit and Cancel). Nothing is visible in the store
 * before `commit`; whatever happens, `abort` afterwards leaves nothing behind.
 */
export interface StagedUpload {
  /**
   * Streams `input` into the staged object, hashing and counting the same bytes in the same pass
   * and failing with `too_large` as soon as more than the handle's `maxBytes` arrived. Once per
   * handle. `input` is left paused, never destroyed: an HTTP request stays usable to answer a
   * refusal. On failure the partial object stays until `abort`. The writable side takes the
   * producer's stream (a request body, a multipart part) instead of being a Writable: the bytes
   * go from the socket to the hash and the file in one pass, with no stream in between.
   */
  receive(input: Readable): Promise<StagedBlob>;
  /** The staged bytes once `receive` resolved; undefined before. */
  readonly blob: StagedBlob | undefined;
  /**
   * Move the staged bytes into the store (fsync + rename) and write the record, or merge
   * `signature` into the record already stored (src/store/record.ts mergeApproval), serialized
   * per digest. `record.digest` must be the staged bytes' digest. Once per handle.
   */
  commit(record: ArtifactRecord, signature: StoredSignature): Promise<CommitResult>;
  /**
   * Drop the staged object (a receive in progress is stopped first). Safe to call any number of
   * times, and after a commit (then it does nothing); never throws for an object already gone.
   */
  abort(): Promise<void>;
}

export interface ListQuery {
  source?: string | undefined;
  name?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

export interface ListPage {
  items: ArtifactRecord[];
  /** Opaque cursor for the next (older) page; absent on the last page. */
  nextCursor?: string;
}

export interface ArtifactStore {
  /** Create the layout and remove leftovers of interrupted writes. Call once at start. */
  init(): Promise<void>;
  /** Start staging one upload of at most `maxBytes` bytes; nothing is written until its `receive`. */
  begin(options: { maxBytes: number }): StagedUpload;
  /** Open the blob for reading, optionally one byte range. Undefined when absent. */
  openRead(digestHex: string, range?: ByteRange): Promise<OpenedBlob | undefined>;
  stat(digestHex: string): Promise<{ size: number } | undefined>;
  readRecord(digestHex: string): Promise<ArtifactRecord | undefined>;
  writeRecord(record: ArtifactRecord): Promise<void>;
  /**
   * Read-modify-write of a record under the same per-digest lock as promote (a signature merged
   * meanwhile is not lost). `update` returns the new record, or undefined to leave it as it is.
   * Resolves to the record as stored afterwards; undefined when there is none.
   */
  updateRecord(digestHex: string, update: (record: ArtifactRecord) => ArtifactRecord | undefined): Promise<ArtifactRecord | undefined>;
  /**
   * A local file holding the blob's bytes, for the content inspector (which needs random access).
   * The filesystem store gives the blob itself; an object store would download to a temp file.
   * `release` is called when the caller is done with it. Undefined when absent.
   */
  localFile(digestHex: string): Promise<{ path: string; release: () => Promise<void> } | undefined>;
  /** Newest first, filtered by source and/or exact name. */
  list(query: ListQuery): Promise<ListPage>;
  /** Move blob and record out of the served tree (never delete: evidence). */
  quarantine(digestHex: string, reason: string): Promise<void>;
  /** Resolves when the store can take writes (used by /readyz). */
  checkWritable(): Promise<void>;
}
