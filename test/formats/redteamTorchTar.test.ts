import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { detectMagic, tarfileNti, tarfileWouldOpen } from "../../src/formats/detect";
import { rejects, type InspectionReport } from "../../src/inspect/report";
import { buildTar, tarHeader } from "./builders/tar";
import { osSystemPickle } from "./torchBuilder";
import { buildZip } from "./zipBuilder";
import { useInspectBytes } from "../support/inspectBytes";

/**
 * Red team, issue 10 family 1: torch.load's tar checkpoint path. torch.load (weights_only=False)
 * hands every non-zip file to _legacy_load, which tries tarfile.open(mode="r:") first and reads
 * the members storages, tensors and pickle (torch/serialization.py legacy_load). Fixtures come
 * from test/fixtures/generate.py gen_torch_tar (the benign tar checkpoint and the legacy
 * checkpoints at protocols 2-5 were loaded with torch 1.13's torch.load there).
 * Each case marked "main accepted" was accepted before this change.
 */

const FIXTURES = join(__dirname, "..", "fixtures", "torch");

const inspectAs = useInspectBytes("redteam-torch-tar");
const inspectBytes = (bytes: Uint8Array, policy: Record<string, unknown> = {}): Promise<InspectionReport> => inspectAs(bytes, "model.pt", policy);

function fixture(name: string): Uint8Array {
  return readFileSync(join(FIXTURES, name));
}

function codes(r: InspectionReport): string[] {
  return [...new Set(r.findings.filter(rejects).map((f) => f.code))].sort();
}

/** Python pickle.dumps(n, protocol=2) for a small n. */
function intPickle(n: number): Uint8Array {
  return Uint8Array.from([0x80, 0x02, 0x4b, n, 0x2e]);
}

describe("torch tar checkpoints are read as torch.load reads them", () => {
  it("accepts the benign tar checkpoint (main rejected it: its raw counts read as bad opcodes)", async () => {
    const r = await inspectBytes(fixture("tar_checkpoint.pt"));
    expect(codes(r)).toEqual([]);
    expect(r.verdict).toBe("accept");
    expect(r.format).toBe("pytorch-tar");
  });

  it("finds os.system read as a storage pickle after a raw storage that a pickle walker takes for bytes (main accepted)", async () => {
    const r = await inspectBytes(fixture("tar_storages_hidden_pickle.pt"));
    expect(r.verdict).toBe("reject");
    expect(codes(r)).toContain("dangerous_global");
  });

  it("finds the same hidden pickle under gzip (main accepted)", async () => {
    const r = await inspectBytes(gzipSync(fixture("tar_storages_hidden_pickle.pt")));
    expect(codes(r)).toContain("dangerous_global");
  });

  it.each([["tar_tensors_malicious.pt"], ["tar_pickle_malicious.pt"]])("rejects %s (dangerous_global)", async (name) => {
    const r = await inspectBytes(fixture(name));
    expect(codes(r)).toContain("dangerous_global");
  });

  it("rejects a checkpoint without tensors after scanning storages, as torch fails only after reading them", async () => {
    const evil = await inspectBytes(
      buildTar([
        { name: "storages", data: Buffer.concat([intPickle(1), osSystemPickle()]) },
        { name: "pickle", data: intPickle(0) },
      ]),
    );
    expect(codes(evil)).toContain("dangerous_global");
    const storages = Buffer.concat([intPickle(0), Uint8Array.from([0x80, 0x02, 0x5d, 0x2e])]);
    const missing = await inspectBytes(
      buildTar([
        { name: "storages", data: storages },
        { name: "pickle", data: intPickle(0) },
      ]),
    );
    expect(codes(missing)).toEqual(["malformed_container"]);
  });

  it("rejects bytes after the object pickle's STOP and persistent ids naming no declared key", async () => {
    const base = [
      { name: "storages", data: Buffer.concat([intPickle(0), Uint8Array.from([0x80, 0x02, 0x5d, 0x2e])]) },
      { name: "tensors", data: intPickle(0) },
    ];
    const trailing = await inspectBytes(buildTar([...base, { name: "pickle", data: Buffer.concat([intPickle(0), osSystemPickle()]) }]));
    expect(codes(trailing)).toContain("malformed_container");
    // PERSID "7\n" STOP: deserialized_objects[7] is no storage or tensor key
    const pid = await inspectBytes(buildTar([...base, { name: "pickle", data: Uint8Array.from([0x80, 0x02, 0x50, 0x37, 0x0a, 0x2e]) }]));
    expect(codes(pid)).toContain("bad_persistent_id");
  });
});

describe("whatever tarfile opens is a tar first", () => {
  it("rejects the v7-header checkpoint (blank numeric fields) that tarfile opens", async () => {
    const r = await inspectBytes(fixture("tar_v7_checkpoint.pt"));
    expect(codes(r)).toEqual(["malformed_container"]);
  });

  it("rejects it as a member of a zip even when opaque members are allowed (main accepted it as opaque)", async () => {
    const zip = buildZip([{ name: "bundle/model.pt", data: fixture("tar_v7_checkpoint.pt") }]);
    const r = await inspectBytes(zip, { allowOpaqueMembers: true });
    expect(r.verdict).toBe("reject");
    expect(codes(r)).toContain("malformed_container");
  });

  it("rejects a v7 tar that is also a one-string pickle as a polyglot (main accepted the pickle)", async () => {
    const r = await inspectBytes(fixture("tar_v7_pickle_polyglot.pt"));
    expect(codes(r)).toEqual(expect.arrayContaining(["polyglot", "malformed_container"]));
  });

  it("rejects a valid five-pickle legacy checkpoint that is also a tar as a polyglot (main accepted it)", async () => {
    const r = await inspectBytes(fixture("legacy_tar_polyglot.pt"));
    expect(codes(r)).toContain("polyglot");
  });

  it("reads a tar whose first header opens with an empty zip's end record as a tar, as torch does (main read an empty zip)", async () => {
    const members = [
      { name: "storages", data: Buffer.concat([intPickle(0), Uint8Array.from([0x80, 0x02, 0x5d, 0x2e])]) },
      { name: "tensors", data: intPickle(0) },
      { name: "pickle", data: osSystemPickle() },
    ];
    const total = 512 + members.reduce((n, m) => n + 512 + Math.ceil(m.data.length / 512) * 512, 0) + 1024;
    // "PK\x05\x06", no disks, no entries, then a comment that runs to the end of the file
    const eocd = new Uint8Array(22);
    eocd.set([0x50, 0x4b, 0x05, 0x06]);
    new DataView(eocd.buffer).setUint16(20, total - 22, true);
    const bytes = buildTar([{ name: "", rawName: eocd, data: "", v7: true }, ...members]);
    expect(bytes.length).toBe(total);
    const r = await inspectBytes(bytes);
    expect(r.verdict).toBe("reject");
    expect(r.format).toBe("tar");
    // a v7 first header, and a zip reader sees an empty zip: both reasons reject
    expect(codes(r)).toEqual(["malformed_container", "polyglot"]);
  });

  it("rejects a zip whose first block is also a tar header tarfile opens (polyglot)", async () => {
    // With a data descriptor the local header holds no CRC or sizes: the block's sum does not
    // depend on the entry's data, so the checksum can be written into the data itself.
    const data = new Uint8Array(600).fill(0x41);
    const field = (zip: Uint8Array): number => {
      let sum = 256;
      zip.subarray(0, 512).forEach((b, i) => {
        if (i < 148 || i >= 156) sum += b;
      });
      return sum;
    };
    const first = buildZip([{ name: "a.bin", data, descriptor: true }]);
    const at = 148 - (30 + "a.bin".length);
    data.set(
      Uint8Array.from(`${field(first).toString(8).padStart(6, "0")}\0 `, (c) => c.charCodeAt(0)),
      at,
    );
    const zip = buildZip([{ name: "a.bin", data, descriptor: true }]);
    expect(tarfileWouldOpen(zip)).toBe(true);
    expect(detectMagic(zip)).toBe("zip");
    const r = await inspectBytes(zip, { allowOpaqueMembers: true });
    expect(codes(r)).toContain("polyglot");
  });

  it("takes a header by tarfile's checksum rule: unsigned or signed sum, no magic, nti's blank and signed fields", () => {
    const v7 = tarHeader({ name: "storages", data: "x", v7: true });
    expect(tarfileWouldOpen(v7)).toBe(true);
    expect(detectMagic(v7)).toBe("tar");
    const signed = tarHeader({ name: "\u00e9storages", data: "x", v7: true, signedChecksum: true });
    expect(tarfileWouldOpen(signed)).toBe(true);
    const off = Uint8Array.from(v7);
    off[0] = (off[0] ?? 0) + 1;
    expect(tarfileWouldOpen(off)).toBe(false);
    expect(tarfileWouldOpen(new Uint8Array(512))).toBe(false);
    // a blank checksum field is nti 0, which the signed sum reaches: 256 - 128 - 128
    const blank = new Uint8Array(512);
    blank.set([0x80, 0x80]);
    expect(tarfileWouldOpen(blank)).toBe(true);
    // the same sum written as Python's int() also reads it: "+0o" prefix, underscores, no NUL
    let sum = 256;
    v7.forEach((b, i) => {
      if (i < 148 || i >= 156) sum += b;
    });
    const pythonic = Uint8Array.from(v7);
    pythonic.set(
      Uint8Array.from(`0o${sum.toString(8).padStart(6, "0")}`, (c) => c.charCodeAt(0)),
      148,
    );
    expect(tarfileWouldOpen(pythonic)).toBe(true);
    expect(detectMagic(pythonic)).toBe("tar");
    expect(tarfileWouldOpen(v7.subarray(0, 511))).toBe(false);
    const enc = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
    expect(tarfileNti(enc("\0\0\0\0\0\0\0\0"))).toBe(0n);
    expect(tarfileNti(enc("  \x1c\t   "))).toBe(0n);
    expect(tarfileNti(enc(" +1_7\0xx"))).toBe(15n);
    expect(tarfileNti(enc("-17 \0"))).toBe(-15n);
    expect(tarfileNti(enc("18\0"))).toBeUndefined();
    expect(tarfileNti(enc("1__7\0"))).toBeUndefined();
    expect(tarfileNti(enc("0o_17\0"))).toBe(15n);
    expect(tarfileNti(enc("-0O1_7\0"))).toBe(-15n);
    expect(tarfileNti(enc("0o\0"))).toBeUndefined();
    expect(tarfileNti(enc("_7\0"))).toBeUndefined();
    expect(tarfileNti(Uint8Array.from([0x31, 0xc3, 0]))).toBeUndefined();
    expect(tarfileNti(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]))).toBe(-2n);
    expect(tarfileNti(Uint8Array.from([0x80, 0, 0, 0, 0, 0, 0x01, 0x00]))).toBe(256n);
  });
});

describe("legacy five-pickle checkpoints", () => {
  it.each([2, 3, 4, 5])("accepts torch.save(state_dict, _use_new_zipfile_serialization=False, pickle_protocol=%i) (main refused 3-5)", async (p) => {
    const r = await inspectBytes(fixture(`legacy_state_dict_p${p}.pt`));
    expect(codes(r)).toEqual([]);
    expect(r.format).toBe("pytorch-legacy");
  });

  it.each([2, 3, 4, 5])("rejects the whole nn.Module at protocol %i for its classes, not for its ('module', ...) persistent ids", async (p) => {
    const r = await inspectBytes(fixture(`legacy_module_p${p}.pt`));
    expect(codes(r)).toContain("unknown_global");
    expect(codes(r)).not.toContain("bad_persistent_id");
    expect(codes(r)).not.toContain("malformed_container");
  });

  it.each([["legacy_p4_bad_magic.pt"], ["legacy_p4_bad_protocol.pt"], ["legacy_p4_bad_sysinfo.pt"]])("rejects %s (malformed_container)", async (name) => {
    const r = await inspectBytes(fixture(name));
    expect(r.format).toBe("pytorch-legacy");
    expect(codes(r)).toEqual(["malformed_container"]);
  });
});

describe("torch tar checkpoint structure", () => {
  const enc = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));
  /** pickle.dumps((key, "cpu", torch.FloatStorage), protocol=2) for key < 256 */
  const storageArgs = (key: number): number[] => [0x80, 0x02, 0x4b, key, 0x58, 3, 0, 0, 0, ...enc("cpu"), 0x63, ...enc("torch\nFloatStorage\n"), 0x87, 0x2e];
  /** pickle.dumps((key, storage, torch.FloatTensor), protocol=2) */
  const tensorArgs = (key: number, storage: number): number[] => [0x80, 0x02, 0x4b, key, 0x4b, storage, 0x63, ...enc("torch\nFloatTensor\n"), 0x87, 0x2e];
  const u64 = (n: number): number[] => [n & 0xff, (n >> 8) & 0xff, 0, 0, 0, 0, 0, 0];
  const i64 = (n: number): number[] => (n < 0 ? [n & 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff] : u64(n));
  const emptyList = [0x80, 0x02, 0x5d, 0x2e];
  /** storages with one 2-element FloatStorage (key 1), then `views` */
  const oneStorage = (views: number[] = emptyList): Uint8Array =>
    Uint8Array.from([...intPickle(1), ...storageArgs(1), ...u64(2), ...new Array<number>(8).fill(0), ...views]);
  const checkpoint = (storages: Uint8Array, tensors: Uint8Array, pickle: Uint8Array = intPickle(0)): Uint8Array =>
    buildTar([
      { name: "storages", data: storages },
      { name: "tensors", data: tensors },
      { name: "pickle", data: pickle },
    ]);
  // one tensor (key 2) of 1 dimension, size 2, stride 1, offset 0, over storage 1
  const oneTensor = (ndim = 1): Uint8Array => Uint8Array.from([...intPickle(1), ...tensorArgs(2, 1), ...i64(ndim), ...u64(2), ...u64(1), ...u64(0)]);

  it("accepts a checkpoint with one storage and one tensor, the tensor named by its persistent id", async () => {
    const r = await inspectBytes(checkpoint(oneStorage(), oneTensor(), Uint8Array.from([0x80, 0x02, 0x50, ...enc("2\n"), 0x2e])));
    expect(codes(r)).toEqual([]);
    expect(r.format).toBe("pytorch-tar");
  });

  it("rejects a negative dimension count, a storage count past the member, a view of an undeclared storage", async () => {
    expect(codes(await inspectBytes(checkpoint(oneStorage(), oneTensor(-1))))).toEqual(["malformed_container"]);
    const long = Uint8Array.from([...intPickle(1), ...storageArgs(1), ...u64(5), ...new Array<number>(8).fill(0), ...emptyList]);
    expect(codes(await inspectBytes(checkpoint(long, intPickle(0))))).toEqual(["malformed_container"]);
    // [(5, 9, 0, 1)]: root 9 is not declared
    const view = [0x80, 0x02, 0x5d, 0x28, 0x4b, 5, 0x4b, 9, 0x4b, 0, 0x4b, 1, 0x74, 0x61, 0x2e];
    expect(codes(await inspectBytes(checkpoint(oneStorage(view), intPickle(0))))).toEqual(["malformed_container"]);
    // not an int count
    expect(codes(await inspectBytes(checkpoint(Uint8Array.from(emptyList), intPickle(0))))).toEqual(["malformed_container"]);
  });

  it("rejects a persistent id in a pickle torch loads without persistent_load", async () => {
    const pid = Uint8Array.from([0x80, 0x02, 0x50, ...enc("1\n"), 0x2e]);
    expect(codes(await inspectBytes(checkpoint(oneStorage(), Uint8Array.from([...pid]))))).toContain("bad_persistent_id");
  });

  it.each([
    [62, 0],
    [63, 1],
  ])("lists at most 64 innocuous pickle nodes per member (%i storages: %i counted, not listed)", async (n, omitted) => {
    const storages: number[] = [...intPickle(n)];
    for (let i = 1; i <= n; i++) storages.push(...storageArgs(i), ...u64(0));
    storages.push(...emptyList);
    const r = await inspectBytes(checkpoint(Uint8Array.from(storages), intPickle(0)));
    expect(codes(r)).toEqual([]);
    const member = r.root.children[0]?.children.find((c) => c.path.endsWith("storages"));
    expect(member?.children.length).toBe(n + 2 - omitted);
    expect(member?.details?.omittedPickles).toBe(omitted === 0 ? undefined : omitted);
  });
});
