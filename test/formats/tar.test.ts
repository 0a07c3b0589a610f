import fc from "fast-check";
import { BufferSource } from "../../src/bytes/source";
import { GatewayError } from "../../src/errors";
import type { ArchiveContents } from "../../src/formats/containers/archive";
import type { FormatContext } from "../../src/formats/context";
import { inspectTar, readTar } from "../../src/formats/containers/tar";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, MAX_TAR_EXTENDED_HEADER_BYTES, type ContainerLimits } from "../../src/limits";
import { buildTar, paxRecords, type TarPart } from "./builders/tar";

function ctxWith(limits: Partial<ContainerLimits> = {}, seen: ArchiveContents[] = []): FormatContext {
  return {
    policy: { ...DEFAULT_CONTENT_POLICY },
    containerLimits: { ...DEFAULT_CONTAINER_LIMITS, ...limits },
    pickleLimits: DEFAULT_PICKLE_LIMITS,
    depth: 0,
    tempDir: "/nonexistent",
    budget: { uncompressedBytes: 0 },
    inspectMember: () => Promise.reject(new Error("not used")),
    inspectArchive: (archive) => {
      seen.push(archive);
      return Promise.resolve(archive.node);
    },
  };
}

async function read(bytes: Uint8Array, limits: Partial<ContainerLimits> = {}): Promise<ArchiveContents> {
  return readTar(new BufferSource(bytes), "bundle.tar", ctxWith(limits));
}

async function codeOf(bytes: Uint8Array, limits: Partial<ContainerLimits> = {}): Promise<string | undefined> {
  try {
    await read(bytes, limits);
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not-a-gateway-error: ${String(err)}`;
  }
  return undefined;
}

async function text(archive: ArchiveContents, path: string): Promise<string> {
  const m = archive.members.find((x) => x.path === path);
  if (!m) throw new Error(`no member ${path}`);
  const opened = await m.open();
  const buf = new Uint8Array(opened.source.size);
  opened.source.readAt(buf, 0);
  opened.close();
  return Buffer.from(buf).toString("utf8");
}

describe("readTar", () => {
  it("reads ustar directories and files, and opens members as slices", async () => {
    const a = await read(
      buildTar([
        { name: "model/", type: "5" },
        { name: "model/MLmodel", data: "flavors: {}\n" },
        { name: "model/model.pkl", data: "x".repeat(700), type: "\0" },
      ]),
    );
    expect(a.kind).toBe("tar");
    expect(a.node.format).toBe("tar");
    expect(a.members.map((m) => [m.path, m.isDirectory, m.size])).toEqual([
      ["model", true, 0],
      ["model/MLmodel", false, 12],
      ["model/model.pkl", false, 700],
    ]);
    expect(await text(a, "model/MLmodel")).toBe("flavors: {}\n");
    expect(await text(a, "model/model.pkl")).toBe("x".repeat(700));
  });

  it("joins the ustar prefix, honours GNU long names and pax path/size", async () => {
    const long = `deep/${"d".repeat(120)}/file.txt`;
    const a = await read(
      buildTar([
        { name: "name.txt", prefix: "pre/fix", data: "1" },
        { name: "././@LongLink", type: "L", gnu: true, data: `${long}\0` },
        { name: "truncated", gnu: true, data: "22" },
        { name: "PaxHeaders/x", type: "x", data: paxRecords({ path: "pax/é.txt", size: "3", mtime: "1.5" }) },
        { name: "ignored", size: 0, data: "333" },
        { name: "g", type: "g", data: paxRecords({ comment: "global" }) },
        { name: "signed.txt", data: "s", signedChecksum: true, rawName: new Uint8Array([0x73, 0x69, 0x67, 0x6e, 0x65, 0x64, 0x2e, 0x74, 0x78, 0x74]) },
      ]),
    );
    expect(a.members.map((m) => [m.path, m.size])).toEqual([
      ["pre/fix/name.txt", 1],
      [long, 2],
      ["pax/é.txt", 3],
      ["signed.txt", 1],
    ]);
    expect(await text(a, "pax/é.txt")).toBe("333");
    expect(a.node.details).toMatchObject({ entries: 4, paxHeaders: 2, gnuLongNames: 1 });
  });

  it("drops the ./ prefix that `tar -C dir .` writes, and its top directory entry", async () => {
    const a = await read(
      buildTar([
        { name: "./", type: "5" },
        { name: "./MLmodel", data: "flavors: {}\n" },
        { name: "././model/", type: "5" },
        { name: "./model/w.pkl", data: "x" },
      ]),
    );
    expect(a.members.map((m) => [m.path, m.isDirectory])).toEqual([
      ["MLmodel", false],
      ["model", true],
      ["model/w.pkl", false],
    ]);
    expect(
      await codeOf(
        buildTar([
          { name: "./a", data: "1" },
          { name: "a", data: "2" },
        ]),
      ),
    ).toBe("malformed_container");
    expect(await codeOf(buildTar([{ name: "./", data: "" }]))).toBe("malformed_container");
  });

  it("accepts zero padding after the end blocks (tar records are 10 KiB)", async () => {
    expect(await codeOf(buildTar([{ name: "a", data: "1" }], { trailing: new Uint8Array(9 * 512) }))).toBeUndefined();
  });

  const bad: [string, TarPart[], { endBlocks?: number; trailing?: Uint8Array }?][] = [
    ["a bad checksum", [{ name: "a", data: "1", badChecksum: true }]],
    ["a symlink", [{ name: "a", type: "2" }]],
    ["a hard link", [{ name: "a", type: "1" }]],
    ["a GNU long link name", [{ name: "././@LongLink", type: "K", gnu: true, data: "x\0" }]],
    ["a character device", [{ name: "a", type: "3" }]],
    ["a block device", [{ name: "a", type: "4" }]],
    ["a FIFO", [{ name: "a", type: "6" }]],
    ["a contiguous file", [{ name: "a", type: "7" }]],
    ["a GNU sparse file", [{ name: "a", type: "S", gnu: true }]],
    ["a '..' segment", [{ name: "model/../../etc/passwd", data: "x" }]],
    ["an absolute path", [{ name: "/etc/passwd", data: "x" }]],
    ["a backslash", [{ name: "model\\x", data: "x" }]],
    ["an empty name", [{ name: "", data: "x" }]],
    [
      "a pax path with '..'",
      [
        { name: "p", type: "x", data: paxRecords({ path: "../x" }) },
        { name: "ok", data: "1" },
      ],
    ],
    [
      "a duplicate file",
      [
        { name: "a", data: "1" },
        { name: "a", data: "2" },
      ],
    ],
    [
      "a duplicate directory",
      [
        { name: "d/", type: "5" },
        { name: "d/", type: "5" },
      ],
    ],
    [
      "a file then a directory of the same name",
      [
        { name: "a", data: "1" },
        { name: "a/", type: "5" },
      ],
    ],
    [
      "a directory then a file of the same name",
      [
        { name: "a/b", data: "1" },
        { name: "a", data: "2" },
      ],
    ],
    [
      "a member inside a file",
      [
        { name: "a", data: "1" },
        { name: "a/b", data: "2" },
      ],
    ],
    ["a regular file with a directory name", [{ name: "a/", data: "" }]],
    ["a directory with data", [{ name: "d/", type: "5", data: "x" }]],
    ["a v7 header without magic", [{ name: "a", data: "1", v7: true }]],
    ["a non-octal size", [{ name: "a", data: "1", sizeField: "12x" }]],
    ["a size past the end", [{ name: "a", data: "1", size: 5000 }], { endBlocks: 0 }],
    [
      "a sparse pax key",
      [
        { name: "p", type: "x", data: paxRecords({ "GNU.sparse.map": "0,1" }) },
        { name: "a", data: "1" },
      ],
    ],
    [
      "a global pax path",
      [
        { name: "g", type: "g", data: paxRecords({ path: "evil" }) },
        { name: "a", data: "1" },
      ],
    ],
    [
      "two pax headers for one member",
      [
        { name: "p", type: "x", data: paxRecords({ mtime: "1" }) },
        { name: "p", type: "x", data: paxRecords({ mtime: "2" }) },
        { name: "a", data: "1" },
      ],
    ],
    ["a pax header before the end", [{ name: "p", type: "x", data: paxRecords({ mtime: "1" }) }]],
    [
      "a bad pax record",
      [
        { name: "p", type: "x", data: "99 path=x\n" },
        { name: "a", data: "1" },
      ],
    ],
    [
      "a duplicate pax key",
      [
        { name: "p", type: "x", data: paxRecords({ path: "a" }) + paxRecords({ path: "b" }) },
        { name: "a", data: "1" },
      ],
    ],
    [
      "a non-decimal pax size",
      [
        { name: "p", type: "x", data: paxRecords({ size: "0x10" }) },
        { name: "a", data: "1" },
      ],
    ],
    [
      "a pax path and a GNU long name",
      [
        { name: "L", type: "L", gnu: true, data: "x\0" },
        { name: "p", type: "x", data: paxRecords({ path: "y" }) },
        { name: "a", data: "1" },
      ],
    ],
    // tarfile reads extended headers by whole blocks, GNU tar by size: found by differential fuzzing.
    [
      "a GNU long name cut short by its size",
      [
        { name: "L", type: "L", gnu: true, data: "model/long-name.txt\0", size: 5 },
        { name: "x", gnu: true, data: "1" },
      ],
    ],
    [
      "a GNU long name without NUL in its size",
      [
        { name: "L", type: "L", gnu: true, data: "model/n", size: 7 },
        { name: "x", gnu: true, data: "1" },
      ],
    ],
    [
      "a pax record hidden after the pax size",
      [
        { name: "p", type: "x", data: paxRecords({ mtime: "1" }) + paxRecords({ path: "evil" }), size: paxRecords({ mtime: "1" }).length },
        { name: "a", data: "1" },
      ],
    ],
    ["an invalid UTF-8 name", [{ name: "", rawName: new Uint8Array([0x61, 0xff]), data: "1" }]],
    ["a GNU header with a prefix area", [{ name: "a", gnu: true, data: "1", prefixArea: new Uint8Array([0x31, 0x32]) }]],
    ["no end blocks", [{ name: "a", data: "1" }], { endBlocks: 0 }],
    ["a lone zero block", [{ name: "a", data: "1" }], { endBlocks: 1 }],
    ["a member after the end blocks", [{ name: "a", data: "1" }], { trailing: buildTar([{ name: "b", data: "evil" }]) }],
    ["non-zero bytes after the end", [{ name: "a", data: "1" }], { trailing: Uint8Array.from([0, 0, 1]) }],
    ["a truncated trailing block", [{ name: "a", data: "1" }], { endBlocks: 1, trailing: new Uint8Array(100) }],
  ];
  // Rows all get three values: jest treats a missing last argument as a `done` callback.
  it.each(bad.map(([name, parts, options]) => [name, parts, options ?? {}] as const))("rejects %s as malformed_container", async (_name, parts, options) => {
    expect(await codeOf(buildTar(parts, options))).toBe("malformed_container");
  });

  it("rejects data after a truncated header", async () => {
    const good = buildTar([{ name: "a", data: "1" }]);
    expect(await codeOf(good.subarray(0, 700))).toBe("malformed_container");
  });

  it("bounds the member count: at the limit and one past it", async () => {
    const tar = buildTar([
      { name: "d/", type: "5" },
      { name: "d/a", data: "1" },
      { name: "d/b", data: "2" },
    ]);
    expect(await codeOf(tar, { maxEntries: 3 })).toBeUndefined();
    expect(await codeOf(tar, { maxEntries: 2 })).toBe("limit_exceeded");
  });

  it("bounds member names: at the limit and one past it", async () => {
    const name = `a/${"n".repeat(98)}`; // 100 bytes
    const viaPax = buildTar([
      { name: "p", type: "x", data: paxRecords({ path: name }) },
      { name: "x", data: "1" },
    ]);
    expect(await codeOf(viaPax, { maxEntryNameBytes: 100 })).toBeUndefined();
    expect(await codeOf(viaPax, { maxEntryNameBytes: 99 })).toBe("limit_exceeded");
    const viaGnu = buildTar([
      { name: "L", type: "L", gnu: true, data: `${name}\0` },
      { name: "x", gnu: true, data: "1" },
    ]);
    expect(await codeOf(viaGnu, { maxEntryNameBytes: 100 })).toBeUndefined();
    expect(await codeOf(viaGnu, { maxEntryNameBytes: 99 })).toBe("limit_exceeded");
  });

  it("bounds pax headers: at the limit and one past it", async () => {
    const paxOf = (total: number): string => {
      // One comment record padded so the whole pax data is `total` bytes.
      const fixed = paxRecords({ comment: "" }).length;
      let body = "x".repeat(total - fixed - 1);
      let text = paxRecords({ comment: body });
      while (text.length > total) {
        body = body.slice(0, body.length - (text.length - total));
        text = paxRecords({ comment: body });
      }
      return text;
    };
    const at = paxOf(MAX_TAR_EXTENDED_HEADER_BYTES);
    expect(at.length).toBe(MAX_TAR_EXTENDED_HEADER_BYTES);
    expect(
      await codeOf(
        buildTar([
          { name: "p", type: "x", data: at },
          { name: "a", data: "1" },
        ]),
      ),
    ).toBeUndefined();
    expect(
      await codeOf(
        buildTar([
          { name: "p", type: "x", data: `${at}\n` },
          { name: "a", data: "1" },
        ]),
      ),
    ).toBe("limit_exceeded");
  });

  it("bounds member sizes: at the limit and one past it", async () => {
    const tar = buildTar([{ name: "a", data: "x".repeat(1000) }]);
    expect(await codeOf(tar, { maxEntryUncompressedBytes: 1000 })).toBeUndefined();
    expect(await codeOf(tar, { maxEntryUncompressedBytes: 999 })).toBe("limit_exceeded");
  });

  it("never crashes on mutated archives", async () => {
    const good = buildTar([
      { name: "p", type: "x", data: paxRecords({ path: "m/é" }) },
      { name: "x", data: "1" },
      { name: "L", type: "L", gnu: true, data: "m/long\0" },
      { name: "y", gnu: true, data: "22" },
      { name: "m/d/", type: "5" },
    ]);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), async (edits) => {
        const bytes = good.slice();
        for (const [at, b] of edits) bytes[at] = b;
        const code = await codeOf(bytes);
        expect(code === undefined || code === "malformed_container" || code === "limit_exceeded").toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("inspectTar", () => {
  it("hands the archive to ctx.inspectArchive", async () => {
    const seen: ArchiveContents[] = [];
    const node = await inspectTar(new BufferSource(buildTar([{ name: "a.txt", data: "1" }])), "x.tar", ctxWith({}, seen));
    expect(seen).toHaveLength(1);
    expect(node.kind).toBe("tar");
    expect(node.findings).toEqual([]);
  });

  it("turns structural errors into findings", async () => {
    const node = await inspectTar(new BufferSource(buildTar([{ name: "a", type: "2" }])), "x.tar", ctxWith());
    expect(node.findings.map((f) => [f.code, f.severity])).toEqual([["malformed_container", "malformed"]]);
  });
});
