import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OmittedMembers } from "../../src/formats/members";
import { inspectPath } from "../../src/formats/inspectFile";
import { MAX_REPORT_FINDINGS, MAX_REPORT_MEMBER_NODES } from "../../src/limits";
import { ContentPolicySchema } from "../../src/inspect/policy";
import { capFindings, rejectionCode, summarize, type Finding, type InspectionNode, type InspectionReport } from "../../src/inspect/report";
import { osSystemPickle } from "./torchBuilder";
import { buildZip, type ZipEntrySpec } from "./zipBuilder";

/**
 * Reports are bounded: a zip of many innocuous data members lists the first
 * MAX_REPORT_MEMBER_NODES and counts the rest; members that reject or hold a pickle are always
 * listed; the flat findings list is capped without losing what makes the verdict reject.
 */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "report-size-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function inspectZip(entries: ZipEntrySpec[], name: string): Promise<InspectionReport> {
  const path = join(dir, name);
  writeFileSync(path, buildZip(entries));
  return inspectPath(path, { policy: ContentPolicySchema.parse({}), fileName: name, tempRoot: dir });
}

const textMembers = (n: number): ZipEntrySpec[] =>
  Array.from({ length: n }, (_, i) => ({ name: `texts/member-${String(i)}.txt`, data: `line ${String(i)}\n` }));

function zipNode(report: InspectionReport): InspectionNode {
  const zip = report.root.children[0];
  if (zip === undefined) throw new Error("no content node");
  return zip;
}

describe("report size", () => {
  it("a zip of 5000 text members: accepted, the report lists at most MAX_REPORT_MEMBER_NODES members and counts the rest", async () => {
    const report = await inspectZip(textMembers(5000), "many.zip");
    expect(report.verdict).toBe("accept");
    expect(JSON.stringify(report).length).toBeLessThan(200 * 1024);
    const zip = zipNode(report);
    expect(zip.children).toHaveLength(MAX_REPORT_MEMBER_NODES);
    expect(zip.details?.omittedMembers).toEqual({
      count: 5000 - MAX_REPORT_MEMBER_NODES,
      byKind: { data: 5000 - MAX_REPORT_MEMBER_NODES },
    } satisfies OmittedMembers);
  });

  it("at the limit nothing is omitted", async () => {
    const report = await inspectZip(textMembers(MAX_REPORT_MEMBER_NODES), "at-limit.zip");
    expect(zipNode(report).children).toHaveLength(MAX_REPORT_MEMBER_NODES);
    expect(zipNode(report).details?.omittedMembers).toBeUndefined();
  });

  it("5000 text members and one malicious pickle after them: rejected, the pickle's node and finding are kept", async () => {
    const report = await inspectZip([...textMembers(5000), { name: "zz/payload.bin", data: osSystemPickle() }], "poisoned.zip");
    expect(report.verdict).toBe("reject");
    expect(rejectionCode(report)).toBe("unsafe_artifact");
    expect(report.findings).toContainEqual(expect.objectContaining({ code: "dangerous_global", severity: "dangerous" }));
    expect(zipNode(report).children.map((c) => c.path)).toContain("zz/payload.bin");
    expect(report.pickleFree).toBe(false);
    expect(JSON.stringify(report).length).toBeLessThan(200 * 1024);
  });
});

describe("capFindings / summarize", () => {
  const innocuous = (i: number): Finding => ({ code: "data_member", severity: "innocuous", message: "data", location: `m${String(i)}` });

  it("keeps a list at the cap whole", () => {
    const findings = Array.from({ length: MAX_REPORT_FINDINGS }, (_, i) => innocuous(i));
    expect(capFindings(findings, MAX_REPORT_FINDINGS)).toEqual({ findings });
  });

  it("past the cap: verdict decided first, every rejecting code's first occurrence kept, the rest counted", () => {
    const findings: Finding[] = Array.from({ length: 3 * MAX_REPORT_FINDINGS }, (_, i) => innocuous(i));
    const malformed: Finding = { code: "malformed_container", severity: "malformed", message: "bad", location: "late/bad.bin" };
    const dangerous: Finding = { code: "dangerous_global", severity: "dangerous", message: "os.system", location: "last/p.pkl", global: "os.system" };
    findings.push(malformed, dangerous);
    const report = summarize({ kind: "file", path: "", format: "zip", findings, children: [] }, "zip");
    expect(report.verdict).toBe("reject");
    expect(rejectionCode(report)).toBe("unsafe_artifact");
    expect(report.findings).toHaveLength(MAX_REPORT_FINDINGS);
    expect(report.findings).toContainEqual(malformed);
    expect(report.findings).toContainEqual(dangerous);
    expect(report.omittedFindings).toEqual({ count: 2 * MAX_REPORT_FINDINGS + 2, byCode: { data_member: 2 * MAX_REPORT_FINDINGS + 2 } });
  });

  it("more rejecting findings than the cap: rejecting ones fill it, innocuous ones go first", () => {
    const bad = (i: number): Finding => ({ code: "unknown_global", severity: "suspicious", message: "x", location: `p${String(i)}` });
    const findings = [
      innocuous(0),
      ...Array.from({ length: 5 }, (_, i) => bad(i)),
      { code: "polyglot", severity: "dangerous", message: "y" } satisfies Finding,
    ];
    const capped = capFindings(findings, 3);
    expect(capped.findings.map((f) => f.code)).toEqual(["unknown_global", "unknown_global", "polyglot"]);
    expect(capped.omitted).toEqual({ count: 4, byCode: { data_member: 1, unknown_global: 3 } });
  });
});
