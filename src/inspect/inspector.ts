import type { ContentPolicy } from "./policy";
import type { InspectionReport } from "./report";

/**
 * The seam between the gateway and content inspection: given a file on disk (the upload's temp
 * file, or a file named on the CLI) and the policy of the source that signed it, return a report.
 * The formats module provides the real implementation (src/formats/inspectFile.ts); `serve` runs
 * it on the inspection worker pool (src/inspect/workerPool.ts).
 *
 * `signal` cancels an inspection (the client hung up, the server is stopping): the pool drops a
 * queued task or terminates the worker running it, and the promise rejects. The in-process
 * inspectFile ignores it (it runs to the end, as before the pool).
 */
export interface InspectOptions {
  policy: ContentPolicy;
  /** The artifact's name as published, for reporting its extension (never for detection). */
  fileName?: string;
  signal?: AbortSignal;
}

export type Inspector = (path: string, options: InspectOptions) => Promise<InspectionReport>;
