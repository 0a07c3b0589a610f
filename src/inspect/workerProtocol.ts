import type { ContentPolicy } from "./policy";
import type { InspectionReport } from "./report";

/**
 * The messages between the inspection worker pool (src/inspect/workerPool.ts) and a worker
 * (src/inspect/inspectWorker.ts). Structured clone carries them: plain data only (a report is
 * plain JSON, a policy is what zod parsed), never a class instance, so an error travels as its
 * code, message and details and is rebuilt as a GatewayError on the pool's side.
 */

/** Pool -> worker: inspect one file. A worker runs one task at a time. */
export interface InspectTaskMessage {
  id: number;
  path: string;
  policy: ContentPolicy;
  fileName?: string;
  /** Parent of the inspection's temp directory (the store's tmp/ under `serve`). */
  tempRoot?: string;
}

/** A thrown error as it crosses the thread boundary; `code` only for a GatewayError. */
export interface SerializedError {
  code?: string;
  message: string;
  details?: Record<string, unknown>;
}

/** Worker -> pool. `ready` once its module graph is loaded; then one answer per task. */
export type WorkerMessage =
  { type: "ready" } | { type: "report"; id: number; report: InspectionReport } | { type: "error"; id: number; error: SerializedError };
