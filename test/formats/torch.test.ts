import { parseStoragePid, readLegacyKeys, torchZipLayout } from "../../src/formats/models/torch";
import { BufferSource } from "../../src/bytes/source";
import { type ContentPolicy } from "../../src/inspect/policy";
import type { InspectionReport } from "../../src/inspect/report";
import type { SymbolicValue } from "../../src/pickle/values";
import { buildLegacyTorch, listPickle, op, osSystemPickle, stateDictPickle, type TensorSpec } from "./torchBuilder";
import { buildZip, type ZipEntrySpec } from "./zipBuilder";
import { useInspectBytes } from "../support/inspectBytes";

const inspectAs = useInspectBytes("torch-test");
const inspectBytes = (bytes: Uint8Array, policy: Partial<ContentPolicy> = {}, fileName = "model.pt"): Promise<InspectionReport> =>
  inspectAs(bytes, fileName, policy);

function rejectingCodes(r: InspectionReport): string[] {
  return r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code);
}

const TENSORS: TensorSpec[] = [
  { name: "w", key: "0", numel: 6 },
  { name: "b", key: "1", numel: 2, storageType: "LongStorage" },
];

function torchZip(tensors: TensorSpec[] = TENSORS, extra: ZipEntrySpec[] = [], top = "archive", dataPkl?: Uint8Array): Uint8Array {
  const entries: ZipEntrySpec[] = [
    { name: `${top}/data.pkl`, data: dataPkl ?? stateDictPickle(tensors) },
    ...tensors.map((t) => ({ name: `${top}/data/${t.key}`, data: new Uint8Array(t.numel * (t.storageType === "LongStorage" ? 8 : 4)).fill(3) })),
    { name: `${top}/version`, data: "3\n" },
    ...extra,
  ];
  return buildZip(entries, { zip64: true });
}

describe("parseStoragePid", () => {
  const str = (value: string): SymbolicValue => ({ kind: "str", value });
  const int = (value: bigint): SymbolicValue => ({ kind: "int", value });
  const storage: SymbolicValue = { kind: "global", module: "torch", name: "FloatStorage" };
  const tuple = (...items: SymbolicValue[]): SymbolicValue => ({ kind: "tuple", items });

  it("accepts torch's storage reference and reads its fields", () => {
    expect(parseStoragePid(tuple(str("storage"), storage, str("0"), str("cuda:0"), int(12n)), false)).toEqual({
      key: "0",
      storageType: "FloatStorage",
      location: "cuda:0",
      numel: 12n,
      elementSize: 4,
    });
    expect(typeof parseStoragePid(tuple(str("storage"), storage, str("0"), str("cpu"), int(1n), { kind: "none" }), true)).toBe("object");
  });

  it.each<[string, SymbolicValue]>([
    ["not a tuple", str("storage")],
    ["wrong arity", tuple(str("storage"), storage, str("0"), str("cpu"))],
    ["wrong tag", tuple(str("module"), storage, str("0"), str("cpu"), int(1n))],
    ["not a torch storage class", tuple(str("storage"), { kind: "global", module: "os", name: "system" }, str("0"), str("cpu"), int(1n))],
    ["unknown storage class", tuple(str("storage"), { kind: "global", module: "torch", name: "Tensor" }, str("0"), str("cpu"), int(1n))],
    ["key with a slash", tuple(str("storage"), storage, str("../x"), str("cpu"), int(1n))],
    ["negative numel", tuple(str("storage"), storage, str("0"), str("cpu"), int(-1n))],
    ["location not a string", tuple(str("storage"), storage, str("0"), int(0n), int(1n))],
  ])("rejects a persistent id that is %s", (_why, id) => {
    expect(typeof parseStoragePid(id, false)).toBe("string");
  });
});

describe("torchZipLayout", () => {
  const m = (path: string, isDirectory = false) => ({ path, size: 0, isDirectory, open: () => Promise.reject(new Error("unused")) });
  it("finds the top folder from the first entry, and TorchScript folders", () => {
    expect(torchZipLayout([m("any/data.pkl"), m("any/version")])).toEqual({ top: "any", torchScript: false });
    expect(torchZipLayout([m("t/data.pkl"), m("t/code/__torch__/m.py")])).toEqual({ top: "t", torchScript: true });
    expect(torchZipLayout([m("t/data.pkl"), m("t/constants.pkl")])).toEqual({ top: "t", torchScript: true });
    expect(torchZipLayout([m("data.pkl")])).toBeUndefined();
    expect(torchZipLayout([m("t/other.pkl")])).toBeUndefined();
  });
});

describe("PyTorch zip checkpoints", () => {
  it("accepts a state_dict with any top folder name; tensors are CRC-checked, not parsed", async () => {
    for (const top of ["archive", "my_model"]) {
      const r = await inspectBytes(torchZip(TENSORS, [], top));
      expect(rejectingCodes(r)).toEqual([]);
      expect(r.verdict).toBe("accept");
      expect(r.format).toBe("pytorch-zip");
      expect(r.root.children[0]?.details).toMatchObject({ storages: 2, tensorBytes: 6 * 4 + 2 * 8 });
    }
  });

  it("scans every .pkl entry, not only data.pkl", async () => {
    const r = await inspectBytes(torchZip(TENSORS, [{ name: "archive/extra.pkl", data: osSystemPickle() }]));
    expect(rejectingCodes(r)).toContain("dangerous_global");
  });

  it("sniffs non-.pkl members by content (a pickle stored as a tensor entry nobody references)", async () => {
    const r = await inspectBytes(torchZip(TENSORS, [{ name: "archive/data/99", data: osSystemPickle() }]));
    expect(rejectingCodes(r)).toContain("dangerous_global");
  });

  it("rejects a storage reference naming a missing entry or with the wrong size", async () => {
    const missing = buildZip([{ name: "archive/data.pkl", data: stateDictPickle([{ name: "w", key: "7", numel: 1 }]) }]);
    expect(rejectingCodes(await inspectBytes(missing))).toContain("bad_persistent_id");
    const wrongSize = torchZip([{ name: "w", key: "0", numel: 6 }], [], "archive", stateDictPickle([{ name: "w", key: "0", numel: 7 }]));
    expect(rejectingCodes(await inspectBytes(wrongSize))).toContain("bad_persistent_id");
  });

  it("rejects malformed persistent ids", async () => {
    const bad = stateDictPickle([{ name: "w", key: "0", numel: 6, rawPid: [...op.str("storage")] }]);
    expect(rejectingCodes(await inspectBytes(torchZip(TENSORS, [], "archive", bad)))).toContain("bad_persistent_id");
  });

  it("rejects entries outside the checkpoint folder", async () => {
    const r = await inspectBytes(torchZip(TENSORS, [{ name: "elsewhere/notes.txt", data: "hi" }]));
    expect(rejectingCodes(r)).toContain("malformed_container");
  });

  it("rejects bytes after data.pkl's STOP", async () => {
    const pkl = Buffer.concat([stateDictPickle(TENSORS), osSystemPickle()]);
    const r = await inspectBytes(torchZip(TENSORS, [], "archive", pkl));
    expect(rejectingCodes(r)).toContain("malformed_pickle");
  });

  it("rejects a bad CRC on a tensor entry (CVE-2025-10156: torch ignores it, we do not)", async () => {
    const bytes = buildZip([
      { name: "archive/data.pkl", data: stateDictPickle([{ name: "w", key: "0", numel: 1 }]) },
      { name: "archive/data/0", data: new Uint8Array(4), localCrc: 1, centralCrc: 1 },
    ]);
    expect(rejectingCodes(await inspectBytes(bytes))).toContain("malformed_container");
  });

  it("rejects TorchScript as embedded_code unless the policy allows it", async () => {
    const ts = torchZip(TENSORS, [
      { name: "archive/code/__torch__/m.py", data: "def forward(self):\n  return 1\n" },
      { name: "archive/constants.pkl", data: Uint8Array.from([...op.proto(2), ...op.emptyTuple, ...op.stop]) },
    ]);
    const denied = await inspectBytes(ts);
    expect(denied.format).toBe("torchscript");
    expect(rejectingCodes(denied)).toContain("embedded_code");
    const allowed = await inspectBytes(ts, { allowTorchScript: true });
    expect(allowed.verdict).toBe("accept");
    expect(allowed.findings.some((f) => f.code === "embedded_code")).toBe(true);
  });
});

describe("readLegacyKeys", () => {
  const keysOf = (bytes: Uint8Array, max = 100) => readLegacyKeys(new BufferSource(bytes), 0, bytes.length, max);
  it("reads the flat list torch writes, with APPENDS or APPEND", () => {
    expect(keysOf(listPickle(["0", "1", "10"]))).toEqual(["0", "1", "10"]);
    expect(keysOf(Uint8Array.from([...op.proto(2), ...op.emptyList, ...op.str("k"), 0x61, ...op.stop]))).toEqual(["k"]);
    expect(keysOf(Uint8Array.from([...op.proto(2), ...op.emptyList, ...op.stop]))).toEqual([]);
  });
  it("refuses anything that is not a plain list of strings, and more keys than the limit", () => {
    expect(typeof keysOf(osSystemPickle())).toBe("string");
    expect(typeof keysOf(Uint8Array.from([...op.proto(2), ...op.emptyList, ...op.mark, ...op.int(1), ...op.appends, ...op.stop]))).toBe("string");
    expect(typeof keysOf(listPickle(["0", "1"]).subarray(0, 12))).toBe("string");
    expect(keysOf(listPickle(["0", "1"]), 2)).toEqual(["0", "1"]);
    expect(typeof keysOf(listPickle(["0", "1", "2"]), 2)).toBe("string");
  });
});

describe("legacy torch files", () => {
  const tensors: TensorSpec[] = [
    { name: "w", key: "0", numel: 3 },
    { name: "b", key: "1", numel: 2 },
  ];

  it("accepts the five pickles and storages that end exactly at the end of the file", async () => {
    const r = await inspectBytes(buildLegacyTorch({ tensors }));
    expect(rejectingCodes(r)).toEqual([]);
    expect(r.format).toBe("pytorch-legacy");
  });

  it("rejects storages whose declared sizes do not match the file", async () => {
    expect(rejectingCodes(await inspectBytes(buildLegacyTorch({ tensors, writtenNumel: [4, 2] })))).toContain("bad_persistent_id");
    expect(rejectingCodes(await inspectBytes(buildLegacyTorch({ tensors, trailing: Uint8Array.from([0]) })))).toContain("malformed_container");
  });

  it("reports a pickle hidden after the storages", async () => {
    const r = await inspectBytes(buildLegacyTorch({ tensors, trailing: osSystemPickle() }));
    expect(rejectingCodes(r)).toEqual(expect.arrayContaining(["malformed_container", "dangerous_global"]));
  });

  it("rejects keys not declared by a persistent id, and storages missing from the keys", async () => {
    expect(rejectingCodes(await inspectBytes(buildLegacyTorch({ tensors, keys: ["0", "9"] })))).toContain("bad_persistent_id");
    expect(rejectingCodes(await inspectBytes(buildLegacyTorch({ tensors, keys: ["0"] })))).toContain("bad_persistent_id");
  });

  it("scans the data pickle's imports", async () => {
    const bytes = buildLegacyTorch({ tensors });
    // Swap the first tensor's rebuild function for os.system (same length is not needed: the file is rebuilt).
    const evil = Buffer.from(bytes).toString("latin1").replace("torch._utils\n_rebuild_tensor_v2\n", "os\nsystem\n");
    const r = await inspectBytes(Buffer.from(evil, "latin1"));
    expect(rejectingCodes(r)).toContain("dangerous_global");
  });
});
