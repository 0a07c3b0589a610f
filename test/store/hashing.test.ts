import { createHash, randomBytes } from "node:crypto";
import { promises as fsp, readlinkSync, readdirSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { GatewayError } from "../../src/errors";
import { WRITE_BUFFER_BYTES, writeHashed } from "../../src/store/hashing";

/** Descriptors this process has open on `file` (Linux /proc): a settled writeHashed leaves none. */
function openDescriptorsOn(file: string): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(file)) count += 1;
    } catch {
      // the descriptor readdir itself used is gone by now
    }
  }
  return count;
}

function chunksOf(data: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) chunks.push(data.subarray(offset, offset + size));
  return chunks;
}

describe("writeHashed", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-hashing-"));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("writes the bytes and returns their sha256 and size, with background syncs along the way", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const file = path.join(dir, "blob.part");
    // A sync after every 4 KiB: many syncs overlap the writes, and one is likely in flight at the end.
    const result = await writeHashed(Readable.from(chunksOf(data, 64 * 1024)), file, { syncEveryBytes: 4096 });
    expect(result).toEqual({ digestHex: createHash("sha256").update(data).digest("hex"), size: data.length });
    expect((await fsp.readFile(file)).equals(data)).toBe(true);
    expect(openDescriptorsOn(file)).toBe(0);
  });

  it("pauses the input while WRITE_BUFFER_BYTES wait to be written and resumes it, losing nothing", async () => {
    const data = randomBytes(5 * WRITE_BUFFER_BYTES + 12_345);
    const input = Readable.from(chunksOf(data, 64 * 1024));
    let pauses = 0;
    let resumes = 0;
    const pause = input.pause.bind(input);
    const resume = input.resume.bind(input);
    input.pause = () => {
      pauses += 1;
      return pause();
    };
    input.resume = () => {
      resumes += 1;
      return resume();
    };
    const file = path.join(dir, "big.part");
    const result = await writeHashed(input, file);
    expect(result).toEqual({ digestHex: createHash("sha256").update(data).digest("hex"), size: data.length });
    expect((await fsp.readFile(file)).equals(data)).toBe(true);
    expect(pauses).toBeGreaterThan(0);
    expect(resumes).toBeGreaterThan(0);
  });

  it("handles an empty input", async () => {
    const file = path.join(dir, "empty.part");
    const result = await writeHashed(Readable.from([]), file);
    expect(result).toEqual({ digestHex: createHash("sha256").digest("hex"), size: 0 });
    expect((await fsp.stat(file)).size).toBe(0);
  });

  it("fails with too_large once more than maxBytes arrived, leaving the input paused, not destroyed", async () => {
    const file = path.join(dir, "big.part");
    const input = new PassThrough();
    const writing = writeHashed(input, file, { maxBytes: 100_000, syncEveryBytes: 1 });
    for (let i = 0; i < 4; i += 1) input.write(randomBytes(40_000));
    const err: unknown = await writing.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe("too_large");
    expect((err as GatewayError).details).toEqual({ maxBytes: 100_000 });
    expect(input.destroyed).toBe(false);
    expect(input.isPaused()).toBe(true);
    // Settled only after the file was closed: the caller may discard it right away.
    expect(openDescriptorsOn(file)).toBe(0);
    expect((await fsp.stat(file)).size).toBeLessThanOrEqual(100_000);
  });

  it("rejects with the input's own error and closes the file", async () => {
    const file = path.join(dir, "broken.part");
    const input = new PassThrough();
    const writing = writeHashed(input, file);
    input.write(randomBytes(1000));
    input.destroy(new Error("connection reset"));
    await expect(writing).rejects.toThrow("connection reset");
    expect(openDescriptorsOn(file)).toBe(0);
  });

  it("appends through a FileHandle the caller opened, continuing a hash of the bytes already there", async () => {
    const first = randomBytes(100_000);
    const rest = randomBytes(300_000);
    const file = path.join(dir, "resumed.part");
    await fsp.writeFile(file, first);
    const hash = createHash("sha256").update(first);
    const handle = await fsp.open(file, "a");
    const result = await writeHashed(Readable.from(chunksOf(rest, 65_536)), handle, { hash, maxBytes: rest.length });
    expect(result).toEqual({ digestHex: createHash("sha256").update(first).update(rest).digest("hex"), size: rest.length });
    expect((await fsp.readFile(file)).equals(Buffer.concat([first, rest]))).toBe(true);
    expect(openDescriptorsOn(file)).toBe(0); // the handle was taken over and closed
  });

  it("never overwrites an existing file", async () => {
    const file = path.join(dir, "taken.part");
    await fsp.writeFile(file, "keep me");
    await expect(writeHashed(Readable.from([Buffer.from("new")]), file)).rejects.toMatchObject({ code: "EEXIST" });
    expect(await fsp.readFile(file, "utf8")).toBe("keep me");
  });
});
