/**
 * The metrics port the HTTP layer reports to. The prom-client implementation lives beside this
 * file; NOOP_METRICS keeps tests and tools free of a registry.
 */
export type UploadVerdict = "accepted" | "rejected";

export interface GatewayMetrics {
  /** One finished upload: its verdict, the code ("ok" when accepted) and total seconds. */
  uploadFinished(verdict: UploadVerdict, code: string, seconds: number): void;
  inspectionSeconds(seconds: number): void;
  bytesIn(bytes: number): void;
  bytesOut(bytes: number): void;
  /** One fetch answered, by HTTP status. */
  fetchAnswered(status: number): void;
  trustReloaded(ok: boolean): void;
  auditWriteFailed(): void;
  /** +1 when an upload starts, -1 when it ends (whatever the outcome). */
  uploadsInFlight(delta: 1 | -1): void;
}

export const NOOP_METRICS: GatewayMetrics = Object.freeze({
  uploadFinished: () => undefined,
  inspectionSeconds: () => undefined,
  bytesIn: () => undefined,
  bytesOut: () => undefined,
  fetchAnswered: () => undefined,
  trustReloaded: () => undefined,
  auditWriteFailed: () => undefined,
  uploadsInFlight: () => undefined,
});
