import type { ImportSafety, Severity } from "../inspect/report";

/**
 * The findings of an inspection report as text lines, one shape for `modelgate scan` (a local
 * report) and `modelgate push`/`pull` (the report in a gateway's 422 `details.inspection`):
 * `  <severity> <code> <member path>@<offset>: <message>`, then the omitted-findings count and
 * the imports the policy did not allow.
 */

/** What the lines need of a finding (a local Finding, or one parsed from a server's answer). */
export interface FindingLike {
  code: string;
  severity: Severity;
  message: string;
  location?: string | undefined;
  offset?: number | undefined;
}

export interface ImportLike {
  module: string;
  name: string;
  safety: ImportSafety;
}

export interface FindingsOf {
  findings: readonly FindingLike[];
  imports: readonly ImportLike[];
  omittedFindings?: { count: number; byCode: Record<string, number> } | undefined;
}

/**
 * C0/C1 controls (and DEL) as \u escapes: member names and messages come from the artifact, and
 * for push from the server too; raw they could drive the terminal (escape injection, CWE-150).
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function where(f: FindingLike): string {
  const loc = f.location ?? "";
  if (f.offset === undefined) return loc;
  return `${loc}@${f.offset.toString()}`;
}

/** Indented lines; `rejectingOnly` leaves out innocuous findings (push shows why it was refused). */
export function findingLines(report: FindingsOf, options: { rejectingOnly: boolean }): string[] {
  const lines: string[] = [];
  for (const f of report.findings) {
    if (options.rejectingOnly && f.severity === "innocuous") continue;
    const at = where(f);
    lines.push(printable(`  ${f.severity} ${f.code}${at.length > 0 ? ` ${at}` : ""}: ${f.message}`));
  }
  if (report.omittedFindings !== undefined) {
    const byCode = Object.entries(report.omittedFindings.byCode).map(([code, n]) => `${code} ${n.toString()}`);
    lines.push(printable(`  ... ${report.omittedFindings.count.toString()} more finding(s) not listed (${byCode.join(", ")})`));
  }
  const refused = report.imports.filter((i) => i.safety !== "innocuous");
  if (refused.length > 0) {
    const names = [...new Set(refused.map((i) => `${i.module}.${i.name}`))];
    lines.push(printable(`  imports not allowed: ${names.join(", ")}`));
  }
  return lines;
}
