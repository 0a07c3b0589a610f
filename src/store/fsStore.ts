import { randomBytes } from "node:crypto";
import { createReadStream, promises as fsp } from "node:fs";
import * as path from "node:path";
import type { Readable } from "node:stream";
import { z } from "zod";
import { assertHexDigest, formatDigest, isSha256Hex, parseDigest, Sha256DigestSchema, Sha256HexSchema } from "../digest";
import { GatewayError } from "../errors";
import { MAX_RECORD_BYTES } from "../limits";
import { writeHashed } from "./hashing";
import { namesOf } from "./names";
import { mergeApproval } from "./record";
import type {
  ArtifactRecord,
  ArtifactStore,
  ByteRange,
  CommitResult,
  ListPage,
  ListQuery,
  OpenedBlob,
  StagedBlob,
  StagedUpload,
  StoredSignature,
} from "./types";

/**
 * The embedded filesystem backend. Layout under the data directory:
 *
 *   blobs/sha256/<first 2 hex>/<hex>        the artifact bytes
 *   blobs/sha256/<first 2 hex>/<hex>.json   its metadata record
 *   tmp/                                    staged uploads and temp records (same filesystem)
 *   quarantine/<hex>.<time>/                blobs that failed re-verification, with a reason
 *
 * Every write is temp file -> fsync -> rename -> fsync of the directory, the record only after
 * the blob, so a crash leaves either nothing or a complete artifact (a blob without a record is
 * not served; the next identical upload replaces it with its verified bytes and writes the record). tmp/ is emptied at start.
 */

const RECORD_SUFFIX = ".json";

/** A record's JSON, refused (`too_large`) when it is bigger than readRecord accepts. */
function serializeRecord(record: ArtifactRecord): string {
  const json = JSON.stringify(record, null, 2);
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_RECORD_BYTES) {
    throw new GatewayError(
      "too_large",
      `the artifact's record (${String(bytes)} bytes, mostly its inspection report) exceeds the store's limit of ${String(MAX_RECORD_BYTES)} bytes per record`,
      { limit: "MAX_RECORD_BYTES", maxBytes: MAX_RECORD_BYTES },
    );
  }
  return json;
}

const RecordSchema = z.object({
  digest: Sha256DigestSchema,
  size: z.number().int().nonnegative(),
  name: z.string(),
  names: z.array(z.string()).optional(),
  format: z.string(),
  createdAt: z.string(),
  signatures: z.array(
    z.object({
      source: z.string(),
      keyIds: z.array(z.string()),
      envelope: z.string(),
      addedAt: z.string(),
      name: z.string().optional(),
      policyDigest: z.string().optional(),
    }),
  ),
  inspection: z.looseObject({ verdict: z.string(), format: z.string() }),
});

interface IndexEntry {
  hex: string;
  createdAt: string;
  names: Set<string>;
  sources: Set<string>;
}

function indexEntryOf(hex: string, record: ArtifactRecord): IndexEntry {
  return { hex, createdAt: record.createdAt, names: new Set(namesOf(record)), sources: new Set(record.signatures.map((s) => s.source)) };
}

const CursorSchema = z.tuple([z.string(), Sha256HexSchema]);

function encodeCursor(entry: IndexEntry): string {
  return Buffer.from(JSON.stringify([entry.createdAt, entry.hex])).toString("base64url");
}

function decodeCursor(cursor: string): [string, string] {
  try {
    return CursorSchema.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
  } catch {
    throw new GatewayError("bad_request", "cursor is not one this server issued");
  }
}

/** Newest first; ties broken by digest so pagination is total. */
function compareEntries(a: { createdAt: string; hex: string }, b: { createdAt: string; hex: string }): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  if (a.hex === b.hex) return 0;
  return a.hex < b.hex ? 1 : -1;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === "ENOENT";
}

async function fsyncPath(p: string, flags = "r"): Promise<void> {
  const handle = await fsp.open(p, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Remove a temp file; never throws for a missing one. */
async function discard(p: string): Promise<void> {
  await fsp.rm(p, { force: true });
}

/**
 * The filesystem store's staged upload: a temp file under tmp/, written by writeHashed (sha256,
 * count and cap in one pass over the bytes), moved into place by `commit`, removed by `abort`.
 * Every path of the temp file's life goes through this one object: a failed receive or commit
 * leaves the file for `abort`, which the owner calls whatever the outcome.
 */
class FsStagedUpload implements StagedUpload {
  private state: "open" | "receiving" | "received" | "failed" | "committing" | "committed" | "aborted" = "open";
  private received: StagedBlob | undefined;
  /** Settles when the receive or commit in progress has (never rejects). */
  private busy: Promise<unknown> = Promise.resolve();
  private readonly stopReceive = new AbortController();
  private aborting: Promise<void> | undefined;

  constructor(
    private readonly tempPath: string,
    private readonly maxBytes: number,
    private readonly promote: (blob: StagedBlob, record: ArtifactRecord, signature: StoredSignature) => Promise<CommitResult>,
  ) {}

  get blob(): StagedBlob | undefined {
    return this.received;
  }

  receive(input: Readable): Promise<StagedBlob> {
    if (this.state !== "open" || this.aborting !== undefined)
      return Promise.reject(new GatewayError("internal", `a staged upload receives once (it is ${this.state})`));
    this.state = "receiving";
    const receiving = writeHashed(input, this.tempPath, { maxBytes: this.maxBytes, signal: this.stopReceive.signal }).then(
      ({ digestHex, size }) => {
        this.received = { path: this.tempPath, digestHex, size };
        this.state = "received";
        return this.received;
      },
      (err: unknown) => {
        // The partial file stays until abort (writeHashed settles only after closing it).
        this.state = "failed";
        throw err;
      },
    );
    this.busy = receiving.catch(() => undefined);
    return receiving;
  }

  commit(record: ArtifactRecord, signature: StoredSignature): Promise<CommitResult> {
    const blob = this.received;
    if (this.state !== "received" || blob === undefined || this.aborting !== undefined) {
      return Promise.reject(new GatewayError("internal", `only a received upload can be committed (it is ${this.state})`));
    }
    this.state = "committing";
    const committing = this.promote(blob, record, signature).then(
      (result) => {
        this.state = "committed";
        return result;
      },
      (err: unknown) => {
        // Not moved into place (promote drops the file when the rename fails; abort removes it otherwise).
        this.state = "failed";
        throw err;
      },
    );
    this.busy = committing.catch(() => undefined);
    return committing;
  }

  abort(): Promise<void> {
    // One abort for every caller: a second call waits for the same removal.
    this.aborting ??= this.abortOnce();
    return this.aborting;
  }

  private async abortOnce(): Promise<void> {
    if (this.state === "receiving") this.stopReceive.abort();
    // A commit in progress decides: committed bytes are the store's, not this handle's.
    await this.busy;
    if (this.state === "committed" || this.state === "aborted") return;
    this.state = "aborted";
    this.received = undefined;
    await discard(this.tempPath);
  }
}

export class FsArtifactStore implements ArtifactStore {
  private readonly blobRoot: string;
  private readonly tmpDir: string;
  private readonly quarantineDir: string;
  private readonly locks = new Map<string, Promise<unknown>>();
  private index: Map<string, IndexEntry> | undefined;

  constructor(readonly dataDir: string) {
    this.blobRoot = path.join(dataDir, "blobs", "sha256");
    this.tmpDir = path.join(dataDir, "tmp");
    this.quarantineDir = path.join(dataDir, "quarantine");
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.blobRoot, { recursive: true });
    await fsp.mkdir(this.quarantineDir, { recursive: true });
    // Leftovers of writes interrupted by a crash: never promoted, so never visible. Remove them.
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    await fsp.mkdir(this.tmpDir, { recursive: true });
    this.index = await this.buildIndex();
  }

  begin(options: { maxBytes: number }): StagedUpload {
    return new FsStagedUpload(this.tempPath(), options.maxBytes, (blob, record, signature) => this.promote(blob, record, signature));
  }

  /**
   * Move a received upload into place and write or merge its record, serialized per digest: two
   * identical uploads end with one blob and one merged record. The handle's commit; a test store
   * may fail it (disk full).
   */
  protected promote(staged: StagedBlob, record: ArtifactRecord, signature: StoredSignature): Promise<CommitResult> {
    assertHexDigest(staged.digestHex);
    if (record.digest !== formatDigest(staged.digestHex)) {
      return Promise.reject(new GatewayError("internal", "the record to commit names other bytes than the staged ones"));
    }
    return this.withLock(staged.digestHex, async () => {
      // Refused before the blob moves in: a record readRecord cannot read back would leave an
      // accepted artifact that is never served (a huge inspection report, e.g. 60k zip members).
      const json = serializeRecord(record);
      const existing = await this.readRecord(staged.digestHex);
      // A blob without a record (a write interrupted between the two renames) was never
      // verified by anyone serving it: the staged bytes, hashed on the way in, replace it.
      const created = await this.moveBlobIntoPlace(staged, existing === undefined);
      if (existing === undefined) {
        // New blob, or a blob whose record write was interrupted: the record completes it.
        await this.writeRecordJson(record, json);
        return { created, record };
      }
      const merged = mergeApproval(existing, signature);
      if (merged === undefined) return { created, record: existing };
      await this.writeRecord(merged);
      return { created, record: merged };
    });
  }

  async openRead(digestHex: string, range?: ByteRange): Promise<OpenedBlob | undefined> {
    assertHexDigest(digestHex);
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(this.blobPath(digestHex), "r");
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    // Size from the descriptor we read from: a concurrent quarantine (rename) cannot change it.
    let size: number;
    try {
      size = (await handle.stat()).size;
    } catch (err) {
      await handle.close();
      throw err;
    }
    const stream = createReadStream("", {
      fd: handle,
      autoClose: true,
      ...(range ? { start: range.start, end: range.end } : {}),
      highWaterMark: 1024 * 1024,
    });
    return { stream, size };
  }

  async stat(digestHex: string): Promise<{ size: number } | undefined> {
    assertHexDigest(digestHex);
    try {
      const st = await fsp.stat(this.blobPath(digestHex));
      return { size: st.size };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async readRecord(digestHex: string): Promise<ArtifactRecord | undefined> {
    assertHexDigest(digestHex);
    const recordPath = this.blobPath(digestHex) + RECORD_SUFFIX;
    let text: string;
    try {
      const st = await fsp.stat(recordPath);
      if (st.size > MAX_RECORD_BYTES) throw new GatewayError("integrity_error", `record of ${digestHex} is implausibly large`);
      text = await fsp.readFile(recordPath, "utf8");
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new GatewayError("integrity_error", `record of ${digestHex} is not valid JSON`, undefined, { cause: err });
    }
    const result = RecordSchema.safeParse(parsed);
    if (!result.success || result.data.digest !== formatDigest(digestHex)) {
      throw new GatewayError("integrity_error", `record of ${digestHex} does not match the record schema or its digest`);
    }
    return parsed as ArtifactRecord;
  }

  async writeRecord(record: ArtifactRecord): Promise<void> {
    await this.writeRecordJson(record, serializeRecord(record));
  }

  updateRecord(digestHex: string, update: (record: ArtifactRecord) => ArtifactRecord | undefined): Promise<ArtifactRecord | undefined> {
    assertHexDigest(digestHex);
    return this.withLock(digestHex, async () => {
      const existing = await this.readRecord(digestHex);
      if (existing === undefined) return undefined;
      const next = update(existing);
      if (next === undefined) return existing;
      if (next.digest !== existing.digest) throw new GatewayError("internal", "updateRecord may not change a record's digest");
      await this.writeRecord(next);
      return next;
    });
  }

  async localFile(digestHex: string): Promise<{ path: string; release: () => Promise<void> } | undefined> {
    if ((await this.stat(digestHex)) === undefined) return undefined;
    return { path: this.blobPath(digestHex), release: () => Promise.resolve() };
  }

  private async writeRecordJson(record: ArtifactRecord, json: string): Promise<void> {
    const hex = parseDigest(record.digest);
    const finalPath = this.blobPath(hex) + RECORD_SUFFIX;
    const tempPath = this.tempPath();
    try {
      const handle = await fsp.open(tempPath, "wx");
      try {
        await handle.writeFile(json);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fsp.mkdir(path.dirname(finalPath), { recursive: true });
      await fsp.rename(tempPath, finalPath);
    } catch (err) {
      await discard(tempPath);
      throw err;
    }
    await fsyncPath(path.dirname(finalPath));
    this.indexRecord(record);
  }

  async list(query: ListQuery): Promise<ListPage> {
    const index = this.index ?? (this.index = await this.buildIndex());
    const after = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
    const matches = [...index.values()]
      .filter((e) => (query.source === undefined || e.sources.has(query.source)) && (query.name === undefined || e.names.has(query.name)))
      .filter((e) => after === undefined || compareEntries(e, { createdAt: after[0], hex: after[1] }) > 0)
      .sort(compareEntries);
    const page = matches.slice(0, query.limit);
    const items: ArtifactRecord[] = [];
    for (const entry of page) {
      const record = await this.readRecord(entry.hex);
      if (record !== undefined) items.push(record);
    }
    const last = page[page.length - 1];
    const result: ListPage = { items };
    if (matches.length > page.length && last !== undefined) result.nextCursor = encodeCursor(last);
    return result;
  }

  async quarantine(digestHex: string, reason: string): Promise<void> {
    assertHexDigest(digestHex);
    await this.withLock(digestHex, async () => {
      const target = path.join(this.quarantineDir, `${digestHex}.${Date.now().toString()}`);
      await fsp.mkdir(target, { recursive: true });
      const blob = this.blobPath(digestHex);
      for (const [from, to] of [
        [blob, path.join(target, "blob")],
        [blob + RECORD_SUFFIX, path.join(target, "record.json")],
      ] as const) {
        try {
          await fsp.rename(from, to);
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
      }
      await fsp.writeFile(path.join(target, "reason.txt"), `${new Date().toISOString()} ${reason}\n`);
      await fsyncPath(path.dirname(blob));
      this.index?.delete(digestHex);
    });
  }

  async checkWritable(): Promise<void> {
    const probe = this.tempPath();
    await fsp.writeFile(probe, "ok", { flag: "wx" });
    await fsp.rm(probe, { force: true });
  }

  /** A fresh path in the temp area (same filesystem as the blobs, emptied at start). */
  private tempPath(): string {
    return path.join(this.tmpDir, `${Date.now().toString(36)}-${randomBytes(8).toString("hex")}.part`);
  }

  /** Path of a blob; the record is beside it with RECORD_SUFFIX. */
  blobPath(digestHex: string): string {
    return path.join(this.blobRoot, digestHex.slice(0, 2), digestHex);
  }

  /**
   * fsync the staged file and rename it into place; returns false (and drops the file) when the
   * blob exists, unless `replace` (then the staged bytes take its place; still false).
   */
  private async moveBlobIntoPlace(staged: StagedBlob, replace = false): Promise<boolean> {
    const finalPath = this.blobPath(staged.digestHex);
    const existed = (await this.stat(staged.digestHex)) !== undefined;
    if (existed && !replace) {
      await discard(staged.path);
      return false;
    }
    try {
      await fsyncPath(staged.path, "r+");
      await fsp.mkdir(path.dirname(finalPath), { recursive: true });
      await fsp.rename(staged.path, finalPath);
    } catch (err) {
      await discard(staged.path);
      throw err;
    }
    await fsyncPath(path.dirname(finalPath));
    return !existed;
  }

  private withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return run;
  }

  private indexRecord(record: ArtifactRecord): void {
    if (this.index === undefined) return;
    const hex = parseDigest(record.digest);
    this.index.set(hex, indexEntryOf(hex, record));
  }

  private async buildIndex(): Promise<Map<string, IndexEntry>> {
    const index = new Map<string, IndexEntry>();
    let prefixes: string[];
    try {
      prefixes = await fsp.readdir(this.blobRoot);
    } catch (err) {
      if (isMissing(err)) return index;
      throw err;
    }
    for (const prefix of prefixes) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const file of await fsp.readdir(path.join(this.blobRoot, prefix))) {
        const hex = file.endsWith(RECORD_SUFFIX) ? file.slice(0, -RECORD_SUFFIX.length) : undefined;
        if (hex === undefined || !isSha256Hex(hex)) continue;
        const record = await this.readRecord(hex);
        if (record === undefined) continue;
        index.set(hex, indexEntryOf(hex, record));
      }
    }
    return index;
  }
}
