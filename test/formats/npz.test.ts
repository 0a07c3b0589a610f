import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspectPath } from "../../src/formats/inspectFile";
import { ContentPolicySchema } from "../../src/inspect/policy";
import type { InspectionReport } from "../../src/inspect/report";
import { osSystemPickle } from "./torchBuilder";
import { buildZip } from "./zipBuilder";
import { npyFloat32 } from "../support/bytes";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "npz-test-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
async function inspect(bytes: Uint8Array | string): Promise<InspectionReport> {
  let path: string;
  if (typeof bytes === "string") path = bytes;
  else {
    path = join(dir, `f${String(counter++)}`);
    writeFileSync(path, bytes);
  }
  return inspectPath(path, { policy: ContentPolicySchema.parse({}), fileName: "arrays.npz" });
}

function rejectingCodes(r: InspectionReport): string[] {
  return r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code);
}

describe("npz", () => {
  it("accepts numpy.savez and savez_compressed output", async () => {
    for (const file of ["test/fixtures/numpy/arrays.npz", "test/fixtures/numpy/arrays_compressed.npz"]) {
      const r = await inspect(file);
      expect(rejectingCodes(r)).toEqual([]);
      expect(r.format).toBe("npz");
      expect(r.pickleFree).toBe(true);
    }
  });

  it("accepts stored and deflated members built here, one npy node per member", async () => {
    const r = await inspect(
      buildZip([
        { name: "a.npy", data: npyFloat32(4) },
        { name: "b.npy", data: npyFloat32(100), method: 8 },
      ]),
    );
    expect(r.verdict).toBe("accept");
    expect(r.format).toBe("npz");
    expect(r.root.children[0]?.children.map((c) => [c.path, c.kind])).toEqual([
      ["a.npy", "npy"],
      ["b.npy", "npy"],
    ]);
  });

  it("scans an object-array member's pickle", async () => {
    expect(rejectingCodes(await inspect("test/fixtures/numpy/object_malicious.npz"))).toContain("dangerous_global");
  });

  it("scans a pickle disguised as a .npy member", async () => {
    const r = await inspect(
      buildZip([
        { name: "a.npy", data: npyFloat32(1) },
        { name: "b.npy", data: osSystemPickle() },
      ]),
    );
    expect(r.format).toBe("npz");
    expect(rejectingCodes(r)).toContain("dangerous_global");
  });

  it("rejects an npy member whose size does not match its shape, and a bad CRC", async () => {
    const short = npyFloat32(4).subarray(0, 128 + 8);
    expect(rejectingCodes(await inspect(buildZip([{ name: "a.npy", data: short }])))).toContain("malformed_container");
    expect(rejectingCodes(await inspect(buildZip([{ name: "a.npy", data: npyFloat32(1), localCrc: 5, centralCrc: 5 }])))).toContain("malformed_container");
  });

  it("is a generic zip as soon as one member is not .npy", async () => {
    const r = await inspect(
      buildZip([
        { name: "a.npy", data: npyFloat32(1) },
        { name: "notes.txt", data: "hi" },
      ]),
    );
    expect(r.format).toBe("zip");
    expect(r.verdict).toBe("accept");
  });
});
