import request from "supertest";
import { createApp } from "../../src/http/app";
import { MAX_ENVELOPE_BYTES, MAX_MULTIPART_FIELD_BYTES, MAX_MULTIPART_FIELD_NAME_BYTES, MAX_MULTIPART_FIELDS, MAX_MULTIPART_PARTS } from "../../src/limits";
import { buildPublishStatement } from "../../src/trust";
import { rawEnvelope } from "../support/publisher";
import {
  acceptingInspector,
  artifactBytes,
  dangerousInspector,
  listFiles,
  makeEnv,
  makePublisher,
  malformedInspector,
  sha256Hex,
  signFor,
  type TestEnv,
} from "./helpers";

const research = makePublisher();
const serving = makePublisher();
const stranger = makePublisher();
const revoked = makePublisher();
const expired = makePublisher();
const coSigner = makePublisher();

const SOURCES = [
  { id: "research", keys: [{ pub: research }], names: ["research/**"] },
  { id: "serving", keys: [{ pub: serving }] },
  {
    id: "old",
    keys: [
      { pub: revoked, revoked: true },
      { pub: expired, notAfter: "2026-01-01T00:00:00Z" },
    ],
  },
  { id: "pair", keys: [{ pub: coSigner }, { pub: makePublisher() }], threshold: 2 },
];

function upload(env: TestEnv, parts: { signature?: string; artifact?: Buffer; name?: string; signatureAsFile?: boolean; artifactFirst?: boolean }) {
  let req = request(env.app).post("/v1/artifacts");
  const addSig = () => {
    if (parts.signature === undefined) return;
    req = parts.signatureAsFile ? req.attach("signature", Buffer.from(parts.signature), "model.sig.json") : req.field("signature", parts.signature);
  };
  const addArtifact = () => {
    if (parts.artifact) req = req.attach("artifact", parts.artifact, "model.safetensors");
  };
  if (parts.artifactFirst) {
    addArtifact();
    addSig();
  } else {
    addSig();
    addArtifact();
  }
  if (parts.name !== undefined) req = req.field("name", parts.name);
  return req;
}

/** A rejected upload leaves no blob, no record and no temp file. */
async function expectStoreEmpty(env: TestEnv): Promise<void> {
  expect(await listFiles(env.dataDir)).toEqual([]);
}

describe("POST /v1/artifacts", () => {
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({ sources: SOURCES });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("accepts a signed artifact (signature first), stores it by hash and audits the decision", async () => {
    const bytes = artifactBytes("happy");
    const hex = sha256Hex(bytes);
    const res = await upload(env, { signature: signFor(research, bytes, "research/bert"), artifact: bytes });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      digest: `sha256:${hex}`,
      size: bytes.length,
      name: "research/bert",
      source: "research",
      keyIds: [research.keyId],
      format: "safetensors",
    });
    expect(res.body.inspection.verdict).toBe("accept");
    expect(res.body.createdAt).toBe("2026-06-01T12:00:00.000Z");
    expect(res.headers["x-request-id"]).toEqual(expect.any(String));
    expect(await listFiles(env.dataDir)).toEqual([`blobs/sha256/${hex.slice(0, 2)}/${hex}`, `blobs/sha256/${hex.slice(0, 2)}/${hex}.json`]);
    expect(env.audit.events).toEqual([
      expect.objectContaining({ type: "upload.accepted", digest: `sha256:${hex}`, source: "research", name: "research/bert" }),
    ]);
  });

  it("accepts the signature as a file part and after the artifact part, and an explicit matching name", async () => {
    const a = artifactBytes("sig-file");
    expect((await upload(env, { signature: signFor(serving, a, "m/a"), signatureAsFile: true, artifact: a })).status).toBe(201);
    const b = artifactBytes("sig-after");
    const res = await upload(env, { signature: signFor(serving, b, "m/b"), artifact: b, artifactFirst: true, name: "m/b" });
    expect(res.status).toBe(201);
    expect(res.body.name).toBe("m/b");
  });

  it("answers 200 for the same bytes again and adds another trusted source's signature to the record", async () => {
    const bytes = artifactBytes("dup");
    const hex = sha256Hex(bytes);
    expect((await upload(env, { signature: signFor(research, bytes, "research/x"), artifact: bytes })).status).toBe(201);
    const again = await upload(env, { signature: signFor(research, bytes, "research/x"), artifact: bytes });
    expect(again.status).toBe(200);
    const other = await upload(env, { signature: signFor(serving, bytes, "research/x"), artifact: bytes });
    expect(other.status).toBe(200);
    expect(other.body.source).toBe("serving");
    const record = await env.store.readRecord(hex);
    expect(record?.signatures.map((s) => s.source)).toEqual(["research", "serving"]);
    expect((await listFiles(env.dataDir)).length).toBe(2);
  });

  it("concurrent identical uploads end with one blob and one consistent record", async () => {
    const bytes = artifactBytes("concurrent", 256 * 1024);
    const sig = signFor(serving, bytes, "c/model");
    const results = await Promise.all(Array.from({ length: 6 }, () => upload(env, { signature: sig, artifact: bytes })));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    const hex = sha256Hex(bytes);
    expect(await listFiles(env.dataDir)).toEqual([`blobs/sha256/${hex.slice(0, 2)}/${hex}`, `blobs/sha256/${hex.slice(0, 2)}/${hex}.json`]);
    expect((await env.store.readRecord(hex))?.signatures).toHaveLength(1);
  });

  describe("rejections leave nothing in the store and are audited", () => {
    const bytes = artifactBytes("reject");
    const cases: [string, string, number, () => Parameters<typeof upload>[1]][] = [
      ["unknown key", "untrusted_source", 403, () => ({ signature: signFor(stranger, bytes, "research/x"), artifact: bytes })],
      [
        "unknown key, signature after artifact",
        "untrusted_source",
        403,
        () => ({ signature: signFor(stranger, bytes, "research/x"), artifact: bytes, artifactFirst: true }),
      ],
      ["revoked key", "key_revoked", 403, () => ({ signature: signFor(revoked, bytes, "any"), artifact: bytes })],
      ["expired key", "key_expired", 403, () => ({ signature: signFor(expired, bytes, "any"), artifact: bytes })],
      ["name outside the source's globs", "name_not_allowed", 403, () => ({ signature: signFor(research, bytes, "serving/x"), artifact: bytes })],
      ["name field differs from the statement", "name_not_allowed", 403, () => ({ signature: signFor(serving, bytes, "a"), artifact: bytes, name: "b" })],
      ["threshold not met", "threshold_not_met", 403, () => ({ signature: signFor(coSigner, bytes, "p"), artifact: bytes })],
      ["tampered file (digest differs)", "digest_mismatch", 422, () => ({ signature: signFor(serving, artifactBytes("other"), "x"), artifact: bytes })],
      [
        "tampered file, signature after artifact",
        "digest_mismatch",
        422,
        () => ({ signature: signFor(serving, artifactBytes("other"), "x"), artifact: bytes, artifactFirst: true }),
      ],
      ["garbage envelope", "malformed_signature", 400, () => ({ signature: "{not json", artifact: bytes })],
      ["missing signature", "bad_request", 400, () => ({ artifact: bytes })],
      ["missing artifact", "bad_request", 400, () => ({ signature: signFor(serving, bytes, "x") })],
      ["empty name", "invalid_name", 400, () => ({ signature: signFor(serving, bytes, "x"), artifact: bytes, name: "" })],
    ];
    it.each(cases)("%s -> %s (%i)", async (_label, code, status, parts) => {
      const res = await upload(env, parts());
      expect(res.status).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(typeof res.body.error.message).toBe("string");
      await expectStoreEmpty(env);
      expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: [code] })]);
    });

    it("bad signature by a known key -> bad_signature", async () => {
      const env2 = JSON.parse(signFor(serving, bytes, "x")) as { signatures: { sig: string }[] };
      const sig = Buffer.from(env2.signatures[0]!.sig, "base64");
      sig[0] = sig[0]! ^ 0xff;
      env2.signatures[0]!.sig = sig.toString("base64");
      const res = await upload(env, { signature: JSON.stringify(env2), artifact: bytes });
      expect(res).toFailWithCode("bad_signature", 403);
      await expectStoreEmpty(env);
    });

    it("a statement with another predicate type -> wrong_predicate_type", async () => {
      const statement = { ...buildPublishStatement({ name: "x", digestHex: sha256Hex(bytes) }), predicateType: "https://example.com/other/v1" };
      const envelope = rawEnvelope(statement, [serving]);
      const res = await upload(env, { signature: JSON.stringify(envelope), artifact: bytes });
      expect(res).toFailWithCode("wrong_predicate_type", 422);
      await expectStoreEmpty(env);
    });

    it("two artifact parts -> bad_request", async () => {
      const res = await request(env.app)
        .post("/v1/artifacts")
        .field("signature", signFor(serving, bytes, "x"))
        .attach("artifact", bytes, "a.bin")
        .attach("artifact", bytes, "b.bin");
      expect(res).toFailWithCode("bad_request", 400);
      await expectStoreEmpty(env);
    });

    it("an unexpected file part or field -> bad_request", async () => {
      const res = await request(env.app)
        .post("/v1/artifacts")
        .field("signature", signFor(serving, bytes, "x"))
        .attach("payload", bytes, "a.bin");
      expect(res).toFailWithCode("bad_request", 400);
      const res2 = await request(env.app)
        .post("/v1/artifacts")
        .field("signature", signFor(serving, bytes, "x"))
        .field("extra", "1")
        .attach("artifact", bytes, "a.bin");
      expect(res2).toFailWithCode("bad_request", 400);
      await expectStoreEmpty(env);
    });

    it("a non-multipart body -> 415 unsupported_media_type", async () => {
      const res = await request(env.app).post("/v1/artifacts").set("Content-Type", "application/octet-stream").send(bytes);
      expect(res).toFailWithCode("unsupported_media_type", 415);
      await expectStoreEmpty(env);
    });

    it("a truncated multipart body -> bad_request", async () => {
      const res = await request(env.app)
        .post("/v1/artifacts")
        .set("Content-Type", "multipart/form-data; boundary=XYZ")
        .send('--XYZ\r\nContent-Disposition: form-data; name="artifact"; filename="a"\r\n\r\nabc');
      expect(res).toFailWithCode("bad_request", 400);
      await expectStoreEmpty(env);
    });

    it("signature size: at the 256 KiB cap it is parsed (malformed here), one byte past it -> too_large", async () => {
      const at = await upload(env, { signature: " ".repeat(MAX_MULTIPART_FIELD_BYTES), artifact: bytes });
      expect(at).toFailWithCode("malformed_signature");
      const past = await upload(env, { signature: " ".repeat(MAX_MULTIPART_FIELD_BYTES + 1), artifact: bytes });
      expect(past).toFailWithCode("too_large", 413);
      const pastFile = await upload(env, { signature: " ".repeat(MAX_ENVELOPE_BYTES + 1), artifact: bytes, signatureAsFile: true });
      expect(pastFile).toFailWithCode("too_large");
      await expectStoreEmpty(env);
    });

    it("multipart limits: fields, parts and field-name length -> bad_request", async () => {
      const sig = signFor(serving, bytes, "x");
      let tooManyFields = request(env.app).post("/v1/artifacts").field("signature", sig);
      for (let i = 0; i < MAX_MULTIPART_FIELDS; i++) tooManyFields = tooManyFields.field("name", "x");
      const fields = await tooManyFields.attach("artifact", bytes, "a.bin");
      expect(fields.status).toBe(400);
      expect(fields.body.error.details.multer).toBe("LIMIT_FIELD_COUNT");
      let tooManyParts = request(env.app).post("/v1/artifacts").field("signature", sig).attach("artifact", bytes, "a.bin");
      for (let i = 0; i < MAX_MULTIPART_PARTS; i++) tooManyParts = tooManyParts.attach("signature", Buffer.from("{}"), "s.json");
      const parts = await tooManyParts;
      expect(parts.status).toBe(400);
      const longName = await request(env.app)
        .post("/v1/artifacts")
        .field("n".repeat(MAX_MULTIPART_FIELD_NAME_BYTES + 1), "x")
        .field("signature", sig)
        .attach("artifact", bytes, "a.bin");
      expect(longName).toFailWithCode("bad_request", 400);
      await expectStoreEmpty(env);
    });
  });

  it("inspection verdicts: dangerous -> unsafe_artifact, structural -> malformed_artifact (422 with the report)", async () => {
    for (const [inspect, code] of [
      [dangerousInspector, "unsafe_artifact"],
      [malformedInspector, "malformed_artifact"],
    ] as const) {
      const e = await makeEnv({ sources: SOURCES, inspect });
      try {
        const bytes = artifactBytes("inspect");
        const res = await upload(e, { signature: signFor(serving, bytes, "x.pkl"), artifact: bytes });
        expect(res.status).toBe(422);
        expect(res.body.error.code).toBe(code);
        expect(res.body.error.details.inspection.verdict).toBe("reject");
        expect(await listFiles(e.dataDir)).toEqual([]);
        expect(e.audit.events[0]).toMatchObject({ type: "upload.rejected", codes: [code], inspection: { verdict: "reject" } });
      } finally {
        await e.cleanup();
      }
    }
  });

  it("enforces the size cap while streaming: too_large at limit+1, accepted at the limit", async () => {
    const e = await makeEnv({ sources: SOURCES, inspect: acceptingInspector, maxUploadBytes: 10_000 });
    try {
      const over = artifactBytes("over", 10_001);
      const res = await upload(e, { signature: signFor(serving, over, "x"), artifact: over });
      expect(res).toFailWithCode("too_large", 413);
      expect(await listFiles(e.dataDir)).toEqual([]);
      const over2 = artifactBytes("over-sig-after", 50_000);
      const res2 = await upload(e, { signature: signFor(serving, over2, "x"), artifact: over2, artifactFirst: true });
      expect(res2).toFailWithCode("too_large");
      expect(await listFiles(e.dataDir)).toEqual([]);
      const at = artifactBytes("at", 10_000);
      expect((await upload(e, { signature: signFor(serving, at, "x"), artifact: at })).status).toBe(201);
    } finally {
      await e.cleanup();
    }
  });

  it("disk full while promoting -> 507 insufficient_storage, temp removed, accepted then rejected in the audit", async () => {
    const store = env.store;
    const full = Object.assign(Object.create(store) as typeof store, {
      promote: () => Promise.reject(Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC", syscall: "write" })),
    });
    const app = createApp({ ...env.deps, store: full });
    const bytes = artifactBytes("disk-full");
    const res = await request(app)
      .post("/v1/artifacts")
      .field("signature", signFor(serving, bytes, "x"))
      .attach("artifact", bytes, "m.bin");
    expect(res).toFailWithCode("insufficient_storage", 507);
    await expectStoreEmpty(env);
    expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([
      ["upload.accepted", undefined],
      ["upload.rejected", ["insufficient_storage"]],
    ]);
  });

  it("refuses with 503 unavailable and stores nothing when the audit log cannot be written", async () => {
    env.audit.failing = true;
    const bytes = artifactBytes("audit-down");
    const res = await upload(env, { signature: signFor(serving, bytes, "x"), artifact: bytes });
    expect(res).toFailWithCode("unavailable", 503);
    await expectStoreEmpty(env);
    const rejected = await upload(env, { signature: signFor(stranger, bytes, "x"), artifact: bytes });
    expect(rejected.status).toBe(503);
  });
});
