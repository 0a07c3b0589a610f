import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { artifactBytes, makeEnv, makePublisher, sha256Hex, signFor, type TestEnv } from "./helpers";

/**
 * Range and If-Range as RFC 9110 §14.1.1 and §13.1.5 define them: numbers are 1*DIGIT (leading
 * zeros, any length), a suffix longer than the representation selects all of it, and a Range
 * under an If-Range that does not match strongly is ignored (200, the whole body).
 */

const b64 = (s: string): string => Buffer.from(s).toString("base64");
const SIZE = 1000;
const pub = makePublisher();

function bodyOf(res: request.Response): Buffer {
  return res.body as Buffer;
}

function getBlob(env: TestEnv, hex: string, headers: Record<string, string>): request.Test {
  let req = request(env.app).get(`/v1/artifacts/sha256:${hex}`);
  for (const [k, v] of Object.entries(headers)) req = req.set(k, v);
  return req.buffer(true).parse((resp, cb) => {
    const chunks: Buffer[] = [];
    resp.on("data", (c: Buffer) => chunks.push(c));
    resp.on("end", () => {
      cb(null, Buffer.concat(chunks));
    });
  });
}

describe("Range and If-Range per RFC 9110", () => {
  let env: TestEnv;
  let bytes: Buffer;
  let hex: string;
  beforeAll(async () => {
    env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
    bytes = artifactBytes("rfc9110", SIZE);
    const up = await request(env.app)
      .put("/v1/artifacts")
      .set("Content-Type", "application/octet-stream")
      .set("Modelgate-Signature", b64(signFor(pub, bytes, "rfc")))
      .send(bytes);
    expect(up.status).toBe(201);
    hex = sha256Hex(bytes);
  });
  afterAll(async () => {
    await env.cleanup();
  });

  it.each([
    ["bytes=007-0010", 7, 10],
    ["bytes=0000000000000000000000007-0000000000000000000000010", 7, 10],
    ["bytes=0000000000000000000000990-", 990, SIZE - 1],
    ["bytes=-0000000000000000000000005", SIZE - 5, SIZE - 1],
    // A suffix at least the size selects the whole representation (§14.1.1).
    ["bytes=-1000", 0, SIZE - 1],
    ["bytes=-1001", 0, SIZE - 1],
    ["bytes=-99999999999999999999", 0, SIZE - 1],
    ["bytes=0-99999999999999999999", 0, SIZE - 1],
    ["bytes=10-99999999999999999999", 10, SIZE - 1],
  ])("%s -> 206 bytes %d-%d", async (range, start, end) => {
    const res = await getBlob(env, hex, { Range: range });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes ${String(start)}-${String(end)}/${String(SIZE)}`);
    expect(res.headers["content-length"]).toBe(String(end - start + 1));
    expect(bodyOf(res).equals(bytes.subarray(start, end + 1))).toBe(true);
  });

  it.each([
    "bytes=-0",
    "bytes=-0000",
    "bytes=1000-",
    "bytes=0000000000000000000001000-",
    "bytes=99999999999999999999-",
    "bytes=0-1,2-3",
    "bytes=1e3-",
    "bytes=5-2",
  ])("%s stays 416 range_not_satisfiable", async (range) => {
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`).set("Range", range);
    expect(res.status).toBe(416);
    expect(res.headers["content-range"]).toBe(`bytes */${String(SIZE)}`);
    expect(res).toFailWithCode("range_not_satisfiable");
  });

  it("If-Range with the strong ETag: the Range is served (206)", async () => {
    const res = await getBlob(env, hex, { Range: "bytes=10-19", "If-Range": `"sha256:${hex}"` });
    expect(res.status).toBe(206);
    expect(res.headers["content-range"]).toBe(`bytes 10-19/${String(SIZE)}`);
    expect(bodyOf(res).equals(bytes.subarray(10, 20))).toBe(true);
  });

  it.each([
    ["another entity tag", `"sha256:${"0".repeat(64)}"`],
    ["the weak form of the ETag (weak tags never match strongly)", 'W/"sha256:HEX"'],
    ["an HTTP-date (no Last-Modified is sent, so no date matches)", "Tue, 01 Dec 2026 10:00:00 GMT"],
    ["a date in the future", "Fri, 31 Dec 2100 23:59:59 GMT"],
    ["garbage", "not a validator"],
    ["the tag unquoted", "sha256:HEX"],
  ])("If-Range with %s: the Range is ignored, the whole body is sent (200)", async (_what, validator) => {
    const res = await getBlob(env, hex, { Range: "bytes=10-19", "If-Range": validator.replace("HEX", hex) });
    expect(res.status).toBe(200);
    expect(res.headers["content-range"]).toBeUndefined();
    expect(res.headers["content-length"]).toBe(String(SIZE));
    expect(bodyOf(res).equals(bytes)).toBe(true);
  });

  it("a non-matching If-Range also drops an unsatisfiable Range (200, not 416)", async () => {
    const res = await getBlob(env, hex, { Range: "bytes=5000-", "If-Range": `"sha256:${"0".repeat(64)}"` });
    expect(res.status).toBe(200);
    expect(bodyOf(res).equals(bytes)).toBe(true);
  });

  it("If-Range without a Range is ignored (200); HEAD follows the same rule", async () => {
    const plain = await getBlob(env, hex, { "If-Range": `"sha256:${hex}"` });
    expect(plain.status).toBe(200);
    expect(bodyOf(plain).equals(bytes)).toBe(true);
    const head = await request(env.app).head(`/v1/artifacts/sha256:${hex}`).set("Range", "bytes=0-9").set("If-Range", "Tue, 01 Dec 2026 10:00:00 GMT");
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(SIZE));
    const headMatch = await request(env.app).head(`/v1/artifacts/sha256:${hex}`).set("Range", "bytes=0-9").set("If-Range", `"sha256:${hex}"`);
    expect(headMatch.status).toBe(206);
    expect(headMatch.headers["content-length"]).toBe("10");
  });

  it("a matching If-None-Match answers 304 before the Range is looked at (§13.2.2)", async () => {
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`).set("If-None-Match", `"sha256:${hex}"`).set("Range", "bytes=abc");
    expect(res.status).toBe(304);
    expect(res.headers.etag).toBe(`"sha256:${hex}"`);
  });
});

describe("a whole-blob Range reached through a huge suffix or an ignored Range is re-hashed", () => {
  it.each([
    ["bytes=-99999999999999999999", {}, 206],
    ["bytes=0-1", { "If-Range": "Tue, 01 Dec 2026 10:00:00 GMT" }, 200],
  ])("%s %j on a corrupted blob is cut before its last byte and quarantined", async (range, extra, status) => {
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
    const served = http.createServer(env.app);
    try {
      const bytes = randomBytes(3 * 1024 * 1024 + 5);
      const up = await request(env.app)
        .put("/v1/artifacts")
        .set("Content-Type", "application/octet-stream")
        .set("Modelgate-Signature", b64(signFor(pub, bytes, "whole")))
        .send(bytes);
      expect(up.status).toBe(201);
      const hex = sha256Hex(bytes);
      const corrupted = Buffer.from(bytes);
      corrupted[0] = (corrupted[0] ?? 0) ^ 0x01;
      await fsp.writeFile(env.store.blobPath(hex), corrupted);
      await new Promise<void>((resolve) => served.listen(0, "127.0.0.1", resolve));
      const { port } = served.address() as AddressInfo;
      const got = await new Promise<{ status: number; received: number; complete: boolean }>((resolve) => {
        let received = 0;
        let code = 0;
        const req = http.get({ host: "127.0.0.1", port, path: `/v1/artifacts/sha256:${hex}`, headers: { Range: range, ...extra } }, (res) => {
          code = res.statusCode ?? 0;
          res.on("data", (c: Buffer) => (received += c.length));
          res.on("end", () => {
            resolve({ status: code, received, complete: res.complete });
          });
          res.on("error", () => {
            resolve({ status: code, received, complete: false });
          });
          res.on("aborted", () => {
            resolve({ status: code, received, complete: false });
          });
        });
        req.on("error", () => {
          resolve({ status: code, received, complete: false });
        });
      });
      expect(got.status).toBe(status);
      expect(got.complete).toBe(false);
      expect(got.received).toBeLessThan(bytes.length);
      // Quarantine runs after the cut; poll the store for it (bounded).
      const deadline = Date.now() + 5000;
      while ((await env.store.stat(hex)) !== undefined) {
        if (Date.now() > deadline) throw new Error("the corrupted blob was not quarantined");
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      served.closeAllConnections();
      served.close();
      await env.cleanup();
    }
  });
});
