import { readFileSync } from "node:fs";
import request from "supertest";
import type { Inspector } from "../../src/inspect/inspector";
import { summarize, type Finding } from "../../src/inspect/report";
import { makePublisher, sha256Hex } from "../support/publisher";
import { listFiles, startGateway, uploadBytes, type Gateway } from "./gateway";
import { fixturePath } from "./manifest";

/**
 * Seams between the parts, each found by running them together.
 *
 * Inspection report -> store record: the report of an accepted artifact goes into its record, and
 * the store refuses to READ records over 64 MiB. A zip of 20,000 members with 2 KB names (82 MB)
 * has a 127 MB report: it was accepted (201) and then never served (500 integrity_error on every
 * fetch, metadata read and identical re-upload). The store now refuses to write such a record,
 * before the blob moves in, so the upload is refused and nothing is kept.
 */

const publisher = makePublisher();

/** One innocuous finding per member, as inspectFile reports a zip of many small text members. */
function hugeReportInspector(members: number, nameBytes: number): Inspector {
  const findings: Finding[] = Array.from({ length: members }, (_, i) => ({
    code: "data_member",
    severity: "innocuous",
    message: "text data member (3 bytes), reported as data",
    location: `${"x".repeat(nameBytes)}${String(i)}.txt`,
  }));
  return () => Promise.resolve(summarize({ kind: "file", path: "", format: "zip", findings, children: [] }, "zip"));
}

describe("inspection report -> store record", () => {
  let env: Gateway;
  afterEach(async () => {
    await env.close();
  });

  it("refuses an upload whose record would be too big to read back, and keeps nothing", async () => {
    env = await startGateway([{ id: "research", publisher }], hugeReportInspector(20_000, 4000));
    const bytes = readFileSync(fixturePath("other/data_only.zip"));
    const res = await uploadBytes(env.app, publisher, "research/many.zip", bytes, "many.zip");
    expect([res.status, (res.body as { error?: { code: string } }).error?.code]).toEqual([413, "too_large"]);
    expect(await listFiles(env.dataDir)).toEqual([]);
    // The decision was audited as accepted before promotion, then the failed promotion as rejected.
    expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([
      ["upload.accepted", undefined],
      ["upload.rejected", ["too_large"]],
    ]);
  });

  it("still stores and serves an artifact with a large but readable report", async () => {
    env = await startGateway([{ id: "research", publisher }], hugeReportInspector(20_000, 1000));
    const bytes = readFileSync(fixturePath("other/data_only.zip"));
    const res = await uploadBytes(env.app, publisher, "research/many.zip", bytes, "many.zip");
    expect(res.status).toBe(201);
    const meta = await request(env.app).get(`/v1/artifacts/sha256:${sha256Hex(bytes)}/metadata`);
    expect(meta.status).toBe(200);
  });
});

/**
 * allowlist.json -> pickle policy: the allowlist accepted any pattern string, the pickle policy
 * refuses unusable ones ("sklearn" names no module) when an upload is inspected. An operator's typo
 * then failed every pickle upload of that source as a malformed artifact (422, audited as the
 * publisher's fault). The allowlist now refuses such a pattern when it is loaded or reloaded.
 */
describe("allowlist pickle patterns -> pickle policy", () => {
  it.each([["sklearn"], ["*"], ["sklearn.__init__.*"], ["os.system()"]])("refuses the allowlist when allowGlobals holds %s", async (pattern) => {
    await expect(startGateway([{ id: "research", publisher, pickle: { allowGlobals: [pattern] } }])).toFailWithCode("invalid_allowlist");
  });

  it("accepts module patterns and exact names, which then apply to uploads", async () => {
    const env = await startGateway([{ id: "research", publisher, pickle: { allowGlobals: ["sklearn.*", "collections.OrderedDict"] } }]);
    try {
      const bytes = readFileSync(fixturePath("joblib/sklearn_pipeline.joblib"));
      const res = await uploadBytes(env.app, publisher, "research/pipeline.joblib", bytes, "pipeline.joblib");
      expect(res.status).toBe(201);
    } finally {
      await env.close();
    }
  });
});
