import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { GatewayError } from "../../src/errors";
import { inspectPath } from "../../src/formats/inspectFile";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { rejectionCode, type InspectionReport } from "../../src/inspect/report";
import { InspectWorkerPool, type InspectWorkerPoolOptions } from "../../src/inspect/workerPool";
import { ensureBuilt, ROOT } from "../support/binary";
import { BEHAVIOUR_WORKER_JS } from "./behaviourWorker";

const policy = DEFAULT_CONTENT_POLICY;

describe("InspectWorkerPool", () => {
  let dir: string;
  let script: string;
  const pools: InspectWorkerPool[] = [];

  /** A file whose first line tells the behaviour worker what to do. */
  function file(command: string): string {
    const p = path.join(dir, `${command.replace(/[^a-z0-9]/gi, "_")}-${String(Math.random()).slice(2)}.bin`);
    writeFileSync(p, `MGTEST:${command}\n`);
    return p;
  }
  function pool(options: Partial<InspectWorkerPoolOptions> = {}): InspectWorkerPool {
    const p = new InspectWorkerPool({ size: 1, workerScript: script, ...options });
    pools.push(p);
    return p;
  }
  const threadOf = (r: InspectionReport): unknown => r.root.details?.threadId;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-pool-"));
    script = path.join(dir, "behaviourWorker.js");
    writeFileSync(script, BEHAVIOUR_WORKER_JS);
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("the real worker (dist) returns the same report as the in-process inspector", async () => {
    ensureBuilt();
    const real = pool({ workerScript: undefined, size: 2 });
    for (const fixture of ["safetensors/benign.safetensors", "pickle-unit/os-system-p4.pkl", "joblib/arrays.joblib.xz"]) {
      const p = path.join(ROOT, "test", "fixtures", fixture);
      const [inWorker, inProcess] = await Promise.all([
        real.inspect(p, { policy, fileName: path.basename(p) }),
        inspectPath(p, { policy, fileName: path.basename(p) }),
      ]);
      expect(inWorker).toEqual(inProcess);
    }
  });

  it("a GatewayError thrown in the worker arrives with its code and details", async () => {
    ensureBuilt();
    const real = pool({ workerScript: undefined });
    await expect(real.inspect(path.join(dir, "no-such-file"), { policy })).rejects.toMatchObject({ code: "io_error" });
    await expect(pool().inspect(file("gateway-error"), { policy })).rejects.toMatchObject({ code: "insufficient_storage", details: { where: "test" } });
  });

  it("passes the pool's tempRoot and the file name to each inspection", async () => {
    const tempRoot = path.join(dir, "store-tmp");
    const r = await pool({ tempRoot }).inspect(file("accept"), { policy, fileName: "m.pt" });
    expect(r.root.details).toMatchObject({ tempRoot, fileName: "m.pt" });
  });

  it("queues tasks beyond its size and runs at most `size` at once, in order", async () => {
    const p = pool({ size: 1 });
    const running = [p.inspect(file("spin:200"), { policy }), p.inspect(file("spin:200"), { policy }), p.inspect(file("accept"), { policy })];
    expect(p.stats()).toEqual({ workers: 1, busy: 1, queued: 2 });
    const reports = await Promise.all(running);
    expect(new Set(reports.map(threadOf)).size).toBe(1);
    expect(p.stats()).toMatchObject({ busy: 0, queued: 0 });
  });

  it("runs `size` inspections at once on distinct workers", async () => {
    const p = pool({ size: 2 });
    const running = [p.inspect(file("spin:300"), { policy }), p.inspect(file("spin:300"), { policy })];
    expect(p.stats()).toEqual({ workers: 2, busy: 2, queued: 0 });
    const reports = await Promise.all(running);
    expect(new Set(reports.map(threadOf)).size).toBe(2);
  });

  it("terminates a worker past the time budget: limit_exceeded (malformed), and a new worker serves the next task", async () => {
    const lost: string[] = [];
    const p = pool({ timeBudgetMs: 1000, onWorkerLost: (e) => lost.push(e.reason) });
    // Within the budget (its clock starts when the worker is ready): the worker's own answer.
    const first = await p.inspect(file("spin:100"), { policy });
    expect(first.verdict).toBe("accept");
    const report = await p.inspect(file("hang"), { policy });
    expect(report.verdict).toBe("reject");
    expect(report.findings.map((f) => [f.code, f.severity])).toEqual([["limit_exceeded", "malformed"]]);
    expect(rejectionCode(report)).toBe("malformed_artifact");
    expect(lost).toEqual(["time_budget"]);
    const next = await p.inspect(file("accept"), { policy });
    expect(threadOf(next)).not.toBe(threadOf(first));
    expect(p.stats().workers).toBe(1);
  });

  it("an abort while running terminates that worker and rejects; the pool carries on", async () => {
    const p = pool();
    const controller = new AbortController();
    const running = p.inspect(file("hang"), { policy, signal: controller.signal });
    setTimeout(() => {
      controller.abort();
    }, 200);
    await expect(running).rejects.toMatchObject({ code: "unavailable" });
    expect((await p.inspect(file("accept"), { policy })).verdict).toBe("accept");
  });

  it("an abort reason that is a GatewayError is what the inspection rejects with", async () => {
    const p = pool();
    const controller = new AbortController();
    const running = p.inspect(file("hang"), { policy, signal: controller.signal });
    controller.abort(new GatewayError("bad_request", "client went away"));
    await expect(running).rejects.toMatchObject({ code: "bad_request" });
  });

  it("an abort while queued removes the task; an already aborted signal never reaches a worker", async () => {
    const p = pool({ size: 1 });
    const controller = new AbortController();
    const first = p.inspect(file("spin:300"), { policy });
    const queued = p.inspect(file("accept"), { policy, signal: controller.signal });
    expect(p.stats().queued).toBe(1);
    controller.abort();
    await expect(queued).rejects.toMatchObject({ code: "unavailable" });
    expect(p.stats().queued).toBe(0);
    expect((await first).verdict).toBe("accept");
    await expect(p.inspect(file("accept"), { policy, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: "unavailable" });
  });

  it.each([["throw"], ["exit"]])("a worker that dies (%s) fails only that inspection with internal, and is replaced", async (how) => {
    const lost: string[] = [];
    const p = pool({ size: 1, onWorkerLost: (e) => lost.push(e.reason) });
    const first = await p.inspect(file("accept"), { policy });
    const [dead, queued] = await Promise.allSettled([p.inspect(file(how), { policy }), p.inspect(file("accept"), { policy })]);
    expect(dead).toMatchObject({ status: "rejected", reason: { code: "internal" } });
    expect(queued).toMatchObject({ status: "fulfilled", value: { verdict: "accept" } });
    expect(queued.status === "fulfilled" && threadOf(queued.value)).not.toBe(threadOf(first));
    expect(lost).toEqual(["crash"]);
  });

  it("a worker out of memory refuses the artifact as malformed, and is replaced", async () => {
    const lost: string[] = [];
    const p = pool({ memoryMb: 32, onWorkerLost: (e) => lost.push(e.reason) });
    const report = await p.inspect(file("oom"), { policy });
    expect(report.findings.map((f) => [f.code, f.severity])).toEqual([["limit_exceeded", "malformed"]]);
    expect(rejectionCode(report)).toBe("malformed_artifact");
    expect(lost).toEqual(["out_of_memory"]);
    expect((await p.inspect(file("accept"), { policy })).verdict).toBe("accept");
  });

  it("a worker script that cannot start fails its task with internal and is not restarted in a loop", async () => {
    const p = pool({ workerScript: path.join(dir, "missing-worker.js") });
    await expect(p.inspect(file("accept"), { policy })).rejects.toMatchObject({ code: "internal" });
    expect(p.stats().workers).toBe(0);
  });

  it("close() rejects queued and running inspections, ends every worker, and refuses new ones", async () => {
    const p = pool({ size: 1 });
    const outcomes = Promise.allSettled([p.inspect(file("hang"), { policy }), p.inspect(file("accept"), { policy })]);
    await p.close();
    expect(await outcomes).toMatchObject([
      { status: "rejected", reason: { code: "unavailable" } },
      { status: "rejected", reason: { code: "unavailable" } },
    ]);
    expect(p.stats().workers).toBe(0);
    await expect(p.inspect(file("accept"), { policy })).rejects.toMatchObject({ code: "unavailable" });
    await p.close();
  });
});
