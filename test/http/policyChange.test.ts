import { promises as fsp, readFileSync } from "node:fs";
import * as path from "node:path";
import request from "supertest";
import { inspectFile } from "../../src/formats/inspectFile";
import type { Inspector } from "../../src/inspect/inspector";
import { contentPolicyDigest, DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import type { ArtifactRecord } from "../../src/store/types";
import { acceptingInspector, artifactBytes, dangerousInspector, listFiles, makeEnv, makePublisher, sha256Hex, signFor, type TestEnv } from "./helpers";

const pub = makePublisher();
const MARKER = "pkg.Model";

/** An inspector whose verdict depends on the policy, as the real one's does: accepts only when MARKER is allowed. */
function countingInspector(): { inspect: Inspector; calls: () => number } {
  let calls = 0;
  const inspect: Inspector = (p, o) => {
    calls += 1;
    return o.policy.allowGlobals.includes(MARKER) ? acceptingInspector(p, o) : dangerousInspector(p, o);
  };
  return { inspect, calls: () => calls };
}

/** Rewrites allowlist.json with this pickle policy for the one source (undefined: none) and reloads it. */
async function setPolicy(env: TestEnv, allowGlobals: string[] | undefined): Promise<void> {
  const file = JSON.parse(await fsp.readFile(env.allowlistPath, "utf8")) as { sources: Record<string, unknown>[] };
  const source = file.sources[0];
  if (source === undefined) throw new Error("no source");
  if (allowGlobals === undefined) delete source.pickle;
  else source.pickle = { allowGlobals };
  await fsp.writeFile(env.allowlistPath, JSON.stringify(file));
  expect(await env.holder.reload()).toBe(true);
}

async function recordOf(env: TestEnv, hex: string): Promise<ArtifactRecord> {
  return JSON.parse(await fsp.readFile(path.join(env.dataDir, "blobs", "sha256", hex.slice(0, 2), `${hex}.json`), "utf8")) as ArtifactRecord;
}

describe("fetch after the source's content policy changed", () => {
  let env: TestEnv;
  let counter: ReturnType<typeof countingInspector>;
  let bytes: Buffer;
  let hex: string;

  beforeEach(async () => {
    counter = countingInspector();
    env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }], inspect: counter.inspect });
    await setPolicy(env, [MARKER]);
    bytes = artifactBytes("policy-change");
    hex = sha256Hex(bytes);
    const res = await request(env.app)
      .post("/v1/artifacts")
      .field("signature", signFor(pub, bytes, "acme/model"))
      .attach("artifact", bytes, "model.pkl");
    expect(res.status).toBe(201);
    expect(counter.calls()).toBe(1);
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("records the policy each signature was accepted under and serves without inspecting again while it holds", async () => {
    const record = await recordOf(env, hex);
    expect(record.signatures[0]?.policyDigest).toBe(contentPolicyDigest({ ...DEFAULT_CONTENT_POLICY, allowGlobals: [MARKER] }));
    const got = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(got.status).toBe(200);
    expect(counter.calls()).toBe(1);
    const meta = await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`);
    expect((meta.body as { trust: { contentPolicy: string } }).trust.contentPolicy).toBe("current");
  });

  it("a tightened policy: inspected again, refused with the inspection's code, audited, the blob kept; no second inspection", async () => {
    await setPolicy(env, ["other.Thing"]);
    const meta = await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`);
    expect((meta.body as { trust: { contentPolicy: string } }).trust.contentPolicy).toBe("changed");

    const refused = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(refused.status).toBe(422);
    expect(refused).toFailWithCode("unsafe_artifact");
    const details = (refused.body as { error: { details: { source: string; reinspected: boolean; inspection: { verdict: string } } } }).error.details;
    expect(details).toEqual(expect.objectContaining({ source: "acme", reinspected: true }));
    expect(details.inspection.verdict).toBe("reject");
    expect(counter.calls()).toBe(2);

    const types = env.audit.events.map((e) => e.type).filter((t) => t !== "allowlist.reloaded");
    expect(types).toEqual(["upload.accepted", "artifact.reinspected", "fetch.refused"]);
    const reinspected = env.audit.events.find((e) => e.type === "artifact.reinspected");
    expect(reinspected).toEqual(expect.objectContaining({ digest: `sha256:${hex}`, source: "acme", codes: ["unsafe_artifact"] }));

    // HEAD and a second GET: refused from the remembered verdict, not inspected again.
    expect((await request(env.app).head(`/v1/artifacts/sha256:${hex}`)).status).toBe(422);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(422);
    expect(counter.calls()).toBe(2);
    // Not quarantined, not rewritten: the policy may be loosened again.
    expect(await listFiles(env.dataDir)).toEqual([`blobs/sha256/${hex.slice(0, 2)}/${hex}`, `blobs/sha256/${hex.slice(0, 2)}/${hex}.json`]);
    expect((await recordOf(env, hex)).signatures[0]?.policyDigest).toBe(contentPolicyDigest({ ...DEFAULT_CONTENT_POLICY, allowGlobals: [MARKER] }));

    // Back to the policy it was accepted under: served at once, no inspection.
    await setPolicy(env, [MARKER]);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
    expect(counter.calls()).toBe(2);
  });

  it("a policy changed in a way that still admits the bytes: inspected once, recorded, served", async () => {
    await setPolicy(env, ["other.Thing", MARKER]);
    const first = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(first.status).toBe(200);
    expect(sha256Hex(first.body as Buffer)).toBe(hex);
    expect(counter.calls()).toBe(2);
    expect((await recordOf(env, hex)).signatures[0]?.policyDigest).toBe(
      contentPolicyDigest({ ...DEFAULT_CONTENT_POLICY, allowGlobals: [MARKER, "other.Thing"] }),
    );
    expect(env.audit.events.find((e) => e.type === "artifact.reinspected")).toEqual(
      expect.objectContaining({ source: "acme", inspection: expect.objectContaining({ verdict: "accept" }) }),
    );
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
    expect(counter.calls()).toBe(2);
  });

  it("a pattern repeated in the policy is not a change", async () => {
    await setPolicy(env, [MARKER, MARKER]);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
    expect(counter.calls()).toBe(1);
  });

  it("a record from before policies were recorded is inspected on its first fetch, then carries the policy", async () => {
    const recordPath = path.join(env.dataDir, "blobs", "sha256", hex.slice(0, 2), `${hex}.json`);
    const legacy = await recordOf(env, hex);
    delete legacy.signatures[0]?.policyDigest;
    await fsp.writeFile(recordPath, JSON.stringify(legacy));
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
    expect(counter.calls()).toBe(2);
    expect((await recordOf(env, hex)).signatures[0]?.policyDigest).toBe(contentPolicyDigest({ ...DEFAULT_CONTENT_POLICY, allowGlobals: [MARKER] }));
  });

  it("uploading the same bytes again under the new policy refreshes the stored signature's policy", async () => {
    await setPolicy(env, ["other.Thing", MARKER]);
    const again = await request(env.app)
      .post("/v1/artifacts")
      .field("signature", signFor(pub, bytes, "acme/model"))
      .attach("artifact", bytes, "model.pkl");
    expect(again.status).toBe(200);
    expect(counter.calls()).toBe(2);
    expect((await recordOf(env, hex)).signatures).toHaveLength(1);
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
    expect(counter.calls()).toBe(2);
  });

  it("concurrent fetches share one inspection", async () => {
    await setPolicy(env, ["other.Thing", MARKER]);
    const answers = await Promise.all([1, 2, 3, 4].map(() => request(env.app).get(`/v1/artifacts/sha256:${hex}`)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(counter.calls()).toBe(2);
  });

  it("a blob damaged on disk is not inspected: quarantined and refused", async () => {
    await setPolicy(env, ["other.Thing", MARKER]);
    const blob = path.join(env.dataDir, "blobs", "sha256", hex.slice(0, 2), hex);
    const damaged = Buffer.from(bytes);
    damaged[10] = (damaged[10] ?? 0) ^ 0xff;
    await fsp.writeFile(blob, damaged);
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(res.status).toBe(500);
    expect(res).toFailWithCode("integrity_error");
    expect(counter.calls()).toBe(1);
    expect((await listFiles(env.dataDir)).filter((f) => f.startsWith("blobs/"))).toEqual([]);
    expect(env.audit.events.at(-1)).toEqual(expect.objectContaining({ type: "fetch.refused", codes: ["integrity_error"] }));
  });

  it("an audit log that cannot be written: 503, nothing recorded, inspected again next time", async () => {
    await setPolicy(env, ["other.Thing", MARKER]);
    env.audit.failing = true;
    const res = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
    expect(res.status).toBe(503);
    expect((await recordOf(env, hex)).signatures[0]?.policyDigest).toBe(contentPolicyDigest({ ...DEFAULT_CONTENT_POLICY, allowGlobals: [MARKER] }));
    env.audit.failing = false;
    expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);
    expect(counter.calls()).toBe(3);
  });
});

describe("fetch after a policy change, with the real inspector and a real scikit-learn joblib dump", () => {
  it("serves it while sklearn is allowed and refuses it once sklearn is no longer allowed", async () => {
    const bytes = readFileSync(path.join(__dirname, "..", "fixtures", "joblib", "sklearn_pipeline.joblib"));
    const hex = sha256Hex(bytes);
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }], inspect: inspectFile });
    try {
      await setPolicy(env, ["sklearn.*", "numpy.*"]);
      const res = await request(env.app)
        .post("/v1/artifacts")
        .field("signature", signFor(pub, bytes, "acme/pipeline.joblib"))
        .attach("artifact", bytes, "pipeline.joblib");
      expect(res.status).toBe(201);
      expect((await request(env.app).get(`/v1/artifacts/sha256:${hex}`)).status).toBe(200);

      await setPolicy(env, undefined);
      const refused = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
      expect(refused.status).toBe(422);
      expect(refused).toFailWithCode("unsafe_artifact");
      const inspection = (refused.body as { error: { details: { inspection: { findings: { code: string }[] } } } }).error.details.inspection;
      expect(inspection.findings.map((f) => f.code)).toContain("unknown_global");
    } finally {
      await env.cleanup();
    }
  });
});
