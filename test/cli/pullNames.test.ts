import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import request from "supertest";
import { makeEnv, type TestEnv } from "../http/helpers";
import { allowlistJson, makePublisher, sha256Hex, signFor, type SourceSpec } from "../support/publisher";
import { runCli } from "../support/cli";
import { listen } from "../support/net";

// pull --allowlist checks each stored envelope against the name it signed: the same bytes
// published as "a/model" by one source and "b/model" by another stay trusted through either.
const a = makePublisher();
const b = makePublisher();

function sources(revoked: { a?: boolean; b?: boolean }): SourceSpec[] {
  return [
    { id: "source-a", keys: [{ pub: a, revoked: revoked.a ?? false }], names: ["a/**"] },
    { id: "source-b", keys: [{ pub: b, revoked: revoked.b ?? false }], names: ["b/**"] },
  ];
}

describe("modelgate pull --allowlist with several signed names", () => {
  let env: TestEnv;
  let server: { url: string; close(): Promise<void> };
  let hex: string;
  let outDir: string;

  beforeAll(async () => {
    env = await makeEnv({ sources: sources({}) });
    server = await listen(env.app);
    const bytes = randomBytes(64 * 1024);
    hex = sha256Hex(bytes);
    expect(
      (
        await request(env.app)
          .post("/v1/artifacts")
          .field("signature", signFor(a, bytes, "a/model"))
          .attach("artifact", bytes, "m.bin")
      ).status,
    ).toBe(201);
    expect(
      (
        await request(env.app)
          .post("/v1/artifacts")
          .field("signature", signFor(b, bytes, "b/model"))
          .attach("artifact", bytes, "m.bin")
      ).status,
    ).toBe(200);
    await fsp.writeFile(path.join(env.dir, "a-revoked.json"), allowlistJson(sources({ a: true })));
    await fsp.writeFile(path.join(env.dir, "both-revoked.json"), allowlistJson(sources({ a: true, b: true })));
  });
  beforeEach(async () => {
    outDir = await fsp.mkdtemp(path.join(env.dir, "out-"));
  });
  afterAll(async () => {
    await server.close();
    await env.cleanup();
  });

  it("trusts the artifact through the other source's signature for its own name", async () => {
    const res = await runCli(["pull", hex, "--out", path.join(outDir, "model.bin"), "--url", server.url, "--allowlist", "a-revoked.json"], { cwd: env.dir });
    expect(res.code).toBe(0);
    expect(res.stderr).toContain("b/model signed by source source-b");
    expect(sha256Hex(await fsp.readFile(path.join(outDir, "model.bin")))).toBe(hex);
  });

  it("refuses with key_revoked once no signing key is trusted, writing nothing", async () => {
    const res = await runCli(["pull", hex, "--out", path.join(outDir, "model.bin"), "--url", server.url, "--allowlist", "both-revoked.json"], { cwd: env.dir });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("key_revoked");
    expect(await fsp.readdir(outDir)).toEqual([]);
  });
});
