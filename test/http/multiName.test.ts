import { promises as fsp } from "node:fs";
import request from "supertest";
import type { ArtifactRecord } from "../../src/store/types";
import { allowlistJson, artifactBytes, makeEnv, makePublisher, sha256Hex, signFor, type SourceSpec, type TestEnv } from "./helpers";

// The same bytes published under different signed names by different trusted sources: each
// stored signature is re-checked against the name its own statement signed.
const a = makePublisher();
const b = makePublisher();

function sources(revoked: { a?: boolean; b?: boolean } = {}): SourceSpec[] {
  return [
    { id: "source-a", keys: [{ pub: a, revoked: revoked.a ?? false }], names: ["a/**"] },
    { id: "source-b", keys: [{ pub: b, revoked: revoked.b ?? false }], names: ["b/**"] },
  ];
}

function upload(env: TestEnv, signature: string, bytes: Buffer) {
  return request(env.app).post("/v1/artifacts").field("signature", signature).attach("artifact", bytes, "model.safetensors");
}

async function revoke(env: TestEnv, which: { a?: boolean; b?: boolean }): Promise<void> {
  await fsp.writeFile(env.allowlistPath, allowlistJson(sources(which)));
  expect(await env.holder.reload()).toBe(true);
}

describe("same bytes, different signed names", () => {
  let env: TestEnv;
  const bytes = artifactBytes("multi-name");
  const hex = sha256Hex(bytes);
  beforeEach(async () => {
    env = await makeEnv({ sources: sources() });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("answers the second upload with the name it signed and records every name", async () => {
    const first = await upload(env, signFor(a, bytes, "a/model"), bytes);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ name: "a/model", names: ["a/model"], source: "source-a" });
    const second = await upload(env, signFor(b, bytes, "b/model"), bytes);
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({ digest: `sha256:${hex}`, name: "b/model", names: ["a/model", "b/model"], source: "source-b" });

    const meta = await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`);
    expect(meta.status).toBe(200);
    expect(meta.body).toMatchObject({ name: "a/model", names: ["a/model", "b/model"], trust: { status: "trusted", source: "source-a" } });
    expect((meta.body as ArtifactRecord).signatures.map((s) => [s.source, s.name])).toEqual([
      ["source-a", "a/model"],
      ["source-b", "b/model"],
    ]);
    const listed = await request(env.app).get("/v1/artifacts").query({ name: "b/model" });
    expect(listed.status).toBe(200);
    expect((listed.body as { items: { digest: string; names: string[] }[] }).items).toEqual([
      expect.objectContaining({ digest: `sha256:${hex}`, names: ["a/model", "b/model"] }),
    ]);
  });

  it("keeps serving while another source's signature for its own name is still trusted", async () => {
    expect((await upload(env, signFor(a, bytes, "a/model"), bytes)).status).toBe(201);
    expect((await upload(env, signFor(b, bytes, "b/model"), bytes)).status).toBe(200);

    await revoke(env, { a: true });
    const served = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(served.status).toBe(200);
    expect(sha256Hex(served.body as Buffer)).toBe(hex);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`)).body.trust).toEqual({
      status: "trusted",
      source: "source-b",
      keyIds: [b.keyId],
      contentPolicy: "current",
    });

    await revoke(env, { a: true, b: true });
    const refused = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(refused).toFailWithCode("key_revoked", 403);
  });

  it("re-checks a record written before names were kept against the record's name", async () => {
    expect((await upload(env, signFor(a, bytes, "a/model"), bytes)).status).toBe(201);
    const stored = await env.store.readRecord(hex);
    if (stored === undefined) throw new Error("record missing");
    const { names: _names, ...legacy } = stored;
    await env.store.writeRecord({ ...legacy, signatures: legacy.signatures.map(({ name: _name, ...s }) => s) });
    const raw = JSON.parse(await fsp.readFile(`${env.dataDir}/blobs/sha256/${hex.slice(0, 2)}/${hex}.json`, "utf8")) as Record<string, unknown>;
    expect(raw.names).toBeUndefined();

    const meta = await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`);
    expect(meta.body).toMatchObject({ names: ["a/model"], trust: { status: "trusted", source: "source-a" } });
    // A second source's signature merged into the legacy record carries its own name.
    const second = await upload(env, signFor(b, bytes, "b/model"), bytes);
    expect(second.body).toMatchObject({ name: "b/model", names: ["a/model", "b/model"] });
    await revoke(env, { a: true });
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
    await revoke(env, { a: true, b: true });
    expect(await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).toFailWithCode("key_revoked");
  });
});
