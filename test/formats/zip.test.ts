import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BufferSource, type ByteSource } from "../../src/bytes/source";
import { GatewayError } from "../../src/errors";
import type { FormatContext } from "../../src/formats/context";
import { checkMemberPath } from "../../src/formats/containers/memberPath";
import { readZip, readZipDirectory } from "../../src/formats/containers/zip";
import { hasZipTail } from "../../src/formats/containers/zipCentralDirectory";
import { openZipEntry } from "../../src/formats/containers/zipMember";
import type { ZipEntry } from "../../src/formats/containers/zipRecords";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, type ContainerLimits } from "../../src/limits";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { buildZip, zip64Extra, type ZipEntrySpec, type ZipSpec } from "./zipBuilder";
import { codeOf } from "../support/errors";

const limits = DEFAULT_CONTAINER_LIMITS;

function read(bytes: Uint8Array, options: { limits?: ContainerLimits; isPickle?: (s: ByteSource) => boolean } = {}) {
  return readZipDirectory(new BufferSource(bytes), { limits: options.limits ?? limits, ...(options.isPickle ? { isPickle: options.isPickle } : {}) });
}

async function asyncCodeOf(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not-a-gateway-error: ${String(err)}`;
  }
  return undefined;
}

function zipCode(entries: ZipEntrySpec[], spec: ZipSpec = {}, l?: ContainerLimits): string | undefined {
  return codeOf(() => read(buildZip(entries, spec), l ? { limits: l } : {}));
}

let tempDir: string;
beforeAll(() => {
  tempDir = mkdtempSync(join(tmpdir(), "zip-test-"));
});
afterAll(() => {
  rmSync(tempDir, { recursive: true, force: true });
});

function ctxWith(overrides: Partial<ContainerLimits> = {}): FormatContext {
  return {
    policy: DEFAULT_CONTENT_POLICY,
    containerLimits: { ...limits, ...overrides },
    pickleLimits: DEFAULT_PICKLE_LIMITS,
    depth: 0,
    tempDir,
    budget: { uncompressedBytes: 0 },
    inspectMember: () => Promise.reject(new Error("unused")),
    inspectArchive: () => Promise.reject(new Error("unused")),
  };
}

async function readMember(bytes: Uint8Array, name: string, ctx = ctxWith()): Promise<Uint8Array> {
  const source = new BufferSource(bytes);
  const dir = readZipDirectory(source, { limits: ctx.containerLimits });
  const entry = dir.entries.find((e) => e.name === name) as ZipEntry;
  const opened = await openZipEntry(source, entry, ctx);
  try {
    const out = new Uint8Array(opened.source.size);
    opened.source.readAt(out, 0);
    return out;
  } finally {
    opened.close();
  }
}

describe("zip reader: valid archives", () => {
  it("reads stored and deflated entries, directories and utf-8 names", async () => {
    const text = "hello ".repeat(1000);
    const bytes = buildZip([
      { name: "m/", data: "" },
      { name: "m/a.txt", data: text, method: 8 },
      { name: "m/b.bin", data: Uint8Array.from([1, 2, 3]) },
      { name: "m/ünï.txt", data: "x", flags: 0x800 },
    ]);
    const dir = read(bytes);
    expect(dir.entries.map((e) => e.name)).toEqual(["m/", "m/a.txt", "m/b.bin", "m/ünï.txt"]);
    expect(dir.entries[0]?.isDirectory).toBe(true);
    expect(dir.zip64).toBe(false);
    expect(Buffer.from(await readMember(bytes, "m/a.txt")).toString()).toBe(text);
    expect(Array.from(await readMember(bytes, "m/b.bin"))).toEqual([1, 2, 3]);
  });

  it("accepts data descriptors that match, with and without their signature", async () => {
    const bytes = buildZip([
      { name: "a", data: "abc", descriptor: true },
      { name: "b", data: "defdef", method: 8, descriptor: true, descriptorSignature: false },
    ]);
    expect(read(bytes).entries).toHaveLength(2);
    expect(Buffer.from(await readMember(bytes, "b")).toString()).toBe("defdef");
  });

  it("accepts a consistent zip64 end record (torch writes one always) and an empty zip", () => {
    expect(read(buildZip([{ name: "x", data: "1" }], { zip64: true })).zip64).toBe(true);
    expect(read(buildZip([])).entries).toHaveLength(0);
  });

  it("accepts a comment that reaches the end of the file", () => {
    expect(read(buildZip([{ name: "x", data: "1" }], { comment: new TextEncoder().encode("a comment") })).commentBytes).toBe(9);
  });

  it("inflates large members into a temp file and removes it on close", async () => {
    const big = randomBytes(5 * 1024 * 1024);
    const bytes = buildZip([{ name: "big", data: big, method: 8 }]);
    const source = new BufferSource(bytes);
    const ctx = ctxWith();
    const contents = readZip(source, "", ctx);
    const member = contents.members[0];
    expect(member?.size).toBe(big.length);
    const opened = await member!.open();
    expect(opened.source.size).toBe(big.length);
    expect(readdirSync(tempDir).length).toBe(1);
    opened.close();
    expect(readdirSync(tempDir).length).toBe(0);
    expect(ctx.budget.uncompressedBytes).toBe(big.length);
  });
});

describe("zip reader: end of central directory", () => {
  const one: ZipEntrySpec[] = [{ name: "x", data: "1" }];
  it("rejects a file without an EOCD and trailing bytes after the comment", () => {
    expect(() => read(Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0]))).toFailWithCode("malformed_container");
    expect(zipCode(one, { trailing: Uint8Array.from([0]) })).toBe("malformed_container");
  });

  it("rejects two EOCDs that both reach the end of the file (ambiguity)", () => {
    // A fake EOCD inside the comment whose own (empty) comment ends at the end of the file.
    const fake = new Uint8Array(22);
    const v = new DataView(fake.buffer);
    v.setUint32(0, 0x06054b50, true);
    expect(zipCode(one, { comment: fake })).toBe("malformed_container");
  });

  it("rejects a central directory that does not end at the EOCD (prefix shift) and bad counts", () => {
    expect(zipCode(one, { cdGap: Uint8Array.from([0, 0, 0, 0]) })).toBe("malformed_container");
    expect(zipCode(one, { eocdEntries: 2 })).toBe("malformed_container");
    expect(
      zipCode(
        [
          { name: "x", data: "1" },
          { name: "y", data: "2" },
        ],
        { eocdEntries: 1 },
      ),
    ).toBe("malformed_container");
  });

  it("rejects zip64 records that disagree with the EOCD or sit elsewhere than the locator says", () => {
    expect(zipCode(one, { zip64: true, zip64Entries: 2 })).toBe("malformed_container");
    expect(zipCode(one, { zip64: true, zip64CdOffset: 5 })).toBe("malformed_container");
    expect(zipCode(one, { zip64: true, zip64LocatorOffsetDelta: -4 })).toBe("malformed_container");
    expect(zipCode(one, { eocdCdOffset: 0xffffffff })).toBe("malformed_container");
  });
});

describe("zip reader: entries", () => {
  it("rejects a local header that disagrees with the central directory", () => {
    expect(zipCode([{ name: "a", data: "1", localName: "b" }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", localFlags: 0x800 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", localMethod: 8 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", localCrc: 1 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", localUncompressedSize: 2 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", centralCrc: 5 }])).toBe("malformed_container");
  });

  it("rejects a data descriptor that disagrees", () => {
    expect(zipCode([{ name: "a", data: "abc", descriptor: true, descriptorCrc: 9 }])).toBe("malformed_container");
  });

  it("rejects encrypted entries, unknown flags and methods other than stored/deflate", () => {
    expect(zipCode([{ name: "a", data: "1", flags: 1 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", flags: 0x40 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", flags: 0x2000 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", method: 8, rawCompressed: Uint8Array.from([3, 0]), localMethod: 12 }])).toBe("malformed_container");
  });

  it("rejects duplicate names, including a file and a directory of the same name", () => {
    expect(
      zipCode([
        { name: "a", data: "1" },
        { name: "a", data: "2" },
      ]),
    ).toBe("malformed_container");
    expect(
      zipCode([
        { name: "a/", data: "" },
        { name: "a", data: "2" },
      ]),
    ).toBe("malformed_container");
  });

  it.each(["/etc/passwd", "../x", "a/../../x", "a\\b", "a\0b", "C:/x", "a//b", "./a", "a/\u0001"])("rejects the path %j", (name) => {
    expect(zipCode([{ name, data: "1" }])).toBe("malformed_container");
  });

  it("rejects symbolic links and Info-ZIP Unicode Path fields; accepts regular Unix modes", () => {
    expect(zipCode([{ name: "a", data: "/etc/passwd", externalAttributes: (0o120777 << 16) >>> 0 }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", externalAttributes: (0o100644 << 16) >>> 0 }])).toBeUndefined();
    const unicodePath = Uint8Array.from([0x75, 0x70, 7, 0, 1, 0, 0, 0, 0, 0x2e, 0x2e]);
    expect(zipCode([{ name: "a", data: "1", centralExtra: unicodePath }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", localExtra: unicodePath }])).toBe("malformed_container");
  });

  it("rejects non-ASCII names without the UTF-8 flag", () => {
    expect(zipCode([{ name: "ü", data: "1" }])).toBe("malformed_container");
  });

  it("rejects overlapping entries and unaccounted gaps", () => {
    expect(
      zipCode([
        { name: "a", data: "1" },
        { name: "b", data: "2", centralOffset: 0 },
      ]),
    ).toBe("malformed_container");
    expect(
      zipCode([
        { name: "a", data: "1", gapAfter: Uint8Array.from([0]) },
        { name: "b", data: "2" },
      ]),
    ).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", gapAfter: Uint8Array.from([0]) }])).toBe("malformed_container");
  });

  it("rejects bytes before the first local header, as a polyglot when they are a pickle", () => {
    const prefix = Uint8Array.from([0x80, 0x02, 0x4b, 0x01, 0x2e]);
    const bytes = buildZip([{ name: "a", data: "1" }], { prefix });
    // The builder's offsets count from the start of the file, so the entry is found after the prefix.
    expect(() => read(bytes)).toFailWithCode("malformed_container");
    expect(() => read(bytes, { isPickle: () => true })).toFailWithCode("polyglot");
  });

  it("rejects a directory entry with content and stored entries whose sizes differ", () => {
    expect(zipCode([{ name: "d/", data: "x" }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "1", centralCompressedSize: 2, localCompressedSize: 2 }])).toBe("malformed_container");
  });

  it("requires a zip64 extra exactly when a field is saturated", () => {
    expect(zipCode([{ name: "a", data: "1", centralUncompressedSize: 0xffffffff }])).toBe("malformed_container");
    expect(
      zipCode([{ name: "a", data: "1", centralUncompressedSize: 0xffffffff, centralCompressedSize: 0xffffffff, centralExtra: zip64Extra([1, 1]) }]),
    ).toBeUndefined();
    expect(zipCode([{ name: "a", data: "1", centralUncompressedSize: 0xffffffff, centralExtra: zip64Extra([1, 1]) }])).toBe("malformed_container");
  });
});

describe("zip reader: zip64 local headers as miniz (torch) and Python write them", () => {
  it("accepts a local zip64 extra holding only the header offset, with a 64-bit descriptor", () => {
    const bytes = buildZip([{ name: "a", data: "abc", descriptor: true, descriptorWide: true, localExtra: zip64Extra([0]) }]);
    // 30-byte header + 1-byte name + 12-byte extra + 3 data bytes + 24-byte descriptor.
    const dir = read(bytes);
    expect(dir.entries[0]?.recordEnd).toBe(70);
    expect(dir.centralDirectoryOffset).toBe(70);
  });

  it("accepts saturated local sizes resolved by the local zip64 extra, and rejects them without one", () => {
    const ok = buildZip([{ name: "a", data: "abc", localCompressedSize: 0xffffffff, localUncompressedSize: 0xffffffff, localExtra: zip64Extra([3, 3]) }]);
    expect(read(ok).entries).toHaveLength(1);
    const wrong = buildZip([{ name: "a", data: "abc", localCompressedSize: 0xffffffff, localUncompressedSize: 0xffffffff, localExtra: zip64Extra([4, 3]) }]);
    expect(() => read(wrong)).toFailWithCode("malformed_container");
    const missing = buildZip([{ name: "a", data: "abc", localCompressedSize: 0xffffffff, localUncompressedSize: 0xffffffff }]);
    expect(() => read(missing)).toFailWithCode("malformed_container");
  });

  it("rejects local zip64 values that disagree with the central record", () => {
    expect(zipCode([{ name: "a", data: "abc", descriptor: true, descriptorWide: true, localExtra: zip64Extra([5]) }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "abc", localExtra: zip64Extra([11, 3]) }])).toBe("malformed_container");
    expect(zipCode([{ name: "a", data: "abc", localExtra: zip64Extra([3, 3]) }])).toBeUndefined();
    expect(zipCode([{ name: "a", data: "abc", localExtra: zip64Extra([3, 3, 1]) }])).toBe("malformed_container");
  });

  it("rejects an oversized local zip64 extra", () => {
    expect(zipCode([{ name: "a", data: "abc", localExtra: zip64Extra([3, 3, 0, 0]) }])).toBe("malformed_container");
  });
});

describe("zip reader: limits", () => {
  it("entry count at the limit and past it", () => {
    const entries = [
      { name: "a", data: "1" },
      { name: "b", data: "2" },
    ];
    expect(zipCode(entries, {}, { ...limits, maxEntries: 2 })).toBeUndefined();
    expect(zipCode(entries, {}, { ...limits, maxEntries: 1 })).toBe("limit_exceeded");
  });

  it("per-entry and total uncompressed bytes at the limit and past them", () => {
    const entries = [
      { name: "a", data: "12" },
      { name: "b", data: "34" },
    ];
    expect(zipCode(entries, {}, { ...limits, maxEntryUncompressedBytes: 2, maxTotalUncompressedBytes: 4 })).toBeUndefined();
    expect(zipCode(entries, {}, { ...limits, maxEntryUncompressedBytes: 1 })).toBe("limit_exceeded");
    expect(zipCode(entries, {}, { ...limits, maxTotalUncompressedBytes: 3 })).toBe("limit_exceeded");
  });

  it("compression ratio at the limit and past it (zip bomb)", () => {
    const data = new Uint8Array(100_000);
    const bytes = buildZip([{ name: "bomb", data, method: 8 }]);
    const ratio = Math.floor(100_000 / (read(bytes).entries[0]?.compressedSize ?? 1));
    expect(codeOf(() => read(bytes, { limits: { ...limits, maxCompressionRatio: ratio + 1 } }))).toBeUndefined();
    expect(() => read(bytes, { limits: { ...limits, maxCompressionRatio: ratio - 1 } })).toFailWithCode("limit_exceeded");
  });

  it("entry name length at the limit and past it", () => {
    expect(zipCode([{ name: "abcd", data: "1" }], {}, { ...limits, maxEntryNameBytes: 4 })).toBeUndefined();
    expect(zipCode([{ name: "abcde", data: "1" }], {}, { ...limits, maxEntryNameBytes: 4 })).toBe("limit_exceeded");
  });

  it("the shared decompression budget stops the artifact past its total", async () => {
    const bytes = buildZip([{ name: "a", data: new Uint8Array(1000), method: 8 }]);
    const ctx = ctxWith({ maxTotalUncompressedBytes: 1500 });
    ctx.budget.uncompressedBytes = 600;
    expect(await asyncCodeOf(() => readMember(bytes, "a", ctx))).toBe("limit_exceeded");
  });
});

describe("zip reader: verification on open", () => {
  it("rejects a stored entry whose CRC does not match both headers", async () => {
    const bytes = buildZip([{ name: "a", data: "hello", localCrc: 1, centralCrc: 1 }]);
    expect(await asyncCodeOf(() => readMember(bytes, "a"))).toBe("malformed_container");
  });

  it("rejects a deflated entry whose CRC or size does not match", async () => {
    const bad = buildZip([{ name: "a", data: "hello", method: 8, localCrc: 1, centralCrc: 1 }]);
    expect(await asyncCodeOf(() => readMember(bad, "a"))).toBe("malformed_container");
    const short = buildZip([{ name: "a", data: "hello", method: 8, localUncompressedSize: 4, centralUncompressedSize: 4 }]);
    expect(await asyncCodeOf(() => readMember(short, "a"))).toBe("malformed_container");
    const long = buildZip([{ name: "a", data: "hello", method: 8, localUncompressedSize: 6, centralUncompressedSize: 6 }]);
    expect(await asyncCodeOf(() => readMember(long, "a"))).toBe("malformed_container");
  });

  it("rejects a corrupt deflate stream", async () => {
    const bytes = buildZip([{ name: "a", data: "hello", method: 8, rawCompressed: Uint8Array.from([0xff, 0xff, 0xff]) }]);
    expect(await asyncCodeOf(() => readMember(bytes, "a"))).toBe("malformed_container");
  });
});

describe("zip helpers", () => {
  it("hasZipTail finds a zip directory glued to other bytes", () => {
    const zip = buildZip([{ name: "a", data: "1" }]);
    expect(hasZipTail(new BufferSource(zip))).toBe(true);
    expect(hasZipTail(new BufferSource(Uint8Array.from([0x80, 0x04, 0x2e])))).toBe(false);
  });

  it("checkMemberPath accepts ordinary relative names", () => {
    expect(() => {
      checkMemberPath("model/data/0");
    }).not.toThrow();
  });
});
