import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspectFile } from "../../src/formats/inspectFile";
import { ContentPolicySchema } from "../../src/inspect/policy";
import type { InspectionReport } from "../../src/inspect/report";

/** Inspect bytes as an upload named `fileName`, under a content policy given as allowlist JSON. */
export type InspectBytes = (bytes: Uint8Array, fileName: string, policy?: Record<string, unknown>) => Promise<InspectionReport>;

/**
 * inspectFile over bytes built in a test: each call writes them to a new file of a temp folder
 * that this suite creates before its tests and removes after them (inspectFile reads a path).
 */
export function useInspectBytes(prefix: string): InspectBytes {
  let dir = "";
  let counter = 0;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return async (bytes, fileName, policy = {}) => {
    const path = join(dir, `f${String(counter++)}`);
    writeFileSync(path, bytes);
    return inspectFile(path, { policy: ContentPolicySchema.parse(policy), fileName });
  };
}
