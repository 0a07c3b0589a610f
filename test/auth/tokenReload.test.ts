import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import pino from "pino";
import request from "supertest";
import { MemoryAuditSink, type AuditEvent, type AuditSink } from "../../src/audit/types";
import { TokenHolder } from "../../src/reload/tokenHolder";
import { generateToken, hashToken, TokenAccessControl, writeTokensFileAtomic, type TokenRecord } from "../../src/auth/tokens";
import { NOOP_METRICS } from "../../src/metrics/types";
import { createOps, loadOpsConfig, type Ops } from "../../src/ops";
import { ok, tinyApp } from "../http/middleware/tinyApp";

const logger = pino({ level: "silent" });
const ciToken = generateToken();
const servingToken = generateToken();
const newToken = generateToken();

function record(id: string, token: string, scopes: TokenRecord["scopes"]): TokenRecord {
  return { id, sha256: hashToken(token), scopes, createdAt: "2026-01-01T00:00:00.000Z" };
}

const CI = record("ci", ciToken, ["publish", "read"]);
const SERVING = record("serving", servingToken, ["read"]);
const NEW = record("new", newToken, ["read"]);

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mg-tokreload-"));
  file = path.join(dir, "tokens.json");
  await writeTokensFileAtomic(file, { version: 1, tokens: [CI, SERVING] });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function appOver(holder: TokenHolder) {
  const access = new TokenAccessControl(holder, { anonymousRead: false });
  return tinyApp((app) => {
    app.get("/read", access.require("read"), ok);
  });
}

async function readWith(app: ReturnType<typeof appOver>, token: string): Promise<{ status: number; code?: string }> {
  const res = await request(app).get("/read").set("Authorization", `Bearer ${token}`);
  return { status: res.status, code: (res.body as { error?: { code: string } }).error?.code };
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("TokenHolder", () => {
  it("refuses to open an invalid or missing tokens file (serve refuses to start)", async () => {
    await writeFile(path.join(dir, "bad.json"), '{"version":1,"tokens":[{"id":"x"}]}');
    await expect(TokenHolder.open(path.join(dir, "bad.json"), { logger })).toFailWithCode("invalid_config");
    await expect(TokenHolder.open(path.join(dir, "missing.json"), { logger })).toFailWithCode("invalid_config");
  });

  it("a valid new file takes effect: the revoked token gets 401, an added one works, and the reload is audited by id only", async () => {
    const audit = new MemoryAuditSink();
    const holder = await TokenHolder.open(file, { logger, audit });
    const app = appOver(holder);
    expect(await readWith(app, servingToken)).toEqual({ status: 200, code: undefined });
    expect((await readWith(app, newToken)).code).toBe("unauthenticated");

    const before = holder.current();
    await writeTokensFileAtomic(file, { version: 1, tokens: [CI, NEW] });
    expect(await holder.reload()).toBe(true);

    expect(await readWith(app, servingToken)).toEqual({ status: 401, code: "unauthenticated" });
    expect(await readWith(app, newToken)).toEqual({ status: 200, code: undefined });
    expect(await readWith(app, ciToken)).toEqual({ status: 200, code: undefined });
    // The store is replaced, never mutated: a request that already holds the old one is unaffected.
    expect(holder.current()).not.toBe(before);
    expect(before.authenticate(servingToken)?.id).toBe("serving");

    expect(audit.events).toEqual([{ type: "tokens.reloaded", details: { file, tokens: 2, added: ["new"], removed: ["serving"] } }]);
    const logged = JSON.stringify(audit.events);
    for (const secret of [ciToken, servingToken, newToken, CI.sha256, SERVING.sha256, NEW.sha256]) expect(logged).not.toContain(secret);
  });

  it("an invalid or missing new file keeps the old set and audits tokens.rejected", async () => {
    const audit = new MemoryAuditSink();
    const holder = await TokenHolder.open(file, { logger, audit });
    const app = appOver(holder);

    await writeFile(file, '{"version":1,"tokens":[{"id":"ci"}');
    expect(await holder.reload()).toBe(false);
    expect(await readWith(app, servingToken)).toEqual({ status: 200, code: undefined });

    await writeFile(file, JSON.stringify({ version: 1, tokens: [CI, { ...NEW, scopes: ["root"] }] }));
    expect(await holder.reload()).toBe(false);
    await rm(file);
    expect(await holder.reload()).toBe(false);

    expect(await readWith(app, servingToken)).toEqual({ status: 200, code: undefined });
    expect(await readWith(app, ciToken)).toEqual({ status: 200, code: undefined });
    expect(await readWith(app, newToken)).toEqual({ status: 401, code: "unauthenticated" });
    expect(audit.events.map((e) => [e.type, e.codes])).toEqual([
      ["tokens.rejected", ["invalid_config"]],
      ["tokens.rejected", ["invalid_config"]],
      ["tokens.rejected", ["invalid_config"]],
    ]);
  });

  it("serializes concurrent reloads and applies a reload whose audit entry cannot be written", async () => {
    let failures = 0;
    const failing: AuditSink = {
      append: (_e: AuditEvent) => Promise.reject(new Error("disk full")),
      check: () => Promise.resolve(),
    };
    const holder = await TokenHolder.open(file, { logger, audit: failing, metrics: { ...NOOP_METRICS, auditWriteFailed: () => (failures += 1) } });
    await writeTokensFileAtomic(file, { version: 1, tokens: [NEW] });
    expect(await Promise.all([holder.reload(), holder.reload(), holder.reload()])).toEqual([true, true, true]);
    expect(holder.current().ids()).toEqual(["new"]);
    expect(failures).toBe(3);
  });

  it("reloads by itself when the file is replaced (directory watch, debounced)", async () => {
    const audit = new MemoryAuditSink();
    const holder = await TokenHolder.open(file, { logger, audit, debounceMs: 10 });
    holder.watch();
    try {
      await writeTokensFileAtomic(file, { version: 1, tokens: [CI] });
      await until(() => holder.current().authenticate(servingToken) === undefined);
      expect(holder.current().ids()).toEqual(["ci"]);
      expect(audit.events.at(-1)).toMatchObject({ type: "tokens.reloaded", details: { removed: ["serving"] } });
    } finally {
      holder.close();
    }
  });
});

describe("ops.reloadTokens", () => {
  let ops: Ops | undefined;
  afterEach(async () => {
    await ops?.close();
    ops = undefined;
  });

  function appFor(o: Ops) {
    return tinyApp((app) => {
      app.get("/read", o.access.require("read"), ok);
    });
  }

  it("swaps the token set behind ops.access", async () => {
    ops = await createOps(loadOpsConfig({ MODELGATE_TOKENS_FILE: file, MODELGATE_RATE_LIMIT_RPS: "0" }, { dataDir: dir }), logger);
    const app = appFor(ops);
    expect((await request(app).get("/read").set("Authorization", `Bearer ${servingToken}`)).status).toBe(200);
    await writeTokensFileAtomic(file, { version: 1, tokens: [CI] });
    expect(await ops.reloadTokens()).toBe(true);
    expect((await request(app).get("/read").set("Authorization", `Bearer ${servingToken}`)).status).toBe(401);
    expect((await request(app).get("/read").set("Authorization", `Bearer ${ciToken}`)).status).toBe(200);
  });

  it("a gateway started open (empty tokens file, loopback) closes when tokens appear and never reopens when they are all revoked", async () => {
    await writeTokensFileAtomic(file, { version: 1, tokens: [] });
    ops = await createOps(loadOpsConfig({ MODELGATE_TOKENS_FILE: file, MODELGATE_RATE_LIMIT_RPS: "0" }, { dataDir: dir }), logger);
    expect(ops.tokensConfigured).toBe(false);
    const app = appFor(ops);
    expect((await request(app).get("/read")).status).toBe(200);

    await writeTokensFileAtomic(file, { version: 1, tokens: [SERVING] });
    expect(await ops.reloadTokens()).toBe(true);
    expect((await request(app).get("/read")).status).toBe(401);
    expect((await request(app).get("/read").set("Authorization", `Bearer ${servingToken}`)).status).toBe(200);

    await writeTokensFileAtomic(file, { version: 1, tokens: [] });
    expect(await ops.reloadTokens()).toBe(true);
    expect((await request(app).get("/read")).status).toBe(401);
    expect((await request(app).get("/read").set("Authorization", `Bearer ${servingToken}`)).status).toBe(401);
  });

  it("resolves false without a tokens file", async () => {
    ops = await createOps(loadOpsConfig({ MODELGATE_RATE_LIMIT_RPS: "0" }, { dataDir: dir }), logger);
    expect(await ops.reloadTokens()).toBe(false);
  });
});
