import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import type { Compression } from "../../src/formats/codecs/decompress";
import { inspectPath } from "../../src/formats/inspectFile";
import { ContentPolicySchema, type ContentPolicy } from "../../src/inspect/policy";
import { rejectionCode, type InspectionReport } from "../../src/inspect/report";
import { op, osSystemPickle } from "./torchBuilder";
import { buildZip } from "./zipBuilder";

/**
 * A compression layer is transparent to "is the artifact a model at all": text, JSON or YAML (or
 * unknown binary) as the artifact is unknown_format, compressed or not. Compressed data members
 * inside an archive stay data members.
 */

const YAML = "model:\n  name: demo\n  layers: 3\nlabels: [a, b]\n";

/** YAML above, compressed by CPython 3.11 (bz2.compress, lzma.compress, FORMAT_ALONE) and python-lz4 4.x lz4.frame.compress. */
const YAML_SAMPLES: Record<"bz2" | "xz" | "lzma" | "lz4", string> = {
  bz2: "QlpoOTFBWSZTWWRbgwkAABPbgAAQQAQIEAAKNgeYICAAMU0yMTExCKfqephTNGhtVe6FGDJAniaMytC76tVQO421oBLoe4bwu5IpwoSDItwYSA==",
  xz: "/Td6WFoAAATm1rRGAgAhARYAAAB0L+WjAQAubW9kZWw6CiAgbmFtZTogZGVtbwogIGxheWVyczogMwpsYWJlbHM6IFthLCBiXQoAANwXCP/sZPirAAFHL7BRbzQftvN9AQAAAAAEWVo=",
  lzma: "XQAAgAD//////////wA2m8iwVxhDG9pFdfQbqivjqQcmDMxXK+boAY7p6puVds1bk3Kt779NYG3Flm5//+jJgAA=",
  lz4: "BCJNGGhALwAAAAAAAAAwLwAAgG1vZGVsOgogIG5hbWU6IGRlbW8KICBsYXllcnM6IDMKbGFiZWxzOiBbYSwgYl0KAAAAAA==",
};

function compressedYaml(kind: Compression): Uint8Array {
  switch (kind) {
    case "zlib":
      return new Uint8Array(deflateSync(YAML));
    case "gzip":
      return new Uint8Array(gzipSync(YAML));
    default:
      return new Uint8Array(Buffer.from(YAML_SAMPLES[kind], "base64"));
  }
}

const KINDS: Compression[] = ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"];

const benignPickle = Uint8Array.from([...op.proto(2), ...op.emptyDict, ...op.mark, ...op.str("a"), ...op.int(1), ...op.setitems, ...op.stop]);

let dir: string;
let tempRoot: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "compressed-top-test-"));
  tempRoot = mkdtempSync(join(tmpdir(), "compressed-top-temproot-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(tempRoot, { recursive: true, force: true });
});

let counter = 0;
async function inspectBytes(bytes: Uint8Array, fileName?: string, policy: Partial<ContentPolicy> = {}): Promise<InspectionReport> {
  const path = join(dir, `f${String(counter++)}`);
  writeFileSync(path, bytes);
  return inspectPath(path, { policy: ContentPolicySchema.parse(policy), ...(fileName === undefined ? {} : { fileName }), tempRoot });
}

function rejectingCodes(r: InspectionReport): string[] {
  return r.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code);
}

describe("compressed artifact whose content is not a model", () => {
  it("rejects uncompressed YAML as unknown_format (the rule the compressed cases must match)", async () => {
    const r = await inspectBytes(new TextEncoder().encode(YAML), "config.yaml");
    expect(rejectingCodes(r)).toEqual(["unknown_format"]);
  });

  it.each(KINDS)("rejects %s-compressed YAML as the artifact with unknown_format", async (kind) => {
    const r = await inspectBytes(compressedYaml(kind), "config.yaml.gz");
    expect(r.verdict).toBe("reject");
    expect(rejectingCodes(r)).toEqual(["unknown_format"]);
    expect(rejectionCode(r)).toBe("malformed_artifact");
    expect(r.findings.map((f) => f.code)).not.toContain("data_member");
    // The report still shows the compression layer and what was found under it.
    const layer = r.root.children[0];
    expect(layer?.kind).toBe("compressed");
    expect(layer?.children[0]?.format).toBe("yaml");
  });

  it("rejects compressed JSON and plain text at the top as unknown_format", async () => {
    expect(rejectingCodes(await inspectBytes(new Uint8Array(gzipSync('{"a": 1, "b": [1, 2]}'))))).toEqual(["unknown_format"]);
    expect(rejectingCodes(await inspectBytes(new Uint8Array(gzipSync("just some notes\n"))))).toEqual(["unknown_format"]);
  });

  it("sees through stacked compression layers (gzip of xz of YAML)", async () => {
    const r = await inspectBytes(new Uint8Array(gzipSync(compressedYaml("xz"))));
    expect(rejectingCodes(r)).toEqual(["unknown_format"]);
  });

  it("rejects compressed unknown binary at the top as unknown_format, even when the policy allows opaque members", async () => {
    const blob = new Uint8Array(gzipSync(Buffer.concat([Buffer.from([0xde, 0xad, 0xbe, 0xef]), randomBytes(64)])));
    expect(rejectingCodes(await inspectBytes(blob))).toEqual(["unknown_format"]);
    expect(rejectingCodes(await inspectBytes(blob, undefined, { allowOpaqueMembers: true }))).toEqual(["unknown_format"]);
  });
});

describe("compressed content that is a model, and compressed data members", () => {
  it.each(["zlib", "gzip"] as const)("still accepts a %s-compressed pickle as joblib", async (kind) => {
    const bytes = kind === "zlib" ? deflateSync(benignPickle) : gzipSync(benignPickle);
    const r = await inspectBytes(new Uint8Array(bytes), "model.joblib");
    expect(r.verdict).toBe("accept");
    expect(r.format).toBe("joblib");
  });

  it("still rejects a gzip-compressed malicious pickle for its import", async () => {
    expect(rejectingCodes(await inspectBytes(new Uint8Array(gzipSync(osSystemPickle()))))).toContain("dangerous_global");
  });

  it("accepts a zip holding config.yaml.gz next to a model: the compressed member is data", async () => {
    const r = await inspectBytes(
      buildZip([
        { name: "config.yaml.gz", data: new Uint8Array(gzipSync(YAML)) },
        { name: "model.pkl", data: benignPickle },
      ]),
      "bundle.zip",
    );
    expect(r.verdict).toBe("accept");
    expect(r.findings.map((f) => f.code)).toContain("data_member");
    expect(rejectingCodes(r)).toEqual([]);
  });

  it("accepts a zip holding only config.yaml.gz, as it accepts one holding config.yaml", async () => {
    const plain = await inspectBytes(buildZip([{ name: "config.yaml", data: YAML }]));
    const compressed = await inspectBytes(buildZip([{ name: "config.yaml.gz", data: new Uint8Array(gzipSync(YAML)) }]));
    expect(plain.verdict).toBe("accept");
    expect(compressed.verdict).toBe("accept");
    expect(compressed.findings.map((f) => f.code)).toEqual(["data_member"]);
  });
});
