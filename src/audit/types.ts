import type { InspectionReport } from "../inspect/report";

/**
 * The audit port: every decision the gateway makes is appended here before the response is
 * sent. The file-backed, hash-chained implementation lives beside this file; tests may use
 * MemoryAuditSink. An append that fails must make the caller refuse (503), never accept silently.
 */
export type AuditEventType =
  | "upload.accepted"
  | "upload.rejected"
  | "fetch.refused"
  | "artifact.reinspected"
  | "allowlist.reloaded"
  | "allowlist.rejected"
  | "tokens.reloaded"
  | "tokens.rejected"
  | "admin.action";

export interface AuditEvent {
  type: AuditEventType;
  requestId?: string;
  /** Id of the API token used (never the token itself). */
  tokenId?: string;
  /** Client address as express sees it. */
  client?: string;
  digest?: string;
  name?: string;
  size?: number;
  source?: string;
  keyIds?: string[];
  /** Rejection codes, first the one returned to the client. */
  codes?: string[];
  /** Inspection summary: verdict, format, counts; never the artifact bytes. */
  inspection?: { verdict: string; format: string; findings: number; imports: number };
  details?: Record<string, unknown>;
}

/** What the audit log keeps of an inspection report: verdict, format and counts, never the findings themselves. */
export function inspectionSummary(report: InspectionReport): NonNullable<AuditEvent["inspection"]> {
  return {
    verdict: report.verdict,
    format: report.format,
    findings: report.findings.length + (report.omittedFindings?.count ?? 0),
    imports: report.imports.length,
  };
}

export interface AuditSink {
  /** Append and make durable (fsync) before resolving. Rejects when the entry could not be written. */
  append(event: AuditEvent): Promise<void>;
  /** Resolves when the log can be appended to (used by /readyz). */
  check(): Promise<void>;
}

/** In-memory sink for tests and tools; keeps events in order. */
export class MemoryAuditSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  append(event: AuditEvent): Promise<void> {
    this.events.push(event);
    return Promise.resolve();
  }
  check(): Promise<void> {
    return Promise.resolve();
  }
}
