import * as http from "node:http";
import request from "supertest";
import { securityHeaders } from "../../../src/http/middleware/securityHeaders";
import { applyServerTimeouts } from "../../../src/http/middleware/timeouts";
import { ok, tinyApp } from "./tinyApp";

describe("securityHeaders", () => {
  it("sets the hardening headers, no HSTS unless told, and no X-Powered-By", async () => {
    const app = tinyApp((a) => {
      a.use(securityHeaders());
      a.get("/x", ok);
    });
    const res = await request(app).get("/x");
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["x-frame-options"]).toBe("DENY");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.headers["content-security-policy"]).toMatch(/^default-src 'none'/);
    expect(res.headers["cross-origin-opener-policy"]).toBe("same-origin");
    expect(res.headers["cross-origin-resource-policy"]).toBe("same-origin");
    expect(res.headers["strict-transport-security"]).toBeUndefined();
    expect(res.headers["x-powered-by"]).toBeUndefined();
    // also on 404s and errors
    const missing = await request(app).get("/nope");
    expect(missing.status).toBe(404);
    expect(missing.headers["x-content-type-options"]).toBe("nosniff");
  });

  it("sends HSTS when given a max-age", async () => {
    const app = tinyApp((a) => {
      a.use(securityHeaders({ hstsMaxAgeSeconds: 31536000 }));
      a.get("/x", ok);
    });
    expect((await request(app).get("/x")).headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
  });
});

describe("applyServerTimeouts", () => {
  it("sets request, headers, keep-alive and idle timeouts, keeping headers <= request", () => {
    const server = http.createServer();
    applyServerTimeouts(server, { requestTimeoutMs: 10_000, headersTimeoutMs: 20_000, keepAliveTimeoutMs: 3_000, idleTimeoutMs: 7_000 });
    expect(server.requestTimeout).toBe(10_000);
    expect(server.headersTimeout).toBe(10_000);
    expect(server.keepAliveTimeout).toBe(3_000);
    expect(server.timeout).toBe(7_000);
    applyServerTimeouts(server, { requestTimeoutMs: 0, headersTimeoutMs: 5_000, keepAliveTimeoutMs: 1_000, idleTimeoutMs: 0 });
    expect(server.headersTimeout).toBe(5_000);
  });

  it("drops a client that never finishes its headers (slowloris)", async () => {
    const server = http.createServer((_req, res) => res.end("ok"));
    applyServerTimeouts(server, { requestTimeoutMs: 300, headersTimeoutMs: 200, keepAliveTimeoutMs: 100, idleTimeoutMs: 200 });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const net = await import("node:net");
      const socket = net.connect(port, "127.0.0.1");
      socket.write("GET / HTTP/1.1\r\nHost: x\r\n"); // headers never end
      const ended = await new Promise<string>((resolve) => {
        let data = "";
        socket.on("data", (d: Buffer) => (data += d.toString()));
        socket.on("close", () => {
          resolve(data);
        });
      });
      // node answers 408 or just closes; either way the socket does not stay open
      expect(ended === "" || ended.startsWith("HTTP/1.1 408")).toBe(true);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
