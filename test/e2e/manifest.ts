import { readFileSync } from "node:fs";
import * as path from "node:path";
import { z } from "zod";

/**
 * The fixture manifest (test/fixtures/manifest.json, made by test/fixtures/generate.py), read
 * loosely: test/formats/fixtures.test.ts validates it strictly; the end-to-end suites only need
 * the file, the verdict, the finding code and the content policy of each case.
 */
export const FIXTURES = path.join(__dirname, "..", "fixtures");

const EntrySchema = z.object({
  file: z.string(),
  group: z.string(),
  format: z.string(),
  expect: z.enum(["accept", "reject"]),
  code: z.string().nullable(),
  policy: z
    .object({
      allowGlobals: z.array(z.string()).optional(),
      presets: z.array(z.enum(["sklearn"])).optional(),
      allowTorchScript: z.boolean().optional(),
      allowEmbeddedCode: z.boolean().optional(),
      allowOpaqueMembers: z.boolean().optional(),
      allowDirectRequirements: z.boolean().optional(),
      allowRemoteCode: z.boolean().optional(),
      allowCustomOperators: z.boolean().optional(),
    })
    .optional(),
  alsoCodes: z.array(z.string()).optional(),
});

export type ManifestEntry = z.infer<typeof EntrySchema>;

export const MANIFEST: readonly ManifestEntry[] = z
  .array(EntrySchema)
  .min(1)
  .parse(JSON.parse(readFileSync(path.join(FIXTURES, "manifest.json"), "utf8")));

/** The manifest's case for this file under this policy key ("" = default policy). */
export function manifestCase(file: string, policyKey = ""): ManifestEntry {
  const found = MANIFEST.find((e) => e.file === file && policyKeyOf(e) === policyKey);
  if (!found) throw new Error(`no manifest case for ${file} with policy '${policyKey}'`);
  return found;
}

/** A stable key for an entry's policy: "" for the default, else its JSON. */
export function policyKeyOf(e: ManifestEntry): string {
  return e.policy === undefined ? "" : JSON.stringify(e.policy);
}

export function fixturePath(file: string): string {
  return path.join(FIXTURES, file);
}
