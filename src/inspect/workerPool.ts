import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { GatewayError, messageOf, type ErrorCode } from "../errors";
import { DEFAULT_INSPECT_WORKER_MEMORY_MB, INSPECTION_TIME_BUDGET_MS } from "../limits";
import type { InspectOptions, Inspector } from "./inspector";
import { summarize, type InspectionNode, type InspectionReport } from "./report";
import type { InspectTaskMessage, SerializedError, WorkerMessage } from "./workerProtocol";

/**
 * Content inspection on a pool of worker threads (node:worker_threads), behind the Inspector
 * seam: `pool.inspect` has the signature of the in-process inspectFile, so the routes and `scan`
 * do not change. Inspection is synchronous in long stretches (positional readSync, bzip2/lz4
 * decoding, up to 10 minutes of pickle analysis); on the server's one event loop a large upload
 * stalled every fetch. In a worker it stalls only that worker.
 *
 * - At most `size` workers, started on demand; a task beyond them waits in a FIFO queue (under
 *   `serve` the queue is bounded by the concurrent-upload cap, MODELGATE_MAX_CONCURRENT_UPLOADS,
 *   plus the fetch re-inspections, at most one per artifact at a time).
 * - A worker whose inspection runs past `timeBudgetMs` is terminated and the artifact refused with
 *   a `limit_exceeded` finding (malformed), as the pickle analyzer's own time budget does.
 * - A worker that runs out of its V8 heap (`memoryMb`, Worker resourceLimits) is refused the same
 *   way: the content exhausted the inspector's memory, so it fails closed. Any other death of a
 *   worker (an uncaught exception, process.exit) rejects that inspection with `internal` (500).
 * - An aborted `signal` (client hang-up, shutdown) removes a queued task or terminates the worker
 *   running it, and rejects the inspection.
 * - A lost worker is replaced. Idle workers are unref'd: they never keep a process alive.
 *
 * Why our own ~300 lines and not piscina (5.x supports Node >= 20): its abort and resource
 * limits fit, but telling an out-of-memory death from a crash, turning a time-budget kill into a
 * report, and replacing workers with a guard against a script that cannot start would be a layer
 * over it of about the same size, plus a dependency with an optional native package.
 */

export interface InspectWorkerPoolOptions {
  /** Worker threads at most (MODELGATE_INSPECT_WORKERS). */
  size: number;
  /** V8 old-generation heap of each worker, MiB (MODELGATE_INSPECT_WORKER_MEMORY_MB). */
  memoryMb?: number;
  /** Wall-clock budget of one inspection in a worker (default INSPECTION_TIME_BUDGET_MS). */
  timeBudgetMs?: number;
  /** Parent of each inspection's temp directory (default: os.tmpdir(), in the worker). */
  tempRoot?: string;
  /** The worker's entry script. Tests inject small scripts that speak src/inspect/workerProtocol.ts. */
  workerScript?: string;
  /** Told about every worker lost with a task (crash, out of memory, time budget). */
  onWorkerLost?: (event: { reason: "crash" | "out_of_memory" | "time_budget"; detail: string; file: string }) => void;
}

export interface InspectWorkerPoolStats {
  /** Worker threads alive (idle, busy or starting). */
  workers: number;
  busy: number;
  queued: number;
}

interface Task {
  id: number;
  path: string;
  options: InspectOptions;
  settled: boolean;
  resolve: (report: InspectionReport) => void;
  reject: (err: unknown) => void;
  detach: () => void;
}

interface Slot {
  worker: Worker;
  task: Task | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Set when the pool itself terminates the worker, with why. */
  stopping: "time_budget" | "cancelled" | "close" | undefined;
  /** The worker's own 'error' event, if any (an uncaught exception, ERR_WORKER_OUT_OF_MEMORY). */
  error: Error | undefined;
  /** The worker loaded its module graph (posted "ready"): it is worth replacing when lost. */
  ready: boolean;
  exited: Promise<void>;
}

/**
 * The compiled worker entry. Worker threads run JavaScript only: from dist/ (the binary, the
 * benches) it is the sibling inspectWorker.js; when this module itself is loaded from its
 * TypeScript source (ts-jest transpiles src/*.ts in memory, with no .js beside it) it is the
 * compiled copy in dist/, which `npm test` builds before jest runs (and test/helpers/binary.ts's
 * ensureBuilt rebuilds when src/ is newer). Registering a TypeScript loader inside each worker
 * would instead put ts-jest's compiler (~100 MB) into every worker thread.
 */
export function defaultInspectWorkerScript(): string {
  if (__filename.endsWith(".js")) return path.join(__dirname, "inspectWorker.js");
  return path.join(__dirname, "..", "..", "dist", "src", "inspect", "inspectWorker.js");
}

/** A report that refuses the artifact with one `limit_exceeded` finding (time or memory backstop). */
function refusalReport(message: string): InspectionReport {
  const root: InspectionNode = {
    kind: "file",
    path: "",
    format: "unknown",
    findings: [{ code: "limit_exceeded", severity: "malformed", message, location: "" }],
    children: [],
  };
  return summarize(root, "unknown");
}

function cancelledError(signal: AbortSignal): GatewayError {
  const reason: unknown = signal.reason;
  if (reason instanceof GatewayError) return reason;
  return new GatewayError("unavailable", "the inspection was cancelled (the client hung up or the server is stopping)", undefined, { cause: reason });
}

function rebuildError(error: SerializedError): Error {
  // The code comes from a GatewayError thrown in our own worker (src/inspect/inspectWorker.ts).
  if (error.code !== undefined) return new GatewayError(error.code as ErrorCode, error.message, error.details);
  return new Error(error.message);
}

export class InspectWorkerPool {
  /** The Inspector seam (src/inspect/inspector.ts), bound to this pool. */
  readonly inspect: Inspector;
  private readonly size: number;
  private readonly memoryMb: number;
  private readonly timeBudgetMs: number;
  private readonly script: string;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: InspectWorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1)
      throw new GatewayError("invalid_config", `inspection workers must be a positive integer, not ${String(options.size)}`);
    this.size = options.size;
    this.memoryMb = options.memoryMb ?? DEFAULT_INSPECT_WORKER_MEMORY_MB;
    this.timeBudgetMs = options.timeBudgetMs ?? INSPECTION_TIME_BUDGET_MS;
    this.script = options.workerScript ?? defaultInspectWorkerScript();
    this.inspect = (file, inspectOptions) => this.submit(file, inspectOptions);
  }

  stats(): InspectWorkerPoolStats {
    return { workers: this.slots.length, busy: this.slots.filter((s) => s.task !== undefined).length, queued: this.queue.length };
  }

  /**
   * Refuse new inspections, reject the queued and running ones (`unavailable`), terminate every
   * worker and resolve once all have exited. Safe to call twice. `serve` calls it after the HTTP
   * server has closed, so only inspections of requests cut by the shutdown timeout are left.
   */
  close(): Promise<void> {
    if (this.closed !== undefined) return this.closed;
    const stopping = new GatewayError("unavailable", "the inspection workers were stopped (the server is stopping); the inspection was not finished");
    for (const task of this.queue.splice(0)) this.settle(task, { error: stopping });
    for (const slot of this.slots) {
      if (slot.task !== undefined) {
        const task = slot.task;
        this.settle(task, { error: stopping });
      }
      this.stop(slot, "close");
    }
    this.closed = Promise.all(this.slots.map((s) => s.exited)).then(() => undefined);
    return this.closed;
  }

  private submit(file: string, options: InspectOptions): Promise<InspectionReport> {
    if (this.closed !== undefined) return Promise.reject(new GatewayError("unavailable", "the inspection worker pool is closed"));
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(cancelledError(signal));
    return new Promise<InspectionReport>((resolve, reject) => {
      const task: Task = { id: this.nextId++, path: file, options, settled: false, resolve, reject, detach: () => undefined };
      if (signal !== undefined) {
        const onAbort = (): void => {
          this.cancel(task, signal);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        task.detach = () => {
          signal.removeEventListener("abort", onAbort);
        };
      }
      this.queue.push(task);
      this.pump();
    });
  }

  /** Settle a task once; later outcomes (a result racing a kill) are dropped. */
  private settle(task: Task, outcome: { report: InspectionReport } | { error: unknown }): void {
    if (task.settled) return;
    task.settled = true;
    task.detach();
    if ("report" in outcome) task.resolve(outcome.report);
    else task.reject(outcome.error);
  }

  private cancel(task: Task, signal: AbortSignal): void {
    const queued = this.queue.indexOf(task);
    if (queued >= 0) this.queue.splice(queued, 1);
    this.settle(task, { error: cancelledError(signal) });
    const slot = this.slots.find((s) => s.task === task);
    // The worker is somewhere inside synchronous parsing: terminating it is the only way to stop it.
    if (slot !== undefined) this.stop(slot, "cancelled");
  }

  private stop(slot: Slot, why: NonNullable<Slot["stopping"]>): void {
    if (slot.stopping !== undefined) return;
    slot.stopping = why;
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    void slot.worker.terminate();
  }

  /** Hand queued tasks to idle workers, starting workers up to the pool's size. */
  private pump(): void {
    while (this.queue.length > 0 && this.closed === undefined) {
      let slot = this.slots.find((s) => s.task === undefined && s.stopping === undefined);
      if (slot === undefined) {
        if (this.slots.length >= this.size) return;
        slot = this.spawn();
      }
      const task = this.queue.shift();
      if (task === undefined) return;
      this.assign(slot, task);
    }
  }

  private assign(slot: Slot, task: Task): void {
    slot.task = task;
    slot.worker.ref();
    // The budget is the inspection's: a worker still starting (loading its modules) starts the
    // clock when it is ready.
    if (slot.ready) this.startBudget(slot);
    const message: InspectTaskMessage = { id: task.id, path: task.path, policy: task.options.policy };
    if (task.options.fileName !== undefined) message.fileName = task.options.fileName;
    if (this.options.tempRoot !== undefined) message.tempRoot = this.options.tempRoot;
    slot.worker.postMessage(message);
  }

  private startBudget(slot: Slot): void {
    slot.timer = setTimeout(() => {
      this.stop(slot, "time_budget");
    }, this.timeBudgetMs);
  }

  private spawn(): Slot {
    const worker = new Worker(this.script, { resourceLimits: { maxOldGenerationSizeMb: this.memoryMb } });
    let exited: () => void = () => undefined;
    const slot: Slot = {
      worker,
      task: undefined,
      timer: undefined,
      stopping: undefined,
      error: undefined,
      ready: false,
      exited: new Promise<void>((resolve) => {
        exited = resolve;
      }),
    };
    worker.unref();
    worker.on("message", (message: WorkerMessage) => {
      this.onMessage(slot, message);
    });
    worker.on("error", (err) => {
      slot.error = err;
    });
    // An answer that cannot be deserialized would leave its task waiting for the time budget:
    // treat it as the worker's crash.
    worker.on("messageerror", (err) => {
      slot.error = err;
      void worker.terminate();
    });
    worker.on("exit", (code) => {
      this.onExit(slot, code);
      exited();
    });
    this.slots.push(slot);
    return slot;
  }

  private onMessage(slot: Slot, message: WorkerMessage): void {
    if (message.type === "ready") {
      slot.ready = true;
      if (slot.task !== undefined && slot.timer === undefined && slot.stopping === undefined) this.startBudget(slot);
      return;
    }
    const task = slot.task;
    if (task === undefined || task.id !== message.id || slot.stopping !== undefined) return;
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.task = undefined;
    slot.worker.unref();
    if (message.type === "report") this.settle(task, { report: message.report });
    else this.settle(task, { error: rebuildError(message.error) });
    this.pump();
  }

  private onExit(slot: Slot, code: number): void {
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    const at = this.slots.indexOf(slot);
    if (at >= 0) this.slots.splice(at, 1);
    const task = slot.task;
    slot.task = undefined;
    if (task !== undefined && !task.settled) this.settleLost(slot, task, code);
    if (this.closed !== undefined) return;
    // Replace a worker that had started (a script that cannot even load is not restarted in a
    // loop: the next queued task, if any, starts one and fails on its own).
    if (slot.ready && this.slots.length < this.size) this.spawn();
    this.pump();
  }

  private settleLost(slot: Slot, task: Task, code: number): void {
    const lost = this.options.onWorkerLost;
    if (slot.stopping === "time_budget") {
      const detail = `inspection exceeded its time budget of ${this.timeBudgetMs.toString()} ms (INSPECTION_TIME_BUDGET_MS); its worker was stopped`;
      lost?.({ reason: "time_budget", detail, file: task.path });
      this.settle(task, { report: refusalReport(detail) });
      return;
    }
    const oom = slot.error !== undefined && "code" in slot.error && slot.error.code === "ERR_WORKER_OUT_OF_MEMORY";
    if (oom) {
      const detail = `the content exhausted the inspector's memory (a ${this.memoryMb.toString()} MiB heap, MODELGATE_INSPECT_WORKER_MEMORY_MB); refused rather than accepted uninspected`;
      lost?.({ reason: "out_of_memory", detail, file: task.path });
      this.settle(task, { report: refusalReport(detail) });
      return;
    }
    const why = slot.error !== undefined ? messageOf(slot.error) : `exit code ${code.toString()}`;
    const detail = slot.ready ? `the inspection worker stopped unexpectedly (${why})` : `the inspection worker could not start (${why})`;
    lost?.({ reason: "crash", detail, file: task.path });
    this.settle(task, { error: new GatewayError("internal", `${detail}; the artifact was not inspected`) });
  }
}
