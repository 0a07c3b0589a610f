import request from "supertest";
import { GatewayError } from "../../src/errors";
import type { Inspector } from "../../src/inspect/inspector";
import { artifactBytes, listFiles, makeEnv, makePublisher, signFor, type TestEnv } from "./helpers";

/**
 * An inspector that fails for environmental reasons (the disk filled while it decompressed a
 * member) throws instead of reporting: the upload answers 507, not 422 malformed_artifact, keeps
 * nothing and audits the refusal.
 */

const serving = makePublisher();

describe("POST /v1/artifacts when inspection fails for lack of space", () => {
  let env: TestEnv | undefined;
  afterEach(async () => {
    await env?.cleanup();
    env = undefined;
  });

  it.each([
    ["insufficient_storage", 507],
    ["io_error", 500],
  ] as const)("an inspector throwing %s -> %d, nothing stored, audited as rejected", async (code, status) => {
    const failing: Inspector = () => Promise.reject(new GatewayError(code, "no space left for inspection temp files"));
    env = await makeEnv({ sources: [{ id: "serving", keys: [{ pub: serving }] }], inspect: failing });
    const bytes = artifactBytes(`inspect-${code}`);
    const res = await request(env.app)
      .post("/v1/artifacts")
      .field("signature", signFor(serving, bytes, "x"))
      .attach("artifact", bytes, "m.bin");
    expect(res.status).toBe(status);
    expect((res.body as { error: { code: string } }).error.code).toBe(code);
    expect(await listFiles(env.dataDir)).toEqual([]);
    expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([["upload.rejected", [code]]]);
  });
});
