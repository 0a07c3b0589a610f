import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import request from "supertest";
import { allowlistJson, listFiles, makeEnv, makePublisher, sha256Hex, signFor, type TestEnv } from "./helpers";

const research = makePublisher();
const serving = makePublisher();
const SOURCES = [
  { id: "research", keys: [{ pub: research }] },
  { id: "serving", keys: [{ pub: serving }] },
];

async function publish(env: TestEnv, bytes: Buffer, name: string, pub = serving): Promise<string> {
  const res = await request(env.app)
    .post("/v1/artifacts")
    .field("signature", signFor(pub, bytes, name))
    .attach("artifact", bytes, "m.safetensors");
  expect([200, 201]).toContain(res.status);
  return sha256Hex(bytes);
}

/** Poll a condition (an fs event's effect), bounded; not a timing sleep. */
async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Raw GET that reports how many bytes arrived and whether the response completed. */
function rawGet(env: TestEnv, urlPath: string): Promise<{ status: number; received: number; complete: boolean; contentLength: number }> {
  return new Promise((resolve) => {
    const server = env.app.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      const req = http.get({ host: "127.0.0.1", port, path: urlPath }, (res) => {
        let received = 0;
        let complete = false;
        res.on("data", (c: Buffer) => {
          received += c.length;
        });
        res.on("end", () => {
          complete = true;
        });
        res.on("close", () => {
          server.close();
          resolve({ status: res.statusCode ?? 0, received, complete: complete && res.complete, contentLength: Number(res.headers["content-length"]) });
        });
        res.on("error", () => undefined);
      });
      req.on("error", () => {
        server.close();
        resolve({ status: 0, received: 0, complete: false, contentLength: 0 });
      });
    });
  });
}

describe("fetch by digest", () => {
  let env: TestEnv;
  let bytes: Buffer;
  let hex: string;
  let clock: number;

  beforeEach(async () => {
    clock = Date.parse("2026-06-01T12:00:00.000Z");
    env = await makeEnv({ sources: SOURCES, now: () => new Date((clock += 1000)) });
    bytes = randomBytes(300 * 1024);
    hex = await publish(env, bytes, "models/a");
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("streams the bytes with content-addressing headers, by sha256: digest or bare hex", async () => {
    const res = await request(env.app)
      .get(`/v1/artifacts/sha256:${hex}`)
      .buffer(true)
      .parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => {
          cb(null, Buffer.concat(chunks));
        });
      });
    expect(res.status).toBe(200);
    expect(Buffer.compare(res.body as Buffer, bytes)).toBe(0);
    expect(res.headers["content-length"]).toBe(String(bytes.length));
    expect(res.headers.etag).toBe(`"sha256:${hex}"`);
    expect(res.headers["docker-content-digest"]).toBe(`sha256:${hex}`);
    expect(res.headers["repr-digest"]).toBe(`sha-256=:${Buffer.from(hex, "hex").toString("base64")}:`);
    expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    expect(res.headers["accept-ranges"]).toBe("bytes");
    const bare = await request(env.app).get(`/v1/artifacts/${hex}`);
    expect(bare.status).toBe(200);
  });

  it("HEAD answers the headers without a body; If-None-Match answers 304", async () => {
    const res = await request(env.app).head(`/v1/artifacts/sha256:${hex}`);
    expect(res.status).toBe(200);
    expect(res.headers["content-length"]).toBe(String(bytes.length));
    expect(res.headers["docker-content-digest"]).toBe(`sha256:${hex}`);
    const cached = await request(env.app).get(`/v1/artifacts/sha256:${hex}`).set("If-None-Match", `"sha256:${hex}"`);
    expect(cached.status).toBe(304);
  });

  it.each([
    ["bytes=10-19", 10, 19],
    ["bytes=100-", 100, 300 * 1024 - 1],
    ["bytes=-5", 300 * 1024 - 5, 300 * 1024 - 1],
    ["bytes=307000-999999999", 307000, 300 * 1024 - 1],
  ])("Range %s -> 206 with Content-Range", async (range, start, end) => {
    const res = await request(env.app)
      .get(`/v1/artifacts/sha256:${hex}`)
      .set("Range", range)
      .buffer(true)
      .parse((r, cb) => {
        const chunks: Buffer[] = [];
        r.on("data", (c: Buffer) => chunks.push(c));
        r.on("end", () => {
          cb(null, Buffer.concat(chunks));
        });
      });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes ${String(start)}-${String(end)}/${String(bytes.length)}`);
    expect(res.headers["content-length"]).toBe(String(end - start + 1));
    expect(Buffer.compare(res.body as Buffer, bytes.subarray(start, end + 1))).toBe(0);
  });

  it.each(["bytes=999999999-", "bytes=5-2", "bytes=-0", "bytes=0-1,5-6", "bytes=abc", "bytes=-"])("Range %s -> 416 range_not_satisfiable", async (range) => {
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`).set("Range", range);
    expect(res.status).toBe(416);
    expect(res.headers["content-range"]).toBe(`bytes */${String(bytes.length)}`);
    expect(res).toFailWithCode("range_not_satisfiable");
  });

  it("ignores a Range in another unit and sends the whole artifact", async () => {
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`).set("Range", "items=0-1");
    expect(res.status).toBe(200);
  });

  it.each(["sha256:XYZ", `SHA256:${"a".repeat(64)}`, `sha256:${"A".repeat(64)}`, `md5:${"a".repeat(32)}`, "..%2F..%2Fetc%2Fpasswd", "a".repeat(63)])(
    "digest %s -> 400 bad_request",
    async (digest) => {
      const res = await request(env.app).get(`/v1/artifacts/${digest}`);
      expect(res).toFailWithCode("bad_request", 400);
    },
  );

  it("unknown digest -> 404 not_found (GET, HEAD, metadata)", async () => {
    const unknown = sha256Hex(Buffer.from("unknown"));
    expect(await request(env.app).get(`/v1/artifacts/sha256:${unknown}`)).toFailWithCode("not_found");
    expect((await request(env.app).head(`/v1/artifacts/sha256:${unknown}`)).status).toBe(404);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${unknown}/metadata`)).status).toBe(404);
  });

  it("metadata carries the stored envelopes and the current trust verdict", async () => {
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ digest: `sha256:${hex}`, size: bytes.length, name: "models/a", trust: { status: "trusted", source: "serving" } });
    // Ed25519 is deterministic: the stored envelope is byte-for-byte the one uploaded
    expect(res.body.signatures[0].envelope).toBe(signFor(serving, bytes, "models/a"));
    expect(res.body.inspection.verdict).toBe("accept");
  });

  it("lists newest first, paginated, filtered by source and name", async () => {
    const b = randomBytes(1000);
    const c = randomBytes(1000);
    const hb = await publish(env, b, "models/b", research);
    const hc = await publish(env, c, "models/c");
    const first = await request(env.app).get("/v1/artifacts?limit=2");
    expect(first.status).toBe(200);
    const digests = (body: unknown): string[] => (body as { items: { digest: string }[] }).items.map((i) => i.digest);
    expect(digests(first.body)).toEqual([`sha256:${hc}`, `sha256:${hb}`]);
    const second = await request(env.app).get(`/v1/artifacts?limit=2&cursor=${encodeURIComponent(first.body.nextCursor as string)}`);
    expect(digests(second.body)).toEqual([`sha256:${hex}`]);
    expect(second.body.nextCursor).toBeUndefined();
    const bySource = await request(env.app).get("/v1/artifacts?source=research");
    expect(bySource.body.items).toEqual([expect.objectContaining({ digest: `sha256:${hb}`, sources: ["research"], name: "models/b" })]);
    const byName = await request(env.app).get("/v1/artifacts?name=models/c");
    expect(byName.body.items).toHaveLength(1);
    for (const bad of ["limit=0", "limit=1001", "limit=abc", "cursor=zzz", "other=1", "source=a&source=b"]) {
      const res = await request(env.app).get(`/v1/artifacts?${bad}`);
      expect(res).toFailWithCode("bad_request", 400);
    }
  });

  it("revocation takes effect on fetch after a reload; an invalid allowlist keeps the previous one", async () => {
    await fsp.writeFile(
      env.allowlistPath,
      allowlistJson([
        { id: "research", keys: [{ pub: research }] },
        { id: "serving", keys: [{ pub: serving, revoked: true }] },
      ]),
    );
    expect(await env.holder.reload()).toBe(true);
    const refused = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(refused).toFailWithCode("key_revoked", 403);
    expect((await request(env.app).head(`/v1/artifacts/sha256:${hex}`)).status).toBe(403);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`)).body.trust).toEqual({ status: "refused", code: "key_revoked" });
    expect(env.audit.events.map((e) => e.type)).toEqual(["upload.accepted", "allowlist.reloaded", "fetch.refused", "fetch.refused"]);
    expect(env.audit.events[2]).toMatchObject({ digest: `sha256:${hex}`, codes: ["key_revoked"] });

    await fsp.writeFile(env.allowlistPath, "{ not json");
    expect(await env.holder.reload()).toBe(false);
    expect(env.audit.events.at(-1)).toMatchObject({ type: "allowlist.rejected", codes: ["invalid_allowlist"] });
    expect(await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).toFailWithCode("key_revoked");

    await fsp.writeFile(env.allowlistPath, allowlistJson([{ id: "research", keys: [{ pub: research }] }]));
    expect(await env.holder.reload()).toBe(true);
    expect(await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).toFailWithCode("untrusted_source");

    // a second trusted signature keeps the artifact servable
    await publish(env, bytes, "models/a", research);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
  });

  it("reloads when the allowlist file changes (fs watch)", async () => {
    env.holder.watch();
    await fsp.writeFile(env.allowlistPath, allowlistJson([{ id: "research", keys: [{ pub: research }] }]));
    await waitFor(() => env.audit.events.some((e) => e.type === "allowlist.reloaded"));
    expect(await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).toFailWithCode("untrusted_source");
  });

  it("a refused fetch whose audit entry cannot be written answers 503", async () => {
    await fsp.writeFile(env.allowlistPath, allowlistJson([{ id: "research", keys: [{ pub: research }] }]));
    await env.holder.reload();
    env.audit.failing = true;
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(res).toFailWithCode("unavailable", 503);
  });

  it("a blob corrupted on disk is never served whole and is quarantined", async () => {
    // several read chunks, so the status line and most of the body are sent before the mismatch is known
    const big = randomBytes(3 * 1024 * 1024 + 17);
    hex = await publish(env, big, "models/big");
    const blobPath = env.store.blobPath(hex);
    const corrupted = Buffer.from(big);
    corrupted[corrupted.length - 1] = corrupted[corrupted.length - 1]! ^ 0x01;
    await fsp.writeFile(blobPath, corrupted);
    const got = await rawGet(env, `/v1/artifacts/sha256:${hex}`);
    expect(got.status).toBe(200);
    expect(got.contentLength).toBe(big.length);
    expect(got.complete).toBe(false);
    expect(got.received).toBeGreaterThan(0);
    expect(got.received).toBeLessThan(big.length);
    // the server quarantines after cutting the connection: wait for its audit entry
    await waitFor(() => env.audit.events.some((e) => e.type === "fetch.refused"));
    expect(await env.store.stat(hex)).toBeUndefined();
    const quarantined = await listFiles(path.join(env.dataDir, "quarantine"));
    expect(quarantined.map((f) => path.basename(f)).sort()).toEqual(["blob", "reason.txt", "record.json"]);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(404);
    expect(env.audit.events.at(-1)).toMatchObject({ type: "fetch.refused", codes: ["integrity_error"] });
  });

  it("a truncated blob is refused before streaming and quarantined", async () => {
    await fsp.truncate(env.store.blobPath(hex), 100);
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(res).toFailWithCode("integrity_error", 500);
    expect(await env.store.stat(hex)).toBeUndefined();
  });
});
