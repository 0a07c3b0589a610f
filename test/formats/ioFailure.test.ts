import fs, { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { GatewayError } from "../../src/errors";
import { inspectPath } from "../../src/formats/inspectFile";
import { environmentalFailure } from "../../src/formats/ioFailure";
import { ContentPolicySchema } from "../../src/inspect/policy";
import { buildZip } from "./zipBuilder";

/**
 * An environmental failure while an inspector writes a temp file (disk full, EIO) is not a
 * finding about the artifact: inspectFile rejects with insufficient_storage / io_error instead of
 * reporting malformed_container (which the upload answered 422 malformed_artifact).
 */

let dir: string;
let tempRoot: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "inspect-iofail-"));
  tempRoot = mkdtempSync(join(tmpdir(), "inspect-iofail-temp-"));
});
afterEach(() => {
  jest.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
  rmSync(tempRoot, { recursive: true, force: true });
});

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: simulated failure, write`), { code, errno: -28, syscall: "write" });
}

/** Write the artifact, then make every later fs.writeSync (the inspectors' temp files) fail with `failWith`. */
async function inspect(bytes: Uint8Array, name: string, failWith?: string) {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  if (failWith !== undefined) {
    jest.spyOn(fs, "writeSync").mockImplementation(() => {
      throw errno(failWith);
    });
  }
  return inspectPath(path, { policy: ContentPolicySchema.parse({}), fileName: name, tempRoot });
}

const text = Buffer.from("a: 1\nb: 2\n".repeat(1000));

describe("environmental failures during inspection", () => {
  it("baseline: the same inputs inspect normally when writes succeed", async () => {
    // Compressed text as the artifact itself is not a model (unknown_format, as uncompressed); it
    // is still decompressed to a temp file first, which is what the failure cases below need.
    const compressedText = await inspect(gzipSync(text), "data.gz");
    expect(compressedText.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code)).toEqual(["unknown_format"]);
    const reports = [
      await inspect(
        buildZip([
          { name: "notes.txt", data: text },
          { name: "inner.gz", data: gzipSync(text), method: 0 },
        ]),
        "bundle.zip",
      ),
      await inspect(buildZip([{ name: "big.txt", data: Buffer.from("line of text\n".repeat(400_000)), method: 8 }]), "big.zip"),
    ];
    for (const report of reports) expect(report.findings.filter((f) => f.severity !== "innocuous")).toEqual([]);
  });

  it("ENOSPC while decompressing the artifact rejects with insufficient_storage, not a finding", async () => {
    const err: unknown = await inspect(gzipSync(text), "data.gz", "ENOSPC").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code: "insufficient_storage" });
    expect(readdirSync(tempRoot)).toEqual([]);
  });

  it("EDQUOT while decompressing a zip member rejects with insufficient_storage", async () => {
    const zip = buildZip([
      { name: "notes.txt", data: text },
      { name: "inner.gz", data: gzipSync(text), method: 0 },
    ]);
    await expect(inspect(zip, "bundle.zip", "EDQUOT")).toFailWithCode("insufficient_storage");
    expect(readdirSync(tempRoot)).toEqual([]);
  });

  it("ENOSPC while inflating a large deflated zip member to its temp file rejects with insufficient_storage", async () => {
    const big = Buffer.from("line of text\n".repeat(400_000)); // > ZIP_INFLATE_IN_MEMORY_BYTES: goes to a temp file
    await expect(inspect(buildZip([{ name: "big.txt", data: big, method: 8 }]), "big.zip", "ENOSPC")).toFailWithCode("insufficient_storage");
    expect(readdirSync(tempRoot)).toEqual([]);
  });

  it("EIO while writing a temp file rejects with io_error", async () => {
    await expect(inspect(gzipSync(text), "data.gz", "EIO")).toFailWithCode("io_error");
  });

  it("classifies errors: errno failures of the machine, never artifact errors", () => {
    expect(environmentalFailure(errno("ENOSPC"))?.code).toBe("insufficient_storage");
    expect(environmentalFailure(errno("EMFILE"))?.code).toBe("io_error");
    expect(environmentalFailure(new GatewayError("malformed_container", "bad"))).toBeUndefined();
    expect(environmentalFailure(new Error("Z_DATA_ERROR"))).toBeUndefined();
    expect(environmentalFailure(Object.assign(new Error("zlib"), { code: "Z_DATA_ERROR" }))).toBeUndefined();
  });
});
