import request from "supertest";
import { createRateLimiter } from "../../../src/http/middleware/rateLimit";
import { ok, tinyApp } from "./tinyApp";

function limited(options: { rps: number; burst: number; maxKeys?: number }, clock: { t: number }) {
  let limitedCount = 0;
  const limiter = createRateLimiter({
    ...options,
    now: () => clock.t,
    keyOf: (req) => req.get("x-client") ?? "anon",
    skip: (req) => req.path === "/healthz",
    onLimited: () => {
      limitedCount += 1;
    },
  });
  const app = tinyApp((a) => {
    a.use(limiter.middleware);
    a.get("/x", ok);
    a.get("/healthz", ok);
  });
  return { app, limiter, limitedCount: () => limitedCount };
}

describe("rateLimit", () => {
  it("allows a burst, then answers 429 rate_limited with Retry-After, then refills", async () => {
    const clock = { t: 0 };
    const { app, limitedCount } = limited({ rps: 2, burst: 3 }, clock);
    for (let i = 0; i < 3; i++) expect((await request(app).get("/x").set("x-client", "a")).status).toBe(200);
    const refused = await request(app).get("/x").set("x-client", "a");
    expect(refused).toFailWithCode("rate_limited", 429);
    expect(refused.headers["retry-after"]).toBe("1");
    expect(limitedCount()).toBe(1);
    // another client has its own bucket
    expect((await request(app).get("/x").set("x-client", "b")).status).toBe(200);
    clock.t += 500; // +1 token at 2 rps
    expect((await request(app).get("/x").set("x-client", "a")).status).toBe(200);
    expect((await request(app).get("/x").set("x-client", "a")).status).toBe(429);
  });

  it("never limits skipped paths and is off at 0 rps", async () => {
    const clock = { t: 0 };
    const { app } = limited({ rps: 1, burst: 1 }, clock);
    for (let i = 0; i < 5; i++) expect((await request(app).get("/healthz").set("x-client", "a")).status).toBe(200);
    const off = limited({ rps: 0, burst: 1 }, clock);
    for (let i = 0; i < 5; i++) expect((await request(off.app).get("/x")).status).toBe(200);
  });

  it("bounds the bucket map, dropping the least recently used key", async () => {
    const clock = { t: 0 };
    const { app, limiter } = limited({ rps: 1, burst: 1, maxKeys: 2 }, clock);
    expect((await request(app).get("/x").set("x-client", "a")).status).toBe(200);
    expect((await request(app).get("/x").set("x-client", "b")).status).toBe(200);
    expect((await request(app).get("/x").set("x-client", "a")).status).toBe(429); // a is now most recent
    expect((await request(app).get("/x").set("x-client", "c")).status).toBe(200); // evicts b
    expect(limiter.size).toBe(2);
    expect((await request(app).get("/x").set("x-client", "a")).status).toBe(429); // a kept its empty bucket
    expect((await request(app).get("/x").set("x-client", "b")).status).toBe(200); // b was forgotten: fresh bucket
  });

  it("keys by IP by default", async () => {
    const limiter = createRateLimiter({ rps: 1, burst: 1, now: () => 0 });
    const app = tinyApp((a) => {
      a.use(limiter.middleware);
      a.get("/x", ok);
    });
    expect((await request(app).get("/x")).status).toBe(200);
    expect((await request(app).get("/x")).status).toBe(429);
  });
});
