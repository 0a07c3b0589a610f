import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { GatewayError } from "../../src/errors";
import { extensionFinding, extensionOf, inspectFile, inspectPath } from "../../src/formats/inspectFile";
import { DEFAULT_CONTAINER_LIMITS } from "../../src/limits";
import { ContentPolicySchema, type ContentPolicy } from "../../src/inspect/policy";
import type { InspectionReport } from "../../src/inspect/report";
import { op, osSystemPickle } from "./torchBuilder";
import { buildZip } from "./zipBuilder";

let dir: string;
let tempRoot: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "inspect-file-test-"));
  tempRoot = mkdtempSync(join(tmpdir(), "inspect-file-temproot-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(tempRoot, { recursive: true, force: true });
});

let counter = 0;
async function inspectBytes(bytes: Uint8Array, fileName?: string, policy: Partial<ContentPolicy> = {}, maxNestingDepth?: number): Promise<InspectionReport> {
  const path = join(dir, `f${String(counter++)}`);
  writeFileSync(path, bytes);
  return inspectPath(path, {
    policy: ContentPolicySchema.parse(policy),
    ...(fileName === undefined ? {} : { fileName }),
    tempRoot,
    ...(maxNestingDepth === undefined ? {} : { containerLimits: { ...DEFAULT_CONTAINER_LIMITS, maxNestingDepth } }),
  });
}

function rejectingCodes(r: InspectionReport): string[] {
  return r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code);
}

const benignPickle = Uint8Array.from([...op.proto(2), ...op.emptyDict, ...op.mark, ...op.str("a"), ...op.int(1), ...op.setitems, ...op.stop]);

describe("inspectFile", () => {
  it("returns one report with the root node of kind file and the content below it", async () => {
    const r = await inspectBytes(benignPickle, "model.pkl");
    expect(r.verdict).toBe("accept");
    expect(r.format).toBe("pickle");
    expect(r.extension).toBe("pkl");
    expect(r.root.kind).toBe("file");
    expect(r.root.children[0]?.kind).toBe("pickle");
    expect(r.pickleFree).toBe(false);
  });

  it("throws io_error only when the file cannot be opened", async () => {
    await expect(inspectFile(join(dir, "missing"), { policy: ContentPolicySchema.parse({}) })).toFailWithCode("io_error");
    await expect(inspectFile(join(dir, "missing"), { policy: ContentPolicySchema.parse({}) })).rejects.toBeInstanceOf(GatewayError);
  });

  it("removes its temp directory, also after deflated members", async () => {
    const big = randomBytes(6 * 1024 * 1024);
    await inspectBytes(
      buildZip([
        { name: "notes.txt", data: "x".repeat(10) },
        { name: "blob.npy", data: big, method: 8 },
      ]),
      "a.zip",
      { allowOpaqueMembers: true },
    );
    expect(readdirSync(tempRoot)).toEqual([]);
  });

  it("rejects text and unknown binary at the top as unknown_format, empty files too", async () => {
    expect(rejectingCodes(await inspectBytes(Buffer.from("just some notes\n")))).toEqual(["unknown_format"]);
    expect(rejectingCodes(await inspectBytes(Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0, 1, 2])))).toEqual(["unknown_format"]);
    expect(rejectingCodes(await inspectBytes(new Uint8Array(0)))).toEqual(["unknown_format"]);
  });

  it("inspects GGUF (no longer unsupported_format): a GGUF magic followed by zeros is version 0, malformed", async () => {
    const gguf = await inspectBytes(Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(60)]));
    expect(rejectingCodes(gguf)).toEqual(["malformed_container"]);
    expect(gguf.format).toBe("gguf");
  });

  it("rejects recognised but uninspected formats as unsupported_format, naming them", async () => {
    const keras = await inspectBytes(
      buildZip([
        { name: "config.json", data: "{}" },
        { name: "metadata.json", data: "{}" },
        { name: "model.weights.h5", data: "x" },
      ]),
    );
    // Keras v3 is inspected now (models/keras.ts): weights that are not HDF5 are malformed.
    expect(rejectingCodes(keras)).toEqual(["malformed_container"]);
    expect(keras.format).toBe("keras");
  });

  it("scans every member of a generic zip by content: data is data, a pickle is a pickle whatever its name", async () => {
    const data = await inspectBytes(
      buildZip([
        { name: "config.json", data: '{"a":1}' },
        { name: "README", data: "hello\n" },
      ]),
    );
    expect(data.verdict).toBe("accept");
    expect(data.findings.map((f) => f.code)).toEqual(["data_member", "data_member"]);
    const hidden = await inspectBytes(buildZip([{ name: "notes.txt", data: osSystemPickle() }]));
    expect(rejectingCodes(hidden)).toContain("dangerous_global");
  });

  it("rejects opaque binary members unless the policy allows them", async () => {
    const zip = buildZip([{ name: "blob.bin", data: Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0, 1]) }]);
    expect(rejectingCodes(await inspectBytes(zip))).toEqual(["opaque_member"]);
    expect((await inspectBytes(zip, undefined, { allowOpaqueMembers: true })).verdict).toBe("accept");
  });

  it("recurses into nested archives up to maxNestingDepth", async () => {
    let inner: Uint8Array = buildZip([{ name: "p.pkl", data: benignPickle }]);
    const nest = (bytes: Uint8Array): Uint8Array => buildZip([{ name: "inner.zip", data: bytes }]);
    inner = nest(inner); // depth 1 archive holding depth 2
    expect((await inspectBytes(inner, undefined, {}, 2)).verdict).toBe("accept");
    expect(rejectingCodes(await inspectBytes(inner, undefined, {}, 1))).toContain("limit_exceeded");
    const evil = nest(buildZip([{ name: "x.dat", data: osSystemPickle() }]));
    expect(rejectingCodes(await inspectBytes(evil))).toContain("dangerous_global");
  });

  it("inspects compressed members (a zlib pickle inside a zip)", async () => {
    const r = await inspectBytes(buildZip([{ name: "model.joblib", data: deflateSync(osSystemPickle()) }]));
    expect(rejectingCodes(r)).toContain("dangerous_global");
  });

  it("never throws on garbage that looks like a zip", async () => {
    const zip = Buffer.from(buildZip([{ name: "a.txt", data: "hello" }]));
    for (let i = 0; i < zip.length; i += 3) {
      const mutated = Buffer.from(zip);
      mutated[i] = (mutated[i] ?? 0) ^ 0xff;
      const r = await inspectBytes(mutated);
      expect(["accept", "reject"]).toContain(r.verdict);
    }
  });
});

describe("extension check", () => {
  it("reports the extension, never trusts it", () => {
    expect(extensionOf("model.PT")).toBe("pt");
    expect(extensionOf("bundle.tar.gz")).toBe("tar.gz");
    expect(extensionOf("noext")).toBeUndefined();
    expect(extensionOf(undefined)).toBeUndefined();
  });

  it("is innocuous for loose names and suspicious for a pickle under a pickle-free extension", () => {
    expect(extensionFinding("pt", "pytorch-zip", true)).toBeUndefined();
    expect(extensionFinding("pt", "pickle", false)?.severity).toBe("innocuous");
    expect(extensionFinding("safetensors", "pickle", false)?.severity).toBe("suspicious");
    expect(extensionFinding("npy", "npy", false)).toBeUndefined();
    expect(extensionFinding("whatever", "pickle", false)).toBeUndefined();
  });

  it("rejects a pickle renamed to .safetensors (CVE-2025-10155) and accepts a raw pickle named .pt with an innocuous finding", async () => {
    const renamed = await inspectBytes(benignPickle, "model.safetensors");
    expect(rejectingCodes(renamed)).toEqual(["extension_mismatch"]);
    const loose = await inspectBytes(benignPickle, "model.pt");
    expect(loose.verdict).toBe("accept");
    expect(loose.findings.map((f) => f.code)).toEqual(["extension_mismatch"]);
  });
});
