import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { summarize } from "../../src/inspect/report";
import { FsArtifactStore } from "../../src/store/fsStore";
import type { ArtifactRecord, StoredSignature } from "../../src/store/types";

/** The staged-upload handle is the one owner of an upload's temp file: whatever happens, nothing stays in tmp/. */

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

function recordFor(bytes: Buffer, envelope = "env-1"): { record: ArtifactRecord; signature: StoredSignature } {
  const signature: StoredSignature = { source: "research", keyIds: ["k"], envelope, addedAt: "2026-01-01T00:00:00.000Z", name: "a/model" };
  return {
    signature,
    record: {
      digest: `sha256:${sha(bytes)}`,
      size: bytes.length,
      name: "a/model",
      names: ["a/model"],
      format: "safetensors",
      createdAt: "2026-01-01T00:00:00.000Z",
      signatures: [signature],
      inspection: summarize({ kind: "file", path: "", findings: [], children: [] }, "safetensors"),
    },
  };
}

describe("FsArtifactStore staged uploads", () => {
  let dir: string;
  let store: FsArtifactStore;
  const tmpFiles = (): Promise<string[]> => fsp.readdir(path.join(dir, "tmp"));

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-staged-"));
    store = new FsArtifactStore(dir);
    await store.init();
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("begin writes nothing; receive hashes and counts into one temp file the inspector can read", async () => {
    const upload = store.begin({ maxBytes: 100 });
    expect(await tmpFiles()).toEqual([]);
    expect(upload.blob).toBeUndefined();
    const bytes = Buffer.from("model bytes");
    const blob = await upload.receive(Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]));
    expect(blob).toEqual({ path: expect.any(String), digestHex: sha(bytes), size: bytes.length });
    expect(upload.blob).toBe(blob);
    expect(await fsp.readFile(blob.path)).toEqual(bytes);
    expect(await tmpFiles()).toHaveLength(1);
    await upload.abort();
    expect(await tmpFiles()).toEqual([]);
  });

  it("past maxBytes: too_large while the bytes arrive, the input left usable (paused, not destroyed); abort removes the part written", async () => {
    const upload = store.begin({ maxBytes: 15 });
    const input = new PassThrough();
    const receiving = upload.receive(input);
    input.write(Buffer.alloc(10));
    input.write(Buffer.alloc(10));
    await expect(receiving).rejects.toMatchObject({ code: "too_large" });
    expect(input.destroyed).toBe(false);
    expect(input.isPaused()).toBe(true);
    expect(upload.blob).toBeUndefined();
    await upload.abort();
    expect(await tmpFiles()).toEqual([]);
    const exact = store.begin({ maxBytes: 15 });
    expect((await exact.receive(Readable.from([Buffer.alloc(15)]))).size).toBe(15);
    await exact.abort();
    input.destroy();
  });

  it("abort is safe twice, concurrently, and before anything was received", async () => {
    const never = store.begin({ maxBytes: 10 });
    await never.abort();
    await never.abort();
    const upload = store.begin({ maxBytes: 10 });
    await upload.receive(Readable.from([Buffer.from("abc")]));
    await Promise.all([upload.abort(), upload.abort()]);
    await upload.abort();
    expect(await tmpFiles()).toEqual([]);
  });

  it("abort during receive stops the write and removes the file (a hung input does not hold it)", async () => {
    const upload = store.begin({ maxBytes: 1024 });
    const input = new PassThrough();
    const receiving = upload.receive(input);
    input.write(Buffer.alloc(100, 1));
    for (let i = 0; i < 100 && (await tmpFiles()).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(await tmpFiles()).toHaveLength(1);
    const aborted = upload.abort();
    await expect(receiving).rejects.toMatchObject({ code: "internal" });
    await aborted;
    expect(await tmpFiles()).toEqual([]);
    input.destroy();
  });

  it("commit moves the bytes in; abort afterwards does nothing; a second commit or receive is refused", async () => {
    const bytes = Buffer.from("commit me");
    const { record, signature } = recordFor(bytes);
    const upload = store.begin({ maxBytes: 100 });
    await upload.receive(Readable.from([bytes]));
    const result = await upload.commit(record, signature);
    expect(result.created).toBe(true);
    await upload.abort();
    await upload.abort();
    expect(await fsp.readFile(store.blobPath(sha(bytes)))).toEqual(bytes);
    expect(await tmpFiles()).toEqual([]);
    await expect(upload.commit(record, signature)).rejects.toMatchObject({ code: "internal" });
    await expect(upload.receive(Readable.from([bytes]))).rejects.toMatchObject({ code: "internal" });
  });

  it("commit after abort, or before receive, is refused and stores nothing", async () => {
    const bytes = Buffer.from("too late");
    const { record, signature } = recordFor(bytes);
    const early = store.begin({ maxBytes: 100 });
    await expect(early.commit(record, signature)).rejects.toMatchObject({ code: "internal" });
    const upload = store.begin({ maxBytes: 100 });
    await upload.receive(Readable.from([bytes]));
    await upload.abort();
    await expect(upload.commit(record, signature)).rejects.toMatchObject({ code: "internal" });
    expect(await store.stat(sha(bytes))).toBeUndefined();
    expect(await tmpFiles()).toEqual([]);
  });

  it("a record naming other bytes is refused at commit; the staged file stays for abort", async () => {
    const upload = store.begin({ maxBytes: 100 });
    await upload.receive(Readable.from([Buffer.from("these")]));
    const { record, signature } = recordFor(Buffer.from("other"));
    await expect(upload.commit(record, signature)).rejects.toMatchObject({ code: "internal" });
    expect(await tmpFiles()).toHaveLength(1);
    await upload.abort();
    expect(await tmpFiles()).toEqual([]);
  });

  it("an abort called while the commit runs waits for it and leaves the committed bytes alone", async () => {
    const bytes = Buffer.from("racing");
    const { record, signature } = recordFor(bytes);
    const upload = store.begin({ maxBytes: 100 });
    await upload.receive(Readable.from([bytes]));
    const committing = upload.commit(record, signature);
    await upload.abort();
    expect((await committing).created).toBe(true);
    expect(await store.stat(sha(bytes))).toEqual({ size: bytes.length });
    expect(await tmpFiles()).toEqual([]);
  });
});
