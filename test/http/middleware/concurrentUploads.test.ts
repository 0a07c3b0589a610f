import * as http from "node:http";
import type { Request, Response } from "express";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { createUploadGate } from "../../../src/http/middleware/concurrentUploads";
import { tinyApp } from "./tinyApp";

function until(predicate: () => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const poll = (): void => {
      if (predicate()) resolve();
      else setImmediate(poll);
    };
    poll();
  });
}

describe("concurrentUploads", () => {
  let shed = 0;
  const gate = createUploadGate({
    max: 1,
    onShed: () => {
      shed += 1;
    },
  });
  const held: Response[] = [];
  const app = tinyApp((a) => {
    a.post("/upload", gate.middleware, (req, res) => {
      if (req.query.hold === "1") held.push(res);
      else res.json({ done: true });
    });
  });
  const server = http.createServer(app);
  let url = "";

  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port.toString()}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("answers 503 unavailable past the cap and frees the slot when the response finishes", async () => {
    const first = request(url)
      .post("/upload?hold=1")
      .then((r) => r.status);
    await until(() => held.length === 1);
    expect(gate.inFlight).toBe(1);
    const refused = await request(url).post("/upload");
    expect(refused).toFailWithCode("unavailable", 503);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(shed).toBe(1);
    held.shift()!.json({ done: true });
    expect(await first).toBe(200);
    expect(gate.inFlight).toBe(0);
    expect((await request(url).post("/upload")).status).toBe(200);
  });

  it("frees the slot when the client disconnects mid-request", async () => {
    const req = http.request(`${url}/upload?hold=1`, { method: "POST" });
    req.on("error", () => undefined);
    req.end();
    await until(() => gate.inFlight === 1 && held.length === 1);
    req.destroy();
    await until(() => gate.inFlight === 0);
    expect(gate.inFlight).toBe(0);
    held.length = 0;
  });
});

describe("concurrentUploads and the idle timeout", () => {
  it("does not cut off an upload whose body has arrived while the server is still working on it", async () => {
    const gate = createUploadGate({ max: 4 });
    const app = tinyApp((a) => {
      const slow = (req: Request, res: Response) => {
        req.resume();
        req.on("end", () => {
          // Simulated inspection longer than the idle timeout.
          setTimeout(() => res.json({ inspected: true }), 400);
        });
      };
      a.post("/gated", gate.middleware, slow);
      a.post("/ungated", slow);
    });
    const server = http.createServer(app);
    server.setTimeout(150);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port.toString()}`;
    try {
      const gated = await request(url).post("/gated").send("body");
      expect(gated.status).toBe(200);
      await expect(request(url).post("/ungated").send("body")).rejects.toThrow();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
