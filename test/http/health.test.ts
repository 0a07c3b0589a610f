import pino from "pino";
import request from "supertest";
import { loadConfig } from "../../src/config";
import { createApp } from "../../src/http/app";

describe("health", () => {
  it("GET /healthz answers ok", async () => {
    const app = createApp({ config: loadConfig({}), logger: pino({ level: "silent" }), now: () => new Date() });
    const res = await request(app).get("/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
    expect(res.headers["x-powered-by"]).toBeUndefined();
  });
});
