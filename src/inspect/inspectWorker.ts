import { isMainThread, parentPort } from "node:worker_threads";
import { isGatewayError, messageOf } from "../errors";
import { inspectPath } from "../formats/inspectFile";
import type { InspectTaskMessage, SerializedError, WorkerMessage } from "./workerProtocol";

/**
 * The entry point of one inspection worker thread (started by src/inspect/workerPool.ts): it
 * runs the same inspectPath as an in-process inspection, one task at a time, so the synchronous
 * parts (positional readSync, bzip2/lz4 decoding, the pickle analyzer's opcode loop) block this
 * thread's event loop and not the server's. It never exits on its own: the pool terminates it
 * (time budget, cancellation, shutdown).
 */

if (isMainThread || parentPort === null) {
  throw new Error("inspectWorker runs in a worker thread started by the inspection worker pool (src/inspect/workerPool.ts)");
}
const port = parentPort;

function serialize(err: unknown): SerializedError {
  if (isGatewayError(err)) {
    return err.details === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, details: err.details };
  }
  return { message: messageOf(err) };
}

function post(message: WorkerMessage): void {
  try {
    port.postMessage(message);
  } catch (err) {
    // A value structured clone refuses (a function or a class in an error's details): the code and
    // the message still cross, without the details; a report is plain JSON and always clones.
    if (message.type !== "error") throw err;
    const { code, message: text } = message.error;
    port.postMessage({ type: "error", id: message.id, error: code === undefined ? { message: text } : { code, message: text } } satisfies WorkerMessage);
  }
}

async function run(task: InspectTaskMessage): Promise<void> {
  try {
    const report = await inspectPath(task.path, {
      policy: task.policy,
      ...(task.fileName !== undefined ? { fileName: task.fileName } : {}),
      ...(task.tempRoot !== undefined ? { tempRoot: task.tempRoot } : {}),
    });
    post({ type: "report", id: task.id, report });
  } catch (err) {
    post({ type: "error", id: task.id, error: serialize(err) });
  }
}

port.on("message", (task: InspectTaskMessage) => {
  void run(task);
});
post({ type: "ready" });
