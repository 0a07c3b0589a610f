import * as http from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { MAX_SIGNATURE_HEADER_BYTES } from "../../src/limits";
import { envelopeFromHeader } from "../../src/http/rawUpload";
import {
  acceptingInspector,
  artifactBytes,
  dangerousInspector,
  listFiles,
  makeEnv,
  makePublisher,
  sha256Hex,
  signFor,
  streamUntilAnswered,
  type StreamedUpload,
  type TestEnv,
} from "./helpers";

const serving = makePublisher();
const research = makePublisher();
const stranger = makePublisher();
const revoked = makePublisher();
const SOURCES = [
  { id: "serving", keys: [{ pub: serving }] },
  { id: "research", keys: [{ pub: research }], names: ["research/**"] },
  { id: "old", keys: [{ pub: revoked, revoked: true }] },
];

const b64 = (json: string): string => Buffer.from(json, "utf8").toString("base64");

function put(env: TestEnv, opts: { body?: Buffer; envelope?: string; header?: string; name?: string; type?: string }) {
  let req = request(env.app)
    .put("/v1/artifacts")
    .set("Content-Type", opts.type ?? "application/octet-stream");
  const header = opts.header ?? (opts.envelope !== undefined ? b64(opts.envelope) : undefined);
  if (header !== undefined) req = req.set("Modelgate-Signature", header);
  if (opts.name !== undefined) req = req.set("Modelgate-Name", opts.name);
  return req.send(opts.body ?? Buffer.alloc(0));
}

describe("PUT /v1/artifacts (raw body, envelope in Modelgate-Signature)", () => {
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({ sources: SOURCES, inspect: acceptingInspector });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("accepts a signed artifact, stores it by hash, answers like POST and then 200 for the same bytes", async () => {
    const bytes = artifactBytes("raw-happy", 100_000);
    const res = await put(env, { body: bytes, envelope: signFor(serving, bytes, "serving/model") });
    expect(res.status).toBe(201);
    expect(res.body).toEqual(
      expect.objectContaining({ digest: `sha256:${sha256Hex(bytes)}`, size: bytes.length, name: "serving/model", source: "serving", keyIds: [serving.keyId] }),
    );
    const fetched = await request(env.app)
      .get(`/v1/artifacts/${sha256Hex(bytes)}`)
      .buffer(true);
    expect(Buffer.compare(fetched.body as Buffer, bytes)).toBe(0);
    const again = await put(env, { body: bytes, envelope: signFor(serving, bytes, "serving/model"), name: "serving/model" });
    expect(again.status).toBe(200);
    expect(env.audit.events.map((e) => e.type)).toEqual(["upload.accepted", "upload.accepted"]);
    expect((await listFiles(env.dataDir)).filter((f) => f.startsWith("tmp"))).toEqual([]);
  });

  describe("rejections leave nothing in the store and are audited", () => {
    const bytes = artifactBytes("raw-reject");
    const cases: [string, string, number, () => Parameters<typeof put>[1]][] = [
      ["unknown key", "untrusted_source", 403, () => ({ body: bytes, envelope: signFor(stranger, bytes, "x") })],
      ["revoked key", "key_revoked", 403, () => ({ body: bytes, envelope: signFor(revoked, bytes, "x") })],
      ["name outside the source's globs", "name_not_allowed", 403, () => ({ body: bytes, envelope: signFor(research, bytes, "serving/x") })],
      ["Modelgate-Name differs from the statement", "name_not_allowed", 403, () => ({ body: bytes, envelope: signFor(serving, bytes, "a"), name: "b" })],
      ["tampered file (digest differs)", "digest_mismatch", 422, () => ({ body: bytes, envelope: signFor(serving, artifactBytes("other"), "x") })],
      ["garbage envelope", "malformed_signature", 400, () => ({ body: bytes, envelope: "{not json" })],
      ["missing signature header", "bad_request", 400, () => ({ body: bytes })],
      ["signature header not base64", "bad_request", 400, () => ({ body: bytes, header: "not*base64!" })],
      ["signature header over its cap", "too_large", 413, () => ({ body: bytes, header: "A".repeat(MAX_SIGNATURE_HEADER_BYTES + 4) })],
      ["name header too long", "invalid_name", 400, () => ({ body: bytes, envelope: signFor(serving, bytes, "x"), name: "n".repeat(513) })],
      ["not application/octet-stream", "unsupported_media_type", 415, () => ({ body: bytes, envelope: signFor(serving, bytes, "x"), type: "text/plain" })],
    ];
    it.each(cases)("%s -> %s (%i)", async (_label, code, status, opts) => {
      const res = await put(env, opts());
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(await listFiles(env.dataDir)).toEqual([]);
      expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: [code] })]);
    });

    it("a dangerous artifact -> unsafe_artifact (422), nothing stored", async () => {
      const e = await makeEnv({ sources: SOURCES, inspect: dangerousInspector });
      try {
        const res = await put(e, { body: bytes, envelope: signFor(serving, bytes, "x") });
        expect(res).toFailWithCode("unsafe_artifact", 422);
        expect(await listFiles(e.dataDir)).toEqual([]);
      } finally {
        await e.cleanup();
      }
    });
  });

  it("enforces the size cap: too_large at limit+1 (declared), accepted at the limit", async () => {
    const e = await makeEnv({ sources: SOURCES, maxUploadBytes: 10_000 });
    try {
      const over = artifactBytes("over", 10_001);
      const res = await put(e, { body: over, envelope: signFor(serving, over, "x") });
      expect(res).toFailWithCode("too_large", 413);
      expect(await listFiles(e.dataDir)).toEqual([]);
      const at = artifactBytes("at", 10_000);
      expect((await put(e, { body: at, envelope: signFor(serving, at, "x") })).status).toBe(201);
    } finally {
      await e.cleanup();
    }
  });

  it("decodes the header strictly: unpadded base64 is accepted, other alphabets are not", () => {
    expect(envelopeFromHeader(Buffer.from("{}").toString("base64").replace(/=+$/, ""))).toBe("{}");
    let code: string | undefined;
    try {
      envelopeFromHeader("e30-");
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).toBe("bad_request");
  });
});

/** A chunked (unsized) PUT streaming up to maxBytes until the server answers. */
function streamingPut(env: TestEnv, envelope: string, maxBytes: number): Promise<StreamedUpload> {
  return streamUntilAnswered(env, { method: "PUT", headers: { "Content-Type": "application/octet-stream", "Modelgate-Signature": b64(envelope) } }, maxBytes);
}

describe("PUT /v1/artifacts refuses large bodies early", () => {
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({ sources: [{ id: "t", keys: [{ pub: serving }] }], maxUploadBytes: 8 * 1024 * 1024 });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("an untrusted signature is refused before the body is stored (no temp file, answered early)", async () => {
    let tempFilesSeen = 0;
    const begin = env.store.begin.bind(env.store);
    env.store.begin = (options) => {
      tempFilesSeen += 1;
      return begin(options);
    };
    const res = await streamingPut(env, signFor(stranger, Buffer.from("x"), "big"), 512 * 1024 * 1024);
    expect(res.status).toBe(403);
    expect(res.code).toBe("untrusted_source");
    expect(res.written).toBeLessThan(64 * 1024 * 1024);
    expect(tempFilesSeen).toBe(0);
    expect(await listFiles(env.dataDir)).toEqual([]);
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: ["untrusted_source"] })]);
  });

  it("an unsized body over the cap is refused mid-stream with 413 and its temp file removed", async () => {
    const res = await streamingPut(env, signFor(serving, Buffer.from("x"), "big"), 512 * 1024 * 1024);
    expect(res.status).toBe(413);
    expect(res.code).toBe("too_large");
    expect(res.written).toBeLessThan(64 * 1024 * 1024);
    expect(await listFiles(env.dataDir)).toEqual([]);
  });

  it("a client that disconnects mid-body leaves nothing behind and is audited as rejected", async () => {
    const audited = new Promise<void>((resolve) => {
      const append = env.audit.append.bind(env.audit);
      env.audit.append = async (event) => {
        await append(event);
        resolve();
      };
    });
    const server = env.app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    try {
      const { port } = server.address() as AddressInfo;
      const req = http.request({
        host: "127.0.0.1",
        port,
        method: "PUT",
        path: "/v1/artifacts",
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Length": String(4 * 1024 * 1024),
          "Modelgate-Signature": b64(signFor(serving, Buffer.from("x"), "cut")),
        },
      });
      req.on("error", () => undefined);
      req.write(Buffer.alloc(1024 * 1024, 1), () => {
        req.destroy();
      });
      await audited;
      expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected" })]);
      expect(await listFiles(env.dataDir)).toEqual([]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
