import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { createApp } from "../../src/http/app";
import type { Inspector, InspectOptions } from "../../src/inspect/inspector";
import { acceptingInspector, artifactBytes, makeEnv, makePublisher, signFor, type TestEnv } from "./helpers";

/**
 * The upload's cancellation reaches the inspection: a client that hangs up before the answer, or
 * a server that stops for good (AppDeps.stopping), aborts the `signal` the inspector was given;
 * the upload is then refused, audited, and its temp file removed.
 */

const pub = makePublisher();
const b64 = (s: string): string => Buffer.from(s).toString("base64");

/** An inspector that waits until its signal is aborted, then fails as a cancelled inspection does. */
function waitingInspector(seen: InspectOptions[], started: () => void): Inspector {
  return (_p, options) => {
    seen.push(options);
    started();
    return new Promise((_resolve, reject) => {
      const signal = options.signal;
      if (signal === undefined) return;
      signal.addEventListener("abort", () => {
        reject(new Error("inspection cancelled"));
      });
    });
  };
}

async function listen(env: TestEnv, app = env.app): Promise<{ port: number; close: () => Promise<void> }> {
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

function put(port: number, bytes: Buffer, name: string): http.ClientRequest {
  const req = http.request({
    host: "127.0.0.1",
    port,
    method: "PUT",
    path: "/v1/artifacts",
    headers: { "Content-Type": "application/octet-stream", "Content-Length": String(bytes.length), "Modelgate-Signature": b64(signFor(pub, bytes, name)) },
  });
  req.on("error", () => undefined);
  req.end(bytes);
  return req;
}

async function until(predicate: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("timed out");
}

describe("upload cancellation", () => {
  it("a client that hangs up during inspection aborts the inspector's signal; refused, audited, no temp file", async () => {
    const seen: InspectOptions[] = [];
    let started: () => void = () => undefined;
    const inspecting = new Promise<void>((r) => (started = r));
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }], inspect: waitingInspector(seen, started) });
    const server = await listen(env);
    try {
      const req = put(server.port, artifactBytes("hang-up"), "hang-up");
      await inspecting;
      expect(seen[0]?.signal?.aborted).toBe(false);
      req.destroy();
      await until(() => env.audit.events.some((e) => e.type === "upload.rejected"));
      expect(seen[0]?.signal?.aborted).toBe(true);
      expect(env.audit.events.filter((e) => e.type.startsWith("upload."))).toEqual([
        expect.objectContaining({ type: "upload.rejected", codes: ["unavailable"] }),
      ]);
      await until(async () => (await fsp.readdir(path.join(env.dataDir, "tmp"))).length === 0);
    } finally {
      await server.close();
      await env.cleanup();
    }
  });

  it("a server that stops for good aborts the inspections in flight; an answered upload's signal is never aborted", async () => {
    const seen: InspectOptions[] = [];
    let started: () => void = () => undefined;
    const inspecting = new Promise<void>((r) => (started = r));
    let inspect: Inspector = waitingInspector(seen, started);
    const base = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }], inspect: (p, o) => inspect(p, o) });
    const stopping = new AbortController();
    const app = createApp({ ...base.deps, stopping: stopping.signal });
    const server = await listen(base, app);
    try {
      const answer = new Promise<number>((resolve) => {
        put(server.port, artifactBytes("stopping"), "stopping").on("response", (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
      });
      await inspecting;
      stopping.abort();
      expect(await answer).toBe(503);
      expect(seen[0]?.signal?.aborted).toBe(true);

      const calm: InspectOptions[] = [];
      inspect = (p, o) => {
        calm.push(o);
        return acceptingInspector(p, o);
      };
      const fresh = new AbortController();
      const app2 = createApp({ ...base.deps, stopping: fresh.signal });
      const server2 = await listen(base, app2);
      try {
        const status = await new Promise<number>((resolve) => {
          put(server2.port, artifactBytes("calm"), "calm").on("response", (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          });
        });
        expect(status).toBe(201);
        // Every connection closed: the answered upload's 'close' has come and gone.
        await server2.close();
        expect(calm).toHaveLength(1);
        expect(calm[0]?.signal?.aborted).toBe(false);
      } finally {
        await server2.close();
      }
    } finally {
      await server.close();
      await base.cleanup();
    }
  });
});
