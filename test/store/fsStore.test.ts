import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { FsArtifactStore } from "../../src/store/fsStore";
import { namesOf } from "../../src/store/names";
import type { ArtifactRecord, StagedUpload, StoredSignature } from "../../src/store/types";
import { summarize } from "../../src/inspect/report";

const sha = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");

function recordFor(bytes: Buffer, name: string, createdAt: string, source = "research", envelope = "env-1"): ArtifactRecord {
  return {
    digest: `sha256:${sha(bytes)}`,
    size: bytes.length,
    name,
    format: "safetensors",
    createdAt,
    signatures: [sigFor(source, envelope)],
    inspection: summarize({ kind: "file", path: "", findings: [], children: [] }, "safetensors"),
  };
}

function sigFor(source: string, envelope: string): StoredSignature {
  return { source, keyIds: ["k"], envelope, addedAt: "2026-01-01T00:00:00.000Z" };
}

/** A staged upload of `bytes` (received, not committed). */
async function stage(store: FsArtifactStore, bytes: Buffer, maxBytes = Number.MAX_SAFE_INTEGER): Promise<StagedUpload> {
  const upload = store.begin({ maxBytes });
  await upload.receive(Readable.from([bytes]));
  return upload;
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

describe("FsArtifactStore", () => {
  let dir: string;
  let store: FsArtifactStore;

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-store-"));
    store = new FsArtifactStore(dir);
    await store.init();
  });

  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("stages, promotes and reads back a blob with its record at the content address", async () => {
    const bytes = Buffer.from("hello model");
    const staged = await stage(store, bytes);
    expect(staged.blob?.digestHex).toBe(sha(bytes));
    expect(staged.blob?.size).toBe(bytes.length);
    const result = await staged.commit(recordFor(bytes, "a/b", "2026-01-01T00:00:00.000Z"), sigFor("research", "env-1"));
    expect(result.created).toBe(true);
    const hex = sha(bytes);
    expect(await listTree(dir)).toEqual([`blobs/sha256/${hex.slice(0, 2)}/${hex}`, `blobs/sha256/${hex.slice(0, 2)}/${hex}.json`]);
    const opened = await store.openRead(hex);
    expect(opened?.size).toBe(bytes.length);
    expect(await text(opened!.stream)).toBe("hello model");
    const ranged = await store.openRead(hex, { start: 6, end: 10 });
    expect(await text(ranged!.stream)).toBe("model");
    expect((await store.readRecord(hex))?.name).toBe("a/b");
    expect(await store.stat(hex)).toEqual({ size: bytes.length });
  });

  it("answers undefined for unknown digests and rejects non-hex digests before touching the disk", async () => {
    const hex = sha("nothing");
    expect(await store.openRead(hex)).toBeUndefined();
    expect(await store.stat(hex)).toBeUndefined();
    expect(await store.readRecord(hex)).toBeUndefined();
    await expect(store.stat("../../etc/passwd")).rejects.toMatchObject({ code: "bad_request" });
  });

  it("enforces maxBytes while staging and leaves no temp file", async () => {
    const refused = store.begin({ maxBytes: 15 });
    await expect(refused.receive(Readable.from([Buffer.alloc(10), Buffer.alloc(10)]))).rejects.toMatchObject({ code: "too_large" });
    await refused.abort();
    expect(await listTree(dir)).toEqual([]);
    const ok = await stage(store, Buffer.alloc(15), 15);
    expect(ok.blob?.size).toBe(15);
  });

  it("a second promote of the same bytes drops the staged file and merges a new signature once", async () => {
    const bytes = Buffer.from("same bytes");
    const hex = sha(bytes);
    await (await stage(store, bytes)).commit(recordFor(bytes, "n", "2026-01-01T00:00:00.000Z"), sigFor("research", "env-1"));
    const again = await (await stage(store, bytes)).commit(recordFor(bytes, "n", "2026-02-01T00:00:00.000Z"), sigFor("serving", "env-2"));
    expect(again.created).toBe(false);
    expect(again.record.signatures.map((s) => s.source)).toEqual(["research", "serving"]);
    expect(again.record.createdAt).toBe("2026-01-01T00:00:00.000Z");
    const third = await (await stage(store, bytes)).commit(recordFor(bytes, "n", "2026-03-01T00:00:00.000Z"), sigFor("serving", "env-2"));
    expect(third.record.signatures).toHaveLength(2);
    expect((await listTree(dir)).filter((f) => f.startsWith("tmp/"))).toEqual([]);
    expect((await store.readRecord(hex))?.signatures).toHaveLength(2);
  });

  it("a signature under another name keeps that name, joins `names`, and is listed under both names", async () => {
    const bytes = Buffer.from("two names");
    const hex = sha(bytes);
    const named = (source: string, envelope: string, name: string): StoredSignature => ({ ...sigFor(source, envelope), name });
    const first = { ...recordFor(bytes, "a/model", "2026-01-01T00:00:00.000Z"), names: ["a/model"], signatures: [named("research", "env-1", "a/model")] };
    await (await stage(store, bytes)).commit(first, named("research", "env-1", "a/model"));
    const again = await (await stage(store, bytes)).commit(recordFor(bytes, "b/model", "2026-02-01T00:00:00.000Z"), named("serving", "env-2", "b/model"));
    expect(again.record.name).toBe("a/model");
    expect(again.record.names).toEqual(["a/model", "b/model"]);
    expect(again.record.signatures.map((s) => s.name)).toEqual(["a/model", "b/model"]);
    expect(namesOf(again.record)).toEqual(["a/model", "b/model"]);
    expect((await store.list({ limit: 10, name: "b/model" })).items.map((r) => r.digest)).toEqual([`sha256:${hex}`]);
    const restarted = new FsArtifactStore(dir);
    await restarted.init();
    expect((await restarted.list({ limit: 10, name: "b/model" })).items.map((r) => r.digest)).toEqual([`sha256:${hex}`]);
    expect((await restarted.list({ limit: 10, name: "a/model" })).items).toHaveLength(1);
  });

  it("reads records written before names were kept; merging into one records both names", async () => {
    const bytes = Buffer.from("legacy");
    const legacy = recordFor(bytes, "a/model", "2026-01-01T00:00:00.000Z");
    await (await stage(store, bytes)).commit(legacy, sigFor("research", "env-1"));
    const read = await store.readRecord(sha(bytes));
    expect(read?.names).toBeUndefined();
    expect(read && namesOf(read)).toEqual(["a/model"]);
    const merged = await (await stage(store, bytes)).commit(legacy, { ...sigFor("serving", "env-2"), name: "b/model" });
    expect(merged.record.names).toEqual(["a/model", "b/model"]);
    expect(merged.record.signatures.map((s) => s.name)).toEqual([undefined, "b/model"]);
  });

  it("concurrent promotes of identical bytes end with one blob and one consistent record", async () => {
    const bytes = Buffer.from("concurrent");
    const stagedAll = await Promise.all(Array.from({ length: 8 }, () => stage(store, bytes)));
    const results = await Promise.all(
      stagedAll.map((staged, i) =>
        staged.commit(recordFor(bytes, "n", "2026-01-01T00:00:00.000Z", `s${String(i)}`, `env-${String(i)}`), sigFor(`s${String(i)}`, `env-${String(i)}`)),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const files = await listTree(dir);
    expect(files).toHaveLength(2);
    expect((await store.readRecord(sha(bytes)))?.signatures).toHaveLength(8);
  });

  it("removes leftover temp files at start and completes a blob whose record write was interrupted", async () => {
    await fsp.writeFile(path.join(dir, "tmp", "leftover.part"), "partial");
    const bytes = Buffer.from("orphan blob");
    // A blob moved into place whose record write never happened (a crash between the two renames).
    await fsp.mkdir(path.dirname(store.blobPath(sha(bytes))), { recursive: true });
    await fsp.writeFile(store.blobPath(sha(bytes)), bytes);
    const restarted = new FsArtifactStore(dir);
    await restarted.init();
    expect(await fsp.readdir(path.join(dir, "tmp"))).toEqual([]);
    // blob without record: not listed, not a record
    expect((await restarted.list({ limit: 10 })).items).toEqual([]);
    expect(await restarted.readRecord(sha(bytes))).toBeUndefined();
    const result = await (await stage(restarted, bytes)).commit(recordFor(bytes, "n", "2026-01-01T00:00:00.000Z"), sigFor("research", "env-1"));
    expect(result.created).toBe(false);
    expect(result.record.name).toBe("n");
  });

  it("lists newest first with filters and a cursor, and rejects forged cursors", async () => {
    const items = ["a", "b", "c", "d", "e"].map((s, i) => ({
      bytes: Buffer.from(s),
      createdAt: `2026-01-0${String(i + 1)}T00:00:00.000Z`,
      source: i % 2 === 0 ? "even" : "odd",
    }));
    for (const it of items) {
      await (await stage(store, it.bytes)).commit(recordFor(it.bytes, `m/${it.bytes.toString()}`, it.createdAt, it.source), sigFor(it.source, "e"));
    }
    const first = await store.list({ limit: 2 });
    expect(first.items.map((r) => r.name)).toEqual(["m/e", "m/d"]);
    const second = await store.list({ limit: 2, cursor: first.nextCursor });
    expect(second.items.map((r) => r.name)).toEqual(["m/c", "m/b"]);
    const third = await store.list({ limit: 2, cursor: second.nextCursor });
    expect(third.items.map((r) => r.name)).toEqual(["m/a"]);
    expect(third.nextCursor).toBeUndefined();
    expect((await store.list({ limit: 10, source: "odd" })).items.map((r) => r.name)).toEqual(["m/d", "m/b"]);
    expect((await store.list({ limit: 10, name: "m/c" })).items).toHaveLength(1);
    // a restarted store rebuilds the same index from the records
    const restarted = new FsArtifactStore(dir);
    await restarted.init();
    expect((await restarted.list({ limit: 10 })).items.map((r) => r.name)).toEqual(["m/e", "m/d", "m/c", "m/b", "m/a"]);
    await expect(store.list({ limit: 2, cursor: "not-a-cursor" })).rejects.toMatchObject({ code: "bad_request" });
  });

  it("quarantines blob and record out of the served tree with a reason", async () => {
    const bytes = Buffer.from("to quarantine");
    const hex = sha(bytes);
    await (await stage(store, bytes)).commit(recordFor(bytes, "q", "2026-01-01T00:00:00.000Z"), sigFor("research", "e"));
    await store.quarantine(hex, "sha256 mismatch on read");
    expect(await store.stat(hex)).toBeUndefined();
    expect(await store.readRecord(hex)).toBeUndefined();
    expect((await store.list({ limit: 10 })).items).toEqual([]);
    const files = await listTree(path.join(dir, "quarantine"));
    expect(files.map((f) => path.basename(f)).sort()).toEqual(["blob", "reason.txt", "record.json"]);
  });

  it("treats a record that does not match its digest as an integrity error", async () => {
    const bytes = Buffer.from("x");
    const hex = sha(bytes);
    await (await stage(store, bytes)).commit(recordFor(bytes, "x", "2026-01-01T00:00:00.000Z"), sigFor("research", "e"));
    await fsp.writeFile(store.blobPath(hex) + ".json", JSON.stringify({ ...recordFor(Buffer.from("y"), "x", "t") }));
    await expect(store.readRecord(hex)).rejects.toMatchObject({ code: "integrity_error" });
    await store.checkWritable();
  });
});
