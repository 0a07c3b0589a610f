import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import request from "supertest";
import type { Inspector } from "../../src/inspect/inspector";
import { InspectWorkerPool } from "../../src/inspect/workerPool";
import { acceptingInspector, artifactBytes, listFiles, makeEnv, makePublisher, sha256Hex, signFor, type TestEnv } from "../http/helpers";
import { BEHAVIOUR_WORKER_JS } from "./behaviourWorker";

/**
 * The gateway with its inspections on the worker pool (behaviour worker: the uploaded bytes'
 * first line says what the worker does). A worker's crash or out-of-memory fails that upload
 * only, and a fetch is answered while an upload is being inspected.
 */

const serving = makePublisher();
const SOURCES = [{ id: "serving", keys: [{ pub: serving }] }];

describe("the gateway on the inspection worker pool", () => {
  let dir: string;
  let script: string;
  let env: TestEnv | undefined;
  let pool: InspectWorkerPool | undefined;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-pool-http-"));
    script = path.join(dir, "behaviourWorker.js");
    writeFileSync(script, BEHAVIOUR_WORKER_JS);
  });
  afterEach(async () => {
    await pool?.close();
    await env?.cleanup();
    pool = undefined;
    env = undefined;
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(inspect?: Inspector, memoryMb?: number): Promise<TestEnv> {
    if (inspect === undefined) {
      pool = new InspectWorkerPool({ size: 1, workerScript: script, ...(memoryMb !== undefined ? { memoryMb } : {}) });
      inspect = pool.inspect;
    }
    env = await makeEnv({ sources: SOURCES, inspect });
    return env;
  }
  const upload = (e: TestEnv, bytes: Buffer): request.Test =>
    request(e.app)
      .post("/v1/artifacts")
      .field("signature", signFor(serving, bytes, "m"))
      .attach("artifact", bytes, "m.bin");

  it("a worker crash fails that upload with 500 internal, stores nothing, and the next upload is accepted", async () => {
    const e = await start();
    const crash = await upload(e, artifactBytes("MGTEST:throw\n"));
    expect([crash.status, (crash.body as { error: { code: string } }).error.code]).toEqual([500, "internal"]);
    expect(await listFiles(path.join(e.dataDir, "blobs")).catch(() => [])).toEqual([]);
    expect(e.audit.events.map((ev) => [ev.type, ev.codes])).toEqual([["upload.rejected", ["internal"]]]);
    const next = await upload(e, artifactBytes("MGTEST:accept\n"));
    expect(next.status).toBe(201);
  });

  it("a worker out of memory refuses the upload with 422 malformed_artifact (limit_exceeded), and the next upload is accepted", async () => {
    const e = await start(undefined, 32);
    const oom = await upload(e, artifactBytes("MGTEST:oom\n"));
    const body = oom.body as { error: { code: string; details: { inspection: { findings: { code: string }[] } } } };
    expect([oom.status, body.error.code]).toEqual([422, "malformed_artifact"]);
    expect(body.error.details.inspection.findings.map((f) => f.code)).toEqual(["limit_exceeded"]);
    expect((await upload(e, artifactBytes("MGTEST:accept\n"))).status).toBe(201);
  });

  /**
   * Publish one artifact, then upload a second whose inspection keeps the CPU busy for 2 s, and
   * fetch the first meanwhile: `arm` gets the function that starts the fetch and calls it once
   * the upload's inspection has begun. Returns how long the fetch took and whether it finished
   * before the upload did.
   */
  async function fetchDuringInspection(e: TestEnv, arm: (startFetch: () => void) => void): Promise<{ fetchMs: number; fetchedFirst: boolean }> {
    const published = artifactBytes("MGTEST:accept\n");
    expect((await upload(e, published)).status).toBe(201);
    const server = http.createServer(e.app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
    try {
      let uploadDone = false;
      const fetched = new Promise<{ fetchMs: number; fetchedFirst: boolean; status: number; body: Buffer }>((resolve, reject) => {
        arm(() => {
          const started = performance.now();
          fetch(`${base}/v1/artifacts/${sha256Hex(published)}`)
            .then(async (res) => {
              const body = Buffer.from(await res.arrayBuffer());
              resolve({ fetchMs: performance.now() - started, fetchedFirst: !uploadDone, status: res.status, body });
            })
            .catch(reject);
        });
      });
      const slow = artifactBytes("MGTEST:spin:2000\n");
      const form = new FormData();
      form.append("signature", signFor(serving, slow, "slow"));
      form.append("artifact", new Blob([slow]), "slow.bin");
      const uploading = fetch(`${base}/v1/artifacts`, { method: "POST", body: form }).then(async (res) => {
        uploadDone = true;
        await res.arrayBuffer();
        return res.status;
      });
      const r = await fetched;
      expect(r.status).toBe(200);
      expect(sha256Hex(r.body)).toBe(sha256Hex(published));
      expect(await uploading).toBe(201);
      return { fetchMs: r.fetchMs, fetchedFirst: r.fetchedFirst };
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    }
  }

  it("a fetch is answered while an upload's inspection keeps its worker busy", async () => {
    const e = await start();
    const r = await fetchDuringInspection(e, (startFetch) => {
      // Bounded poll until the upload's inspection has begun (not a timing sleep).
      const deadline = Date.now() + 10_000;
      const poll = (): void => {
        if ((pool?.stats().busy ?? 0) > 0) startFetch();
        else if (Date.now() < deadline) setTimeout(poll, 5);
      };
      poll();
    });
    expect(r.fetchedFirst).toBe(true);
    expect(r.fetchMs).toBeLessThan(1500);
  });

  it("control: the same inspection on the event loop (in-process, as before the pool) holds the fetch back", async () => {
    // What the pool removes: a synchronous inspection blocks every other request until it ends.
    let onInspect: () => void = () => undefined;
    const spinningInProcess: Inspector = (file, options) => {
      if (readFileSync(file, "utf8").startsWith("MGTEST:spin:")) {
        onInspect();
        const until = Date.now() + 2000;
        while (Date.now() < until) {
          // blocking, as readSync and the pickle analyzer's opcode loop are
        }
      }
      return acceptingInspector(file, options);
    };
    const r = await fetchDuringInspection(await start(spinningInProcess), (startFetch) => {
      onInspect = startFetch;
    });
    expect(r.fetchMs).toBeGreaterThan(1500);
  });
});
