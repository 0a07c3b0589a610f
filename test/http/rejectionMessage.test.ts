import request from "supertest";
import type { Inspector } from "../../src/inspect/inspector";
import { summarize, type Finding, type InspectionReport } from "../../src/inspect/report";
import { findingCounts } from "../../src/gateway/publish";
import { MAX_REPORT_FINDINGS } from "../../src/limits";
import { artifactBytes, listFiles, makeEnv, makePublisher, signFor, type TestEnv } from "./helpers";

/**
 * The 422 message of a rejected upload counts every finding, also those the report left out of
 * its capped `findings` list (report.omittedFindings), and says how many are listed.
 */

const serving = makePublisher();

function finding(code: Finding["code"], severity: Finding["severity"], i: number): Finding {
  return { code, severity, message: "test finding", location: `m${String(i)}` };
}

/** A report as summarize() caps it: `dangerous` rejecting findings, then `innocuous` data members. */
function reportOf(dangerous: number, innocuous: number): InspectionReport {
  const findings = [
    ...Array.from({ length: dangerous }, (_, i) => finding("dangerous_global", "dangerous", i)),
    ...Array.from({ length: innocuous }, (_, i) => finding("data_member", "innocuous", i)),
  ];
  return summarize({ kind: "file", path: "", format: "zip", findings, children: [] }, "zip");
}

interface ErrorResponse {
  error: { code: string; message: string; details?: { inspection?: InspectionReport } };
}

describe("findingCounts", () => {
  it("counts listed findings when nothing is omitted", () => {
    const r = reportOf(2, 3);
    expect(r.omittedFindings).toBeUndefined();
    expect(findingCounts(r)).toBe("5 finding(s), 2 rejecting");
  });

  it("adds omitted findings to the total and says how many are listed; exact rejecting count when an innocuous one is listed", () => {
    const r = reportOf(1, MAX_REPORT_FINDINGS + 233);
    expect(r.findings).toHaveLength(MAX_REPORT_FINDINGS);
    expect(r.omittedFindings?.count).toBe(234);
    const total = String(MAX_REPORT_FINDINGS + 234);
    expect(findingCounts(r)).toBe(`${total} finding(s) (${String(MAX_REPORT_FINDINGS)} listed, 234 counted by code in omittedFindings), 1 rejecting`);
  });

  it("gives the rejecting count as a lower bound when every listed finding rejects", () => {
    const r = reportOf(MAX_REPORT_FINDINGS + 234, 0);
    expect(r.omittedFindings?.count).toBe(234);
    expect(findingCounts(r)).toContain(`at least ${String(MAX_REPORT_FINDINGS)} rejecting`);
    expect(findingCounts(r)).toContain(`${String(MAX_REPORT_FINDINGS + 234)} finding(s)`);
  });
});

describe("POST /v1/artifacts rejected by an inspector whose report omits findings", () => {
  let env: TestEnv | undefined;
  afterEach(async () => {
    await env?.cleanup();
    env = undefined;
  });

  it("answers 422 with the total count (listed + omitted) in the message and audits the total", async () => {
    const report = reportOf(3, MAX_REPORT_FINDINGS + 231);
    const inspect: Inspector = () => Promise.resolve(report);
    env = await makeEnv({ sources: [{ id: "serving", keys: [{ pub: serving }] }], inspect });
    const bytes = artifactBytes("omitted-findings");
    const res = await request(env.app)
      .post("/v1/artifacts")
      .field("signature", signFor(serving, bytes, "x"))
      .attach("artifact", bytes, "m.zip");
    expect(res.status).toBe(422);
    const body = res.body as ErrorResponse;
    expect(body.error.code).toBe("unsafe_artifact");
    const total = MAX_REPORT_FINDINGS + 234;
    // The counts, not the wording around them: total, listed, rejecting.
    const counts = /(\d+) finding\(s\) \((\d+) listed, (\d+) counted[^)]*\), (\d+) rejecting/.exec(body.error.message);
    expect(counts?.slice(1).map(Number)).toEqual([total, MAX_REPORT_FINDINGS, 234, 3]);
    expect(body.error.details?.inspection?.omittedFindings).toEqual({ count: 234, byCode: { data_member: 234 } });
    expect(env.audit.events.map((e) => [e.type, e.codes, e.inspection?.findings])).toEqual([["upload.rejected", ["unsafe_artifact"], total]]);
    expect(await listFiles(env.dataDir)).toEqual([]);
  });
});
