import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Express } from "express";
import pino from "pino";
import request from "supertest";
import { verifyAuditLog } from "../../src/audit/fileLog";
import { generateToken, hashToken, writeTokensFileAtomic } from "../../src/auth/tokens";
import { loadConfig } from "../../src/config";
import { inspectFile } from "../../src/formats/inspectFile";
import { AllowlistHolder } from "../../src/reload/allowlistHolder";
import { createApp } from "../../src/http/app";
import { createOps, loadOpsConfig, opsAppDeps, type Ops } from "../../src/ops";
import { FsArtifactStore } from "../../src/store/fsStore";
import { sha256Hex, type Publisher } from "../support/publisher";
import { uniqueSafetensors } from "../support/bytes";
import { multipart, trustNewPublisher } from "./serverProcess";

/**
 * HTTP abuse against the app wired the way `serve` wires it (createOps: tokens, rate limit,
 * upload cap, security headers, /metrics, /v1/audit): every hostile request gets a typed error,
 * nothing is stored, no temp file stays behind, and the audit chain stays valid.
 */
describe("HTTP abuse (app wired with createOps)", () => {
  let dir: string;
  let dataDir: string;
  let app: Express;
  let ops: Ops;
  let holder: AllowlistHolder;
  let key: Publisher;
  const publisher = generateToken();
  const admin = generateToken();
  const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mg-faults-abuse-"));
    dataDir = path.join(dir, "data");
    const allowlistPath = path.join(dir, "allowlist.json");
    key = trustNewPublisher(allowlistPath);
    const tokensFile = path.join(dir, "tokens.json");
    const createdAt = new Date().toISOString();
    await writeTokensFileAtomic(tokensFile, {
      version: 1,
      tokens: [
        { id: "ci", sha256: hashToken(publisher), scopes: ["publish", "read"], createdAt },
        { id: "ops", sha256: hashToken(admin), scopes: ["admin", "metrics"], createdAt },
      ],
    });
    const logger = pino({ level: "silent" });
    ops = await createOps(
      loadOpsConfig({ MODELGATE_TOKENS_FILE: tokensFile, MODELGATE_RATE_LIMIT_RPS: "1", MODELGATE_RATE_LIMIT_BURST: "1000" }, { dataDir }),
      logger,
    );
    const store = new FsArtifactStore(dataDir);
    await store.init();
    holder = new AllowlistHolder(allowlistPath, { logger, audit: ops.audit, metrics: ops.metrics });
    app = createApp({
      config: loadConfig({ MODELGATE_DATA_DIR: dataDir, MODELGATE_ALLOWLIST: allowlistPath }),
      logger,
      now: () => new Date(),
      store,
      allowlist: holder,
      inspect: inspectFile,
      ...opsAppDeps(ops),
    });
  });
  afterAll(async () => {
    holder.close();
    await ops.close();
    await rm(dir, { recursive: true, force: true });
  });

  const tmpFiles = () => readdir(path.join(dataDir, "tmp"));
  const body = (name: string, bytes: Buffer, fieldName = name) => {
    const parts = multipart(key, name, bytes, fieldName);
    return { contentType: parts.contentType, data: Buffer.concat([parts.head, bytes, parts.tail]), parts };
  };

  it("needs a token to publish and read; hardening headers and a JSON 404 everywhere", async () => {
    const b = body("abuse/x.safetensors", uniqueSafetensors(1024));
    const anon = await request(app).post("/v1/artifacts").set("Content-Type", b.contentType).send(b.data);
    expect(anon).toFailWithCode("unauthenticated", 401);
    expect((await request(app).get("/v1/artifacts")).status).toBe(401);
    const missing = await request(app).get("/no/such/route").set(auth(publisher));
    expect(missing).toFailWithCode("not_found", 404);
    expect(missing.headers["x-powered-by"]).toBeUndefined();
    expect(missing.headers["x-content-type-options"]).toBe("nosniff");
    expect(missing.headers["content-security-policy"]).toMatch(/default-src 'none'/);
  });

  it("path traversal in digests is refused and never reaches the filesystem", async () => {
    for (const digest of [
      "..%2F..%2Fetc%2Fpasswd",
      "sha256:..%2F..%2Fx",
      `sha256:${"a".repeat(63)}`,
      `sha256:${"A".repeat(64)}`,
      `md5:${"a".repeat(32)}`,
      "%00",
    ]) {
      const res = await request(app).get(`/v1/artifacts/${digest}`).set(auth(publisher));
      expect([400, 404]).toContain(res.status);
      expect(["bad_request", "not_found"]).toContain(res.body.error.code);
    }
  });

  it("names are opaque identifiers: path-like names never touch the filesystem, control characters and huge names are refused", async () => {
    const before = (await readdir(dir)).sort();
    for (const name of ["nul\u0000byte.safetensors", "bell\u0007.safetensors", "x".repeat(600)]) {
      const bytes = uniqueSafetensors(1024);
      // Signed under a valid name; the hostile one comes as the form field.
      const b = body("abuse/valid.safetensors", bytes, name);
      const res = await request(app).post("/v1/artifacts").set(auth(publisher)).set("Content-Type", b.contentType).send(b.data);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(
        (
          await request(app)
            .get(`/v1/artifacts/sha256:${sha256Hex(bytes)}`)
            .set(auth(publisher))
        ).status,
      ).toBe(404);
    }
    for (const name of ["../../escape.safetensors", "/abs/escape.safetensors"]) {
      const bytes = uniqueSafetensors(1024);
      // sign refuses to build such a statement now; the path-like name comes as the form field
      // (signed path-like names: test/http/redteamTrust.test.ts).
      const b = body("abuse/escape.safetensors", bytes, name);
      const res = await request(app).post("/v1/artifacts").set(auth(publisher)).set("Content-Type", b.contentType).send(b.data);
      // Signed path-like names are refused by the name rule (issue 10): never stored.
      expect(res).toFailWithCode("invalid_name", 400);
      expect(
        (
          await request(app)
            .get(`/v1/artifacts/sha256:${sha256Hex(bytes)}`)
            .set(auth(publisher))
        ).status,
      ).toBe(404);
    }
    // Nothing appeared beside the data dir or at the absolute path: blobs live under their digest.
    expect((await readdir(dir)).sort()).toEqual(before);
    await expect(readdir("/abs")).rejects.toMatchObject({ code: "ENOENT" });
    expect(await tmpFiles()).toEqual([]);
  });

  it("malformed multipart, missing parts, wrong content types and JSON bombs get typed 4xx answers", async () => {
    const bytes = uniqueSafetensors(1024);
    const ok = body("abuse/ok.safetensors", bytes);
    const boundary = /boundary=(.*)$/.exec(ok.contentType)![1]!;
    const cases: { type: string; data: Buffer | string; codes: string[] }[] = [
      { type: "application/json", data: "{}", codes: ["unsupported_media_type"] },
      { type: "text/plain", data: "hello", codes: ["unsupported_media_type"] },
      { type: "multipart/form-data", data: ok.data, codes: ["bad_request"] }, // no boundary
      { type: ok.contentType, data: "garbage without any boundary", codes: ["bad_request"] },
      { type: ok.contentType, data: ok.data.subarray(0, ok.data.length - 200), codes: ["bad_request"] }, // truncated
      // artifact without a signature part
      {
        type: ok.contentType,
        data: Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="m.safetensors"\r\n\r\n`),
          bytes,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]),
        codes: ["bad_request", "malformed_signature"],
      },
      // signature without an artifact
      {
        type: ok.contentType,
        data: Buffer.concat([
          ok.parts.head.subarray(0, ok.parts.head.indexOf(`--${boundary}\r\nContent-Disposition: form-data; name="name"`)),
          Buffer.from(`--${boundary}--\r\n`),
        ]),
        codes: ["bad_request"],
      },
      // a JSON bomb as the envelope: deep nesting, then a huge flat array
      ...[`${"[".repeat(100_000)}${"]".repeat(100_000)}`, `[${"0,".repeat(200_000)}0]`].map((bomb) => ({
        type: `multipart/form-data; boundary=${boundary}`,
        data: Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="signature"; filename="e.json"\r\n\r\n${bomb}\r\n`),
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="m.safetensors"\r\n\r\n`),
          bytes,
          Buffer.from(`\r\n--${boundary}--\r\n`),
        ]),
        codes: ["malformed_signature", "too_large", "bad_request"],
      })),
      // a huge non-file field value
      {
        type: ok.contentType,
        data: Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${"n".repeat(1024 * 1024)}\r\n`),
          ok.data.subarray(ok.data.indexOf(`--${boundary}`)),
        ]),
        codes: ["too_large", "bad_request"],
      },
    ];
    for (const c of cases) {
      const res = await request(app).post("/v1/artifacts").set(auth(publisher)).set("Content-Type", c.type).send(c.data);
      expect({ type: c.type.slice(0, 30), status: res.status < 500, code: c.codes.includes(res.body.error?.code as string) }).toEqual({
        type: c.type.slice(0, 30),
        status: true,
        code: true,
      });
    }
    expect(
      (
        await request(app)
          .get(`/v1/artifacts/sha256:${sha256Hex(bytes)}`)
          .set(auth(publisher))
      ).status,
    ).toBe(404);
    expect(await tmpFiles()).toEqual([]);
  });

  it("leaves a valid audit chain readable by admins only", async () => {
    expect((await request(app).get("/v1/audit").set(auth(publisher))).status).toBe(403);
    const res = await request(app).get("/v1/audit?limit=1000").set(auth(admin));
    expect(res.status).toBe(200);
    const types = (res.body.entries as { type: string }[]).map((e) => e.type);
    expect(types).toContain("upload.rejected");
    await expect(verifyAuditLog(ops.audit.file)).resolves.toMatchObject({ ok: true });
  });

  it("survives thousands of small requests, rate-limiting them per token with 429 + Retry-After", async () => {
    let limited = 0;
    let okCount = 0;
    const batch = 50;
    for (let i = 0; i < 2000; i += batch) {
      const answers = await Promise.all(Array.from({ length: batch }, () => request(app).get("/v1/artifacts?limit=1").set(auth(publisher))));
      for (const r of answers) {
        if (r.status === 429) {
          limited += 1;
          expect(r).toFailWithCode("rate_limited");
          expect(Number(r.headers["retry-after"])).toBeGreaterThanOrEqual(1);
        } else if (r.status === 200) okCount += 1;
      }
    }
    expect(okCount + limited).toBe(2000);
    expect(limited).toBeGreaterThan(0);
    expect(okCount).toBeGreaterThanOrEqual(900);
    // Another token has its own bucket, health probes are never limited, and metrics counted it.
    expect((await request(app).get("/healthz")).status).toBe(200);
    const metrics = await request(app).get("/metrics").set(auth(admin));
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/modelgate_rate_limited_total [1-9]/);
  });
});
