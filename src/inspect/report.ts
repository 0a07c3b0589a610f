import type { InspectionErrorCode } from "../errors";
import { MAX_REPORT_FINDINGS } from "../limits";

/**
 * The inspection report: one tree per artifact, shared by the pickle analyzer, the container
 * parsers, `modelgate scan --json`, the upload response, its 422 error details and the stored
 * metadata. Keep it plain JSON.
 */

/**
 * How bad a finding is. `innocuous` findings are information (a data member, an extension
 * reported); every other severity rejects the artifact:
 * - `suspicious`: not proven safe (an import no policy names);
 * - `dangerous`: known to run code (hard-floor import, TorchScript, EXT opcodes);
 * - `malformed`: the bytes could not be read the one way every loader reads them.
 */
export type Severity = "innocuous" | "suspicious" | "dangerous" | "malformed";

/**
 * Finding codes that only ever appear in a report, never as a GatewayError an inspector throws:
 * - `unsafe_template` (dangerous): a chat template (GGUF metadata, tokenizer_config.json,
 *   chat_template.jinja / .json) using a construct outside the chat-template allowlist
 *   (src/formats/models/chatTemplate.ts).
 * - `custom_operator` (suspicious; allowCustomOperators) and `path_traversal` (dangerous): the
 *   ONNX inspector's (src/formats/models/onnx.ts).
 * - `unknown_class` (suspicious; keras.allowClasses), `dangerous_class` (dangerous) and
 *   `unsafe_option` (dangerous: a config asking for safe_mode off): the Keras v3 inspector's
 *   (src/formats/models/keras.ts).
 */
export const REPORT_ONLY_FINDING_CODES = ["unsafe_template", "custom_operator", "path_traversal", "unknown_class", "dangerous_class", "unsafe_option"] as const;

export type FindingCode = InspectionErrorCode | (typeof REPORT_ONLY_FINDING_CODES)[number] | "data_member" | "info";

export interface Finding {
  code: FindingCode;
  severity: Severity;
  message: string;
  /** Where: e.g. "archive/data.pkl#pickle[0]"; the node path of the report tree. */
  location?: string;
  /** Byte offset inside the stream or member the location names. */
  offset?: number;
  /** For import findings: the resolved "module.name". */
  global?: string;
  /** Structured facts of the finding (remote_code: file, key, module, class, repository). */
  details?: Record<string, unknown>;
}

/** Safety level of an import the pickle would perform. */
export type ImportSafety = "innocuous" | "unknown" | "dangerous";

export interface ImportRecord {
  module: string;
  name: string;
  safety: ImportSafety;
  /** Opcode that performed it: GLOBAL, STACK_GLOBAL, INST, EXT1... */
  opcode: string;
  location?: string;
  offset: number;
}

export interface InspectionNode {
  /** What this node is: "file", "zip-entry", "tar-entry", "pickle", "npy", "tensor-data"... */
  kind: string;
  /** Path of this node inside the artifact, e.g. "model/data.pkl". "" for the artifact itself. */
  path: string;
  /** Detected format of this node's content, when it has one. */
  format?: string;
  findings: Finding[];
  imports?: ImportRecord[];
  details?: Record<string, unknown>;
  children: InspectionNode[];
}

export type Verdict = "accept" | "reject";

export interface InspectionReport {
  verdict: Verdict;
  /** Top-level detected format: "pickle", "pytorch-zip", "joblib", "npy", "safetensors"... */
  format: string;
  /** The file name's extension as given (reported, never trusted). */
  extension?: string;
  root: InspectionNode;
  /** Every finding of the tree, flattened, for callers that need no tree. */
  findings: Finding[];
  /** Every import of every pickle stream in the tree, flattened. */
  imports: ImportRecord[];
  /** True when the artifact holds no pickle stream at all (e.g. safetensors, plain npy). */
  pickleFree: boolean;
  /** Findings left out of `findings` (MAX_REPORT_FINDINGS): how many, by code. The tree still holds them. */
  omittedFindings?: { count: number; byCode: Record<string, number> };
}

export function rejects(finding: Finding): boolean {
  return finding.severity !== "innocuous";
}

/** Flatten findings and imports of a tree and decide the verdict: any rejecting finding rejects. */
export function summarize(root: InspectionNode, format: string, extension?: string): InspectionReport {
  const findings: Finding[] = [];
  const imports: ImportRecord[] = [];
  let sawPickle = false;
  const walk = (node: InspectionNode): void => {
    if (node.kind === "pickle") sawPickle = true;
    findings.push(...node.findings);
    if (node.imports) imports.push(...node.imports);
    for (const child of node.children) walk(child);
  };
  walk(root);
  // The verdict is decided on every finding, before the list is cut to size.
  const verdict: Verdict = findings.some(rejects) ? "reject" : "accept";
  const capped = capFindings(findings, MAX_REPORT_FINDINGS);
  const report: InspectionReport = {
    verdict,
    format,
    root,
    findings: capped.findings,
    imports,
    pickleFree: !sawPickle,
  };
  if (capped.omitted !== undefined) report.omittedFindings = capped.omitted;
  if (extension !== undefined) report.extension = extension;
  return report;
}

/**
 * Cut a flat finding list to `max` entries, in their original order: first the first occurrence
 * of every rejecting code and severity (so the verdict and rejectionCode read the same from the
 * cut list), then further rejecting findings, then innocuous ones; the rest is counted by code.
 */
export function capFindings(findings: readonly Finding[], max: number): { findings: Finding[]; omitted?: { count: number; byCode: Record<string, number> } } {
  if (findings.length <= max) return { findings: [...findings] };
  const keep = new Set<number>();
  const seen = new Set<string>();
  findings.forEach((f, i) => {
    const key = `${f.code}/${f.severity}`;
    if (rejects(f) && !seen.has(key)) {
      seen.add(key);
      keep.add(i);
    }
  });
  for (const wanted of [true, false]) {
    for (let i = 0; i < findings.length && keep.size < max; i++) {
      const f = findings[i];
      if (f !== undefined && rejects(f) === wanted) keep.add(i);
    }
  }
  const kept: Finding[] = [];
  const byCode: Record<string, number> = {};
  let count = 0;
  findings.forEach((f, i) => {
    if (keep.has(i)) {
      kept.push(f);
    } else {
      count += 1;
      byCode[f.code] = (byCode[f.code] ?? 0) + 1;
    }
  });
  return { findings: kept, omitted: { count, byCode } };
}

/**
 * Which API error a rejected report maps to: `unsafe_artifact` when any finding is a policy
 * problem (suspicious or dangerous), else `malformed_artifact` for purely structural ones.
 */
export function rejectionCode(report: InspectionReport): "unsafe_artifact" | "malformed_artifact" | undefined {
  if (report.verdict === "accept") return undefined;
  const policy = report.findings.some((f) => f.severity === "suspicious" || f.severity === "dangerous");
  return policy ? "unsafe_artifact" : "malformed_artifact";
}
