import request from "supertest";
import { makeEnv, makePublisher, type TestEnv } from "./helpers";

describe("health and readiness", () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await makeEnv({ sources: [{ id: "s", keys: [{ pub: makePublisher() }] }] });
  });
  afterAll(async () => {
    await env.cleanup();
  });

  it("GET /healthz answers ok", async () => {
    const res = await request(env.app).get("/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok" });
    expect(res.headers["x-powered-by"]).toBeUndefined();
  });

  it("GET /readyz is ready with a writable store and a working audit log, 503 unavailable otherwise", async () => {
    expect((await request(env.app).get("/readyz")).body).toEqual({ status: "ready" });
    env.audit.check = () => Promise.reject(new Error("audit down"));
    const res = await request(env.app).get("/readyz");
    expect(res).toFailWithCode("unavailable", 503);
    expect(res.body.error.details.failing).toEqual(["audit"]);
  });

  it("unknown routes get a JSON 404 and a sane X-Request-Id is echoed", async () => {
    const res = await request(env.app).get("/nope").set("X-Request-Id", "abc-123");
    expect(res).toFailWithCode("not_found", 404);
    expect(res.headers["x-request-id"]).toBe("abc-123");
    const evil = await request(env.app).get("/nope").set("X-Request-Id", "a b <script>");
    expect(evil.headers["x-request-id"]).not.toContain("script");
  });
});
