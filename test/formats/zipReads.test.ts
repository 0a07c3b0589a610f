import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BufferSource, type ByteSource } from "../../src/bytes/source";
import type { FormatContext } from "../../src/formats/context";
import { inspectArchive, inspectByContent, inspectMember } from "../../src/formats/dispatch";
import { readZipDirectory } from "../../src/formats/containers/zip";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, ZIP_EOCD_SEARCH_BYTES } from "../../src/limits";

/**
 * How many bytes a zip inspection reads. The local header cross-check and the data descriptors
 * used to go through a cursor reaching to the central directory, which filled a 64 KiB window per
 * record to use 30-46 bytes of it: on many_tensors.pt (169,001 bytes, 20 tensors) the directory
 * pass alone read 2,301,002 bytes and the whole inspection 2,469,304 (14.6x the file); on a 265 MB
 * torch.save of 1,058 entries the inspection read 1.52x the file. Both reads are exact now.
 */

const FIXTURES = join(__dirname, "..", "fixtures", "torch");

/** A ByteSource that counts what its readers asked for and got. */
class CountingSource implements ByteSource {
  readonly size: number;
  bytesRead = 0;
  reads = 0;
  constructor(private readonly inner: ByteSource) {
    this.size = inner.size;
  }
  readAt(target: Uint8Array, position: number): number {
    const n = this.inner.readAt(target, position);
    this.bytesRead += n;
    this.reads += 1;
    return n;
  }
}

function fixture(name: string): CountingSource {
  return new CountingSource(new BufferSource(readFileSync(join(FIXTURES, name))));
}

let tempDir = "";
beforeAll(() => {
  tempDir = mkdtempSync(join(tmpdir(), "zip-reads-"));
});
afterAll(() => {
  rmSync(tempDir, { recursive: true, force: true });
});

function ctx(): FormatContext {
  return {
    policy: DEFAULT_CONTENT_POLICY,
    containerLimits: DEFAULT_CONTAINER_LIMITS,
    pickleLimits: DEFAULT_PICKLE_LIMITS,
    depth: 0,
    tempDir,
    budget: { uncompressedBytes: 0 },
    inspectMember,
    inspectArchive,
  };
}

/** Signature, CRC-32 and two 8-byte sizes: the widest data descriptor. */
const WIDEST_DESCRIPTOR = 24;
/** The zip64 locator (20) and record (56), read when the locator is there. */
const ZIP64_TAIL = 20 + 56;

describe("zip reads: exact-sized local headers and data descriptors", () => {
  it.each(["checkpoint.pt", "state_dict.pt", "optimizer_adam.pt", "renamed_top.pt", "many_tensors.pt"])(
    "the directory pass of %s reads the tail, the central directory and each header and descriptor, nothing more",
    (name) => {
      const source = fixture(name);
      const dir = readZipDirectory(source, { limits: DEFAULT_CONTAINER_LIMITS });
      expect(dir.entries.length).toBeGreaterThan(0);
      // Each descriptor may be tried at both widths (readers take the central directory's sizes).
      const perEntry = dir.entries.reduce((sum, e) => sum + (e.dataStart - e.localHeaderOffset) + 2 * WIDEST_DESCRIPTOR, 0);
      const bound = Math.min(source.size, ZIP_EOCD_SEARCH_BYTES) + ZIP64_TAIL + dir.centralDirectorySize + perEntry;
      expect(source.bytesRead).toBeLessThanOrEqual(bound);
    },
  );

  it("a whole inspection of a 20-tensor torch checkpoint reads about the file once, plus the 64 KiB tail", async () => {
    const source = fixture("many_tensors.pt");
    const node = await inspectByContent(source, "", ctx(), true);
    expect(node.format).toBe("pytorch-zip");
    expect(node.findings.filter((f) => f.severity !== "innocuous")).toEqual([]);
    // Measured: 237,454 bytes (the file, the EOCD search window, the central directory and the
    // pickle); 2,469,304 before. Bound: 240,344.
    expect(source.bytesRead).toBeLessThanOrEqual(Math.ceil(source.size * 1.01) + ZIP_EOCD_SEARCH_BYTES + 4096);
  });
});
