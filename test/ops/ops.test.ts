import { mkdtemp, rm } from "node:fs/promises";
import * as http from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import pino from "pino";
import request from "supertest";
import { verifyAuditLog } from "../../src/audit/fileLog";
import { generateToken, hashToken, writeTokensFileAtomic } from "../../src/auth/tokens";
import { createOps, isLoopbackHost, loadOpsConfig, type Ops } from "../../src/ops";
import { ok, tinyApp } from "../http/middleware/tinyApp";

const logger = pino({ level: "silent" });
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mg-ops-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function appFor(ops: Ops) {
  return tinyApp((app) => {
    for (const m of ops.middlewares) app.use(m);
    for (const r of ops.routers) app.use(r);
    app.get("/healthz", ok);
    app.get("/v1/artifacts", ops.access.require("read"), ok);
    app.post("/v1/artifacts", ops.uploadGate, ops.access.require("publish"), ok);
  });
}

describe("loadOpsConfig", () => {
  it("has safe defaults and puts the audit log in the data dir", () => {
    const c = loadOpsConfig({}, { dataDir: "/srv/mg" });
    expect(c.auditLog).toBe(path.join("/srv/mg", "audit.log"));
    expect(c.tokensFile).toBeUndefined();
    expect(c.anonymousRead).toBe(false);
    expect(c.hstsMaxAgeSeconds).toBe(0);
    expect(c.rateLimit.rps).toBeGreaterThan(0);
  });

  it("parses every variable", () => {
    const c = loadOpsConfig({
      MODELGATE_DATA_DIR: "/d",
      MODELGATE_TOKENS_FILE: "/etc/mg/tokens.json",
      MODELGATE_ANONYMOUS_READ: "true",
      MODELGATE_METRICS_ANONYMOUS: "1",
      MODELGATE_AUDIT_LOG: "/var/log/mg/audit.log",
      MODELGATE_RATE_LIMIT_RPS: "5",
      MODELGATE_RATE_LIMIT_BURST: "10",
      MODELGATE_MAX_CONCURRENT_UPLOADS: "3",
      MODELGATE_REQUEST_TIMEOUT_MS: "60000",
      MODELGATE_HEADERS_TIMEOUT_MS: "10000",
      MODELGATE_IDLE_TIMEOUT_MS: "30000",
      MODELGATE_KEEPALIVE_TIMEOUT_MS: "2000",
      MODELGATE_HSTS: "true",
      MODELGATE_SHUTDOWN_TIMEOUT_MS: "1500",
    });
    expect(c).toEqual({
      dataDir: "/d",
      tokensFile: "/etc/mg/tokens.json",
      anonymousRead: true,
      metricsAnonymous: true,
      auditLog: "/var/log/mg/audit.log",
      rateLimit: { rps: 5, burst: 10 },
      maxConcurrentUploads: 3,
      timeouts: { requestTimeoutMs: 60000, headersTimeoutMs: 10000, idleTimeoutMs: 30000, keepAliveTimeoutMs: 2000 },
      hstsMaxAgeSeconds: 31536000,
      shutdownTimeoutMs: 1500,
    });
    expect(loadOpsConfig({ MODELGATE_HSTS: "600" }).hstsMaxAgeSeconds).toBe(600);
  });

  it("rejects bad values with invalid_config", () => {
    for (const env of [
      { MODELGATE_ANONYMOUS_READ: "maybe" },
      { MODELGATE_MAX_CONCURRENT_UPLOADS: "0" },
      { MODELGATE_RATE_LIMIT_RPS: "-1" },
      { MODELGATE_HSTS: "forever" },
      { MODELGATE_REQUEST_TIMEOUT_MS: "1000", MODELGATE_HEADERS_TIMEOUT_MS: "2000" },
    ]) {
      expect(() => loadOpsConfig(env)).toFailWithCode("invalid_config");
    }
  });
});

describe("isLoopbackHost", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["localhost", true],
    ["::1", true],
    ["[::1]", true],
    ["::ffff:127.0.0.1", true],
    ["0.0.0.0", false],
    ["::", false],
    ["10.0.0.5", false],
    ["example.com", false],
    ["127.0.0.1.example.com", false],
  ])("%s -> %s", (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

describe("createOps", () => {
  it("without tokens: open on loopback, refuses other binds, serves metrics and audit", async () => {
    const ops = await createOps(loadOpsConfig({}, { dataDir: dir }), logger);
    try {
      expect(ops.tokensConfigured).toBe(false);
      expect(ops.startupCheck("127.0.0.1")).toMatch(/OPEN/);
      expect(() => ops.startupCheck("0.0.0.0")).toFailWithCode("invalid_config");
      const app = appFor(ops);
      const res = await request(app).get("/v1/artifacts");
      expect(res.status).toBe(200);
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect((await request(app).get("/metrics")).text).toContain("modelgate_uploads_in_flight");
      await ops.audit.append({ type: "allowlist.reloaded" });
      const audit = await request(app).get("/v1/audit?since=0&limit=10");
      expect(audit.status).toBe(200);
      expect(audit.body.entries).toHaveLength(1);
      expect(audit.body.next).toBeNull();
      expect(await request(app).get("/v1/audit?limit=0")).toFailWithCode("bad_request");
      expect((await request(app).get("/v1/audit?limit=abc")).status).toBe(400);
      expect((await request(app).get("/v1/audit?bogus=1")).status).toBe(400);
    } finally {
      await ops.close();
    }
  });

  it("with tokens: enforces scopes, audits admin use, guards metrics, rate-limits per token", async () => {
    const tokensFile = path.join(dir, "tokens.json");
    const admin = generateToken();
    const ci = generateToken();
    const scraper = generateToken();
    const createdAt = new Date(0).toISOString();
    await writeTokensFileAtomic(tokensFile, {
      version: 1,
      tokens: [
        { id: "ops", sha256: hashToken(admin), scopes: ["admin"], createdAt },
        { id: "ci", sha256: hashToken(ci), scopes: ["publish", "read"], createdAt },
        { id: "prom", sha256: hashToken(scraper), scopes: ["metrics"], createdAt },
      ],
    });
    const config = loadOpsConfig({ MODELGATE_TOKENS_FILE: tokensFile, MODELGATE_RATE_LIMIT_RPS: "0.001", MODELGATE_RATE_LIMIT_BURST: "6" }, { dataDir: dir });
    const ops = await createOps(config, logger);
    try {
      expect(ops.tokensConfigured).toBe(true);
      expect(ops.startupCheck("0.0.0.0")).toMatch(/3 token/);
      const app = appFor(ops);
      expect((await request(app).get("/v1/artifacts")).status).toBe(401);
      expect((await request(app).post("/v1/artifacts").set("Authorization", `Bearer ${ci}`)).status).toBe(200);
      expect((await request(app).get("/metrics")).status).toBe(401);
      expect((await request(app).get("/metrics").set("Authorization", `Bearer ${ci}`)).status).toBe(403);
      expect((await request(app).get("/metrics").set("Authorization", `Bearer ${scraper}`)).status).toBe(200);
      expect((await request(app).get("/v1/audit").set("Authorization", `Bearer ${ci}`)).status).toBe(403);
      const audit = await request(app).get("/v1/audit").set("Authorization", `Bearer ${admin}`);
      expect(audit.status).toBe(200);
      expect(audit.body.entries).toEqual([expect.objectContaining({ type: "admin.action", tokenId: "ops", seq: 1 })]);
      // The ci token has used 3 of its 6; the anonymous IP bucket is separate.
      for (let i = 0; i < 3; i++) expect((await request(app).get("/v1/artifacts").set("Authorization", `Bearer ${ci}`)).status).toBe(200);
      const limited = await request(app).get("/v1/artifacts").set("Authorization", `Bearer ${ci}`);
      expect(limited.status).toBe(429);
      expect((await request(app).get("/healthz")).status).toBe(200);
      const text = (await request(app).get("/metrics").set("Authorization", `Bearer ${scraper}`)).text;
      expect(text).toContain("modelgate_rate_limited_total 1");
      await ops.close();
      await expect(verifyAuditLog(config.auditLog)).resolves.toMatchObject({ ok: true, count: 1 });
    } finally {
      await ops.close();
    }
  });

  it("refuses to start when the configured tokens file is missing", async () => {
    await expect(createOps(loadOpsConfig({ MODELGATE_TOKENS_FILE: path.join(dir, "nope.json") }, { dataDir: dir }), logger)).rejects.toMatchObject({
      code: "invalid_config",
    });
  });

  it("applies server timeouts", async () => {
    const ops = await createOps(loadOpsConfig({ MODELGATE_HEADERS_TIMEOUT_MS: "1234" }, { dataDir: dir }), logger);
    const server = http.createServer();
    ops.applyServerTimeouts(server);
    expect(server.headersTimeout).toBe(1234);
    await ops.close();
  });
});
