import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join, relative, sep } from "node:path";
import { z } from "zod";
import { inspectFile } from "../../src/formats/inspectFile";
import { ContentPolicySchema, DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { REPORT_ONLY_FINDING_CODES, rejects, type Finding } from "../../src/inspect/report";
import { INSPECTION_ERROR_CODES } from "../../src/errors";

/**
 * Data-driven check of every real-library fixture listed in test/fixtures/manifest.json (made by
 * test/fixtures/generate.py): the committed bytes are the generated ones, and inspectFile gives
 * the expected verdict and, for rejections, a finding with the expected code.
 */

const FIXTURES = join(__dirname, "..", "fixtures");

/** Inspection error codes, and the finding-only codes (src/inspect/report.ts REPORT_ONLY_FINDING_CODES). */
const CODES = [...INSPECTION_ERROR_CODES, ...REPORT_ONLY_FINDING_CODES] as const;

const FORMATS = [
  "pickle",
  "pytorch-zip",
  "pytorch-legacy",
  "pytorch-tar",
  "torchscript",
  "joblib",
  "npy",
  "npz",
  "safetensors",
  "mlflow",
  "zip",
  "tar",
  "gguf",
  "hdf5",
  "onnx",
  "keras",
  "tflite",
  "tensorflow-savedmodel",
  "7z",
  "rar",
  "unknown",
] as const;

/** ContentPolicy fields as written in the manifest (no defaults filled in, so titles stay short). */
const PolicySchema = z.strictObject({
  allowGlobals: z.array(z.string()).optional(),
  presets: z.array(z.enum(["sklearn"])).optional(),
  allowTorchScript: z.boolean().optional(),
  allowEmbeddedCode: z.boolean().optional(),
  allowOpaqueMembers: z.boolean().optional(),
  allowDirectRequirements: z.boolean().optional(),
  allowRemoteCode: z.boolean().optional(),
  allowCustomOperators: z.boolean().optional(),
});

const EntrySchema = z
  .strictObject({
    file: z.string().regex(/^[a-z0-9_]+\/[A-Za-z0-9_.-]+$/),
    group: z.enum(["pickle", "torch", "joblib", "numpy", "safetensors", "mlflow", "other"]),
    format: z.enum(FORMATS),
    expect: z.enum(["accept", "reject"]),
    code: z.enum(CODES).nullable(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    size: z.number().int().nonnegative(),
    description: z.string().min(1),
    policy: PolicySchema.optional(),
    alsoCodes: z.array(z.enum(CODES)).optional(),
  })
  .refine((e) => (e.expect === "accept") === (e.code === null), { message: "code is null exactly for accept" })
  .refine((e) => e.file.startsWith(`${e.group}/`), { message: "file lives in its group directory" });

type Entry = z.infer<typeof EntrySchema>;

const manifest: Entry[] = z
  .array(EntrySchema)
  .min(1)
  .parse(JSON.parse(readFileSync(join(FIXTURES, "manifest.json"), "utf8")));

function sha256Of(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(relative(FIXTURES, p).split(sep).join("/"));
  }
  return out;
}

function show(f: Finding): string {
  return `${f.code} (${f.severity}) at ${f.location ?? "?"}: ${f.message}`;
}

function title(e: Entry): string {
  const policy = e.policy ? ` policy=${JSON.stringify(e.policy)}` : "";
  return `${e.file}${policy} -> ${e.expect}${e.code === null ? "" : ` (${e.code})`}`;
}

describe("fixture manifest", () => {
  it("records the sha256 and size of every committed fixture", () => {
    for (const entry of manifest) {
      const path = join(FIXTURES, entry.file);
      expect({ file: entry.file, size: statSync(path).size, sha256: sha256Of(path) }).toEqual({
        file: entry.file,
        size: entry.size,
        sha256: entry.sha256,
      });
    }
  });

  it("lists every file under the group directories, and lists no (file, policy) case twice", () => {
    const listed = new Set(manifest.map((e) => e.file));
    const groups = new Set(manifest.map((e) => e.group));
    const onDisk = [...groups].flatMap((g) => listFiles(join(FIXTURES, g)));
    expect(onDisk.filter((f) => !listed.has(f))).toEqual([]);
    const cases = manifest.map((e) => `${e.file} ${JSON.stringify(e.policy ?? {})}`);
    expect(new Set(cases).size).toBe(cases.length);
  });

  it("covers every group with both accepted and rejected fixtures", () => {
    for (const group of ["pickle", "torch", "joblib", "numpy", "safetensors", "mlflow", "other"] as const) {
      const inGroup = manifest.filter((e) => e.group === group);
      expect({ group, reject: inGroup.some((e) => e.expect === "reject") }).toEqual({ group, reject: true });
      expect({ group, accept: inGroup.some((e) => e.expect === "accept") }).toEqual({ group, accept: true });
    }
  });
});

describe("inspectFile on real-library fixtures", () => {
  it.each(manifest.map((e) => [title(e), e] as const))("%s", async (_title, entry) => {
    const policy = ContentPolicySchema.parse({ ...DEFAULT_CONTENT_POLICY, ...entry.policy });
    const report = await inspectFile(join(FIXTURES, entry.file), { policy, fileName: basename(entry.file) });
    if (entry.expect === "accept") {
      // Accepted means no rejecting finding at all; list them (code: message) when there are some.
      expect({ verdict: report.verdict, format: report.format, rejecting: report.findings.filter(rejects).map(show) }).toEqual({
        verdict: "accept",
        format: entry.format,
        rejecting: [],
      });
    } else {
      expect(report.verdict).toBe("reject");
      for (const code of [entry.code, ...(entry.alsoCodes ?? [])]) {
        // On failure, show every finding with its message, not just the codes.
        const found = report.findings.some((f) => f.code === code);
        expect(found ? code : { missing: code, findings: report.findings.map(show) }).toBe(code);
      }
    }
  });
});
