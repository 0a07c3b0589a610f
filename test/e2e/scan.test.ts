import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ensureBuilt, runBinary } from "../support/binary";
import { makePublisher, writeAllowlist } from "../support/publisher";
import { FIXTURES, MANIFEST, policyKeyOf, type ManifestEntry } from "./manifest";

/**
 * `modelgate scan --json` (the real binary, the all-formats inspector) over every fixture of
 * test/fixtures/manifest.json gives the manifest's verdict and finding code. One process per
 * (policy, verdict) for accepted files and per (policy, group) for rejected ones, run in parallel.
 * A case's content policy reaches scan the way an operator gives it: `--policy allowlist.json
 * --source <id>` naming a source that carries that policy.
 */

interface Batch {
  title: string;
  policyKey: string;
  expect: "accept" | "reject";
  entries: ManifestEntry[];
}

interface ScanDoc {
  files: { path: string; verdict: string; format: string; findings: { code: string }[] }[];
  errors?: unknown[];
}

function batches(): Batch[] {
  const byKey = new Map<string, Batch>();
  for (const e of MANIFEST) {
    const policyKey = policyKeyOf(e);
    const key = e.expect === "accept" ? `accept ${policyKey}` : `reject ${policyKey} ${e.group}`;
    let batch = byKey.get(key);
    if (!batch) {
      batch = {
        title: `${e.expect === "accept" ? "accepted" : `rejected ${e.group}`} files${policyKey === "" ? "" : ` with policy ${policyKey}`}`,
        policyKey,
        expect: e.expect,
        entries: [],
      };
      byKey.set(key, batch);
    }
    batch.entries.push(e);
  }
  return [...byKey.values()];
}

const BATCHES = batches();
const POLICIES = [...new Set(BATCHES.map((b) => b.policyKey).filter((k) => k !== ""))];
const sourceFor = (policyKey: string): string => `policy${String(POLICIES.indexOf(policyKey))}`;

describe("modelgate scan over every manifest fixture", () => {
  let dir: string;
  let allowlist: string;

  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(path.join(tmpdir(), "mg-e2e-scan-"));
    allowlist = path.join(dir, "allowlist.json");
    const sources = POLICIES.map((key) => ({
      id: sourceFor(key),
      description: `manifest policy ${key}`,
      keys: [{ pub: makePublisher() }],
      pickle: JSON.parse(key) as unknown,
    }));
    writeAllowlist(allowlist, sources);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives every fixture its manifest verdict and code", async () => {
    const runs = await Promise.all(
      BATCHES.map(async (batch) => {
        const policyArgs = batch.policyKey === "" ? [] : ["--policy", allowlist, "--source", sourceFor(batch.policyKey)];
        const files = [...new Set(batch.entries.map((e) => e.file))];
        return { batch, files, run: await runBinary(FIXTURES, ["scan", "--json", ...policyArgs, ...files]) };
      }),
    );
    for (const { batch, files, run } of runs) {
      expect([batch.title, run.status, run.stderr]).toEqual([batch.title, batch.expect === "accept" ? 0 : 1, ""]);
      const doc = JSON.parse(run.stdout) as ScanDoc;
      expect([batch.title, doc.errors]).toEqual([batch.title, undefined]);
      expect(doc.files.map((f) => f.path)).toEqual(files);
      for (const entry of batch.entries) {
        const result = doc.files.find((f) => f.path === entry.file);
        const codes = result?.findings.map((f) => f.code) ?? [];
        const got = {
          file: entry.file,
          policy: batch.policyKey,
          verdict: result?.verdict,
          hasCode: [entry.code, ...(entry.alsoCodes ?? [])].every((c) => c === null || codes.includes(c)),
        };
        expect(got).toEqual({ file: entry.file, policy: batch.policyKey, verdict: entry.expect, hasCode: true });
      }
    }
    expect(runs.reduce((n, r) => n + r.batch.entries.length, 0)).toBe(MANIFEST.length);
  }, 60_000);
});
