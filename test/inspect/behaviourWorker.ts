/**
 * The source of a stand-in inspection worker for the pool's tests: it speaks the real worker's
 * protocol (src/inspect/workerProtocol.ts) and does what the first line of the file it is asked
 * to inspect says, so a test can make one worker spin, hang, crash, exit or run out of memory
 * without hurting the real inspector. Worker threads run JavaScript, so this is plain JS that the
 * tests write to a temp file (the pool's `workerScript` option).
 *
 *   MGTEST:accept          an accepting report whose root details name the worker's threadId and tempRoot
 *   MGTEST:spin:<ms>       busy-loop this long (the thread's event loop blocked, as a real parse does), then accept
 *   MGTEST:hang            busy-loop forever
 *   MGTEST:throw           an uncaught exception
 *   MGTEST:exit            process.exit(3) inside the worker
 *   MGTEST:oom             allocate until the heap limit is reached
 *   MGTEST:gateway-error   reject with a GatewayError-shaped error (code insufficient_storage)
 */
export const BEHAVIOUR_WORKER_JS = `"use strict";
const { parentPort, threadId } = require("node:worker_threads");
const { readFileSync } = require("node:fs");

function report(details) {
  const root = { kind: "file", path: "", format: "test", findings: [], details, children: [] };
  return { verdict: "accept", format: "test", root, findings: [], imports: [], pickleFree: true };
}

parentPort.on("message", (task) => {
  const command = readFileSync(task.path, "utf8").split("\\n")[0].replace(/^MGTEST:/, "");
  const [verb, arg] = command.split(":");
  if (verb === "spin") {
    const until = Date.now() + Number(arg);
    while (Date.now() < until) {}
  } else if (verb === "hang") {
    for (;;) {}
  } else if (verb === "throw") {
    setImmediate(() => { throw new Error("test worker: uncaught"); });
    return;
  } else if (verb === "exit") {
    process.exit(3);
  } else if (verb === "oom") {
    const keep = [];
    for (;;) keep.push(new Array(100000).fill(0).map((_, i) => ({ i })));
  } else if (verb === "gateway-error") {
    parentPort.postMessage({ type: "error", id: task.id, error: { code: "insufficient_storage", message: "no space left", details: { where: "test" } } });
    return;
  }
  parentPort.postMessage({ type: "report", id: task.id, report: report({ threadId, tempRoot: task.tempRoot ?? null, fileName: task.fileName ?? null }) });
});
parentPort.postMessage({ type: "ready" });
`;
