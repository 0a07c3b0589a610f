import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import request from "supertest";
import { MemoryAuditSink } from "../../src/audit/types";
import {
  generateToken,
  hashToken,
  parseBearer,
  parseTokensFile,
  readTokensFile,
  TokenAccessControl,
  TokenStore,
  writeTokensFileAtomic,
  type TokensFile,
} from "../../src/auth/tokens";
import type { AuditSink } from "../../src/audit/types";
import { MAX_TOKEN_LENGTH } from "../../src/limits";
import { ok, tinyApp } from "../http/middleware/tinyApp";

const publisher = generateToken();
const reader = generateToken();
const admin = generateToken();

function file(): TokensFile {
  const createdAt = "2026-01-01T00:00:00.000Z";
  return {
    version: 1,
    tokens: [
      { id: "ci", sha256: hashToken(publisher), scopes: ["publish", "read"], createdAt },
      { id: "serving", sha256: hashToken(reader), scopes: ["read"], createdAt },
      { id: "ops", sha256: hashToken(admin), scopes: ["admin"], createdAt },
    ],
  };
}

function appWith(options: { anonymousRead: boolean; audit?: AuditSink }) {
  const access = new TokenAccessControl(new TokenStore(file()), options);
  return tinyApp((app) => {
    app.get("/read", access.require("read"), ok);
    app.post("/publish", access.require("publish"), ok);
    app.get("/admin", access.require("admin"), ok);
  });
}

describe("tokens", () => {
  it("generates distinct prefixed tokens and hashes them to 64 hex chars", () => {
    expect(publisher).toMatch(/^mgt_[A-Za-z0-9_-]{43}$/);
    expect(publisher).not.toBe(reader);
    expect(hashToken("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("authenticates by hash and never matches an unknown or near-miss token", () => {
    const store = new TokenStore(file());
    expect(store.authenticate(publisher)?.id).toBe("ci");
    expect(store.authenticate(admin)?.id).toBe("ops");
    expect(store.authenticate(`${publisher}x`)).toBeUndefined();
    expect(store.authenticate("")).toBeUndefined();
  });

  it("parses Bearer headers strictly", () => {
    expect(parseBearer(undefined)).toEqual({ kind: "none" });
    expect(parseBearer(`Bearer ${publisher}`)).toEqual({ kind: "token", token: publisher });
    expect(parseBearer(`bearer ${publisher}`)).toEqual({ kind: "token", token: publisher });
    expect(parseBearer(`Basic ${publisher}`)).toEqual({ kind: "malformed" });
    expect(parseBearer("Bearer")).toEqual({ kind: "malformed" });
    expect(parseBearer("Bearer a b")).toEqual({ kind: "malformed" });
    expect(parseBearer("Bearer tök")).toEqual({ kind: "malformed" });
    expect(parseBearer(`Bearer ${"a".repeat(MAX_TOKEN_LENGTH)}`).kind).toBe("token");
    expect(parseBearer(`Bearer ${"a".repeat(MAX_TOKEN_LENGTH + 1)}`)).toEqual({ kind: "malformed" });
  });

  it("validates the tokens file schema", () => {
    expect(parseTokensFile(JSON.stringify(file())).tokens).toHaveLength(3);
    const bad = [
      "not json",
      JSON.stringify({ version: 2, tokens: [] }),
      JSON.stringify({ version: 1, tokens: [{ id: "x", sha256: "zz", scopes: ["read"], createdAt: "t" }] }),
      JSON.stringify({ version: 1, tokens: [{ id: "x", sha256: "a".repeat(64), scopes: ["root"], createdAt: "t" }] }),
      JSON.stringify({ version: 1, tokens: [{ id: "x", sha256: "a".repeat(64), scopes: [], createdAt: "t" }] }),
      JSON.stringify({ version: 1, tokens: [{ id: "../x", sha256: "a".repeat(64), scopes: ["read"], createdAt: "t" }] }),
      JSON.stringify({ version: 1, tokens: [{ id: "x", sha256: "a".repeat(64), scopes: ["read"], createdAt: "t", token: "leak" }] }),
      JSON.stringify({
        version: 1,
        tokens: [
          { id: "x", sha256: "a".repeat(64), scopes: ["read"], createdAt: "t" },
          { id: "x", sha256: "b".repeat(64), scopes: ["read"], createdAt: "t" },
        ],
      }),
    ];
    for (const text of bad) {
      expect(() => parseTokensFile(text)).toFailWithCode("invalid_config");
    }
  });

  it("reads and writes the file atomically with mode 0600; a missing file is invalid_config unless allowed", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mg-tokens-"));
    try {
      const p = path.join(dir, "sub", "tokens.json");
      await expect(readTokensFile(p)).toFailWithCode("invalid_config");
      expect((await readTokensFile(p, { missingOk: true })).tokens).toEqual([]);
      await writeTokensFileAtomic(p, file());
      expect((await readTokensFile(p)).tokens.map((t) => t.id)).toEqual(["ci", "serving", "ops"]);
      expect((await stat(p)).mode & 0o777).toBe(0o600);
      const text = await readFile(p, "utf8");
      expect(text).not.toContain(publisher);
      await writeFile(p, "{}");
      await expect(readTokensFile(p)).toFailWithCode("invalid_config");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("TokenAccessControl", () => {
  it("answers 401 without a token, with a malformed header, or with an unknown token", async () => {
    const app = appWith({ anonymousRead: false });
    const none = await request(app).get("/read");
    expect(none).toFailWithCode("unauthenticated", 401);
    expect(none.headers["www-authenticate"]).toBe('Bearer realm="modelgate"');
    expect(await request(app).get("/read").set("Authorization", "Basic Zm9vOmJhcg==")).toFailWithCode("unauthenticated");
    expect((await request(app).get("/read").set("Authorization", `Bearer ${generateToken()}`)).status).toBe(401);
  });

  it("answers 403 for a valid token without the scope, and passes the token id on", async () => {
    const app = appWith({ anonymousRead: false });
    const denied = await request(app).post("/publish").set("Authorization", `Bearer ${reader}`);
    expect(denied).toFailWithCode("forbidden", 403);
    const allowed = await request(app).post("/publish").set("Authorization", `Bearer ${publisher}`);
    expect(allowed.status).toBe(200);
    expect(allowed.body.tokenId).toBe("ci");
    expect((await request(app).get("/admin").set("Authorization", `Bearer ${publisher}`)).status).toBe(403);
  });

  it("allows anonymous reads only when configured, and never anonymous publish", async () => {
    const open = appWith({ anonymousRead: true });
    expect((await request(open).get("/read")).status).toBe(200);
    expect((await request(open).post("/publish")).status).toBe(401);
    // A presented but bad token is refused even where anonymous reads are allowed.
    expect((await request(open).get("/read").set("Authorization", "Bearer nope")).status).toBe(401);
    expect((await request(appWith({ anonymousRead: false })).get("/read")).status).toBe(401);
  });

  it("audits admin actions before running them and refuses when the audit fails", async () => {
    const sink = new MemoryAuditSink();
    const app = appWith({ anonymousRead: false, audit: sink });
    const res = await request(app).get("/admin").set("Authorization", `Bearer ${admin}`);
    expect(res.status).toBe(200);
    expect(sink.events).toEqual([expect.objectContaining({ type: "admin.action", tokenId: "ops", details: { method: "GET", path: "/admin" } })]);
    expect(JSON.stringify(sink.events)).not.toContain(admin);

    const failing: AuditSink = { append: () => Promise.reject(new Error("disk gone")), check: () => Promise.resolve() };
    const refused = await request(appWith({ anonymousRead: false, audit: failing }))
      .get("/admin")
      .set("Authorization", `Bearer ${admin}`);
    expect(refused).toFailWithCode("unavailable", 503);
  });

  it("identify() returns the token id for rate limiting, undefined otherwise", () => {
    const access = new TokenAccessControl(new TokenStore(file()), { anonymousRead: false });
    const req = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } }) as never;
    expect(access.identify(req(`Bearer ${reader}`))).toBe("serving");
    expect(access.identify(req("Bearer nope"))).toBeUndefined();
    expect(access.identify(req())).toBeUndefined();
  });
});
