import { promises as fsp } from "node:fs";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GatewayError } from "../../src/errors";
import { ArtifactFetcher } from "../../src/gateway/fetch";
import { publish } from "../../src/gateway/publish";
import { contentPolicyDigest } from "../../src/inspect/policy";
import { allowlistOf, artifactBytes, makeGatewayEnv, makePublisher, reportOf, sha256Hex, signFor, type GatewayEnv } from "./env";
import { codeOfSettled } from "../support/errors";

/** Fetch with re-check, without a transport: trust re-checked, bytes re-hashed, inspected again under a changed policy, refusals audited. */

const pub = makePublisher();
const MARKER = "collections.OrderedDict";

describe("ArtifactFetcher", () => {
  let env: GatewayEnv;
  let fetcher: ArtifactFetcher;
  let bytes: Buffer;
  let hex: string;

  beforeEach(async () => {
    env = await makeGatewayEnv([{ id: "acme", keys: [{ pub }], allowGlobals: [MARKER] }]);
    fetcher = new ArtifactFetcher({ ...env.deps, store: env.store });
    bytes = artifactBytes("served");
    hex = sha256Hex(bytes);
    await publish(env.deps, { ...env.call, upload: await env.received(bytes), envelope: signFor(pub, bytes, "acme/model") });
    env.audit.events.length = 0;
    env.inspections.length = 0;
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("admits a trusted artifact accepted under its source's current policy without inspecting it again", async () => {
    const admitted = await fetcher.admit(hex, env.call);
    expect(admitted.record.digest).toBe(`sha256:${hex}`);
    expect(admitted.verification.source.id).toBe("acme");
    expect(env.inspections).toEqual([]);
    expect(env.audit.events).toEqual([]);
    expect(await fetcher.describe(hex)).toMatchObject({ trust: { status: "trusted", source: "acme", keyIds: [pub.keyId], contentPolicy: "current" } });
  });

  it("an unknown digest is not_found, not audited", async () => {
    const unknown = sha256Hex(Buffer.from("nothing"));
    expect(await codeOfSettled(fetcher.admit(unknown, env.call))).toBe("not_found");
    expect(await codeOfSettled(fetcher.describe(unknown))).toBe("not_found");
    expect(env.audit.events).toEqual([]);
  });

  it("a key revoked since: refused key_revoked, audited with the caller and the name; described as refused", async () => {
    env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub, revoked: true }], allowGlobals: [MARKER] }]);
    expect(await codeOfSettled(fetcher.admit(hex, env.call))).toBe("key_revoked");
    expect(env.audit.events).toEqual([
      { type: "fetch.refused", requestId: "req-1", tokenId: "tok-1", client: "192.0.2.7", digest: `sha256:${hex}`, name: "acme/model", codes: ["key_revoked"] },
    ]);
    expect(await fetcher.describe(hex)).toMatchObject({ trust: { status: "refused", code: "key_revoked" } });
  });

  it("a refusal that cannot be audited is unavailable", async () => {
    env.allowlist = allowlistOf([{ id: "other", keys: [{ pub: makePublisher() }] }]);
    env.audit.failing = true;
    expect(await codeOfSettled(fetcher.admit(hex, env.call))).toBe("unavailable");
    expect(env.metrics.auditFailures).toBe(1);
  });

  it("a changed content policy: inspected again once under it, recorded, audited; then served without inspecting", async () => {
    env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub }], allowGlobals: [MARKER, "other.Thing"] }]);
    expect(await fetcher.describe(hex)).toMatchObject({ trust: { contentPolicy: "changed" } });
    const [a, b] = await Promise.all([fetcher.admit(hex, env.call), fetcher.admit(hex, env.call)]);
    expect(a.verification.source.id).toBe("acme");
    expect(b.record.signatures[0]?.policyDigest).toBe(contentPolicyDigest(a.verification.source.pickle));
    expect(env.inspections).toHaveLength(1);
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "artifact.reinspected", digest: `sha256:${hex}`, source: "acme" })]);
    await fetcher.admit(hex, env.call);
    expect(env.inspections).toHaveLength(1);
    expect(await fetcher.describe(hex)).toMatchObject({ trust: { contentPolicy: "current" } });
  });

  it("a changed policy that rejects the bytes: refused with the inspection's code, audited, the blob kept, not inspected twice", async () => {
    env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub }] }]);
    env.verdict = () => Promise.resolve(reportOf("dangerous", "pickle"));
    expect(await codeOfSettled(fetcher.admit(hex, env.call))).toBe("unsafe_artifact");
    expect(await codeOfSettled(fetcher.admit(hex, env.call))).toBe("unsafe_artifact");
    expect(env.inspections).toHaveLength(1);
    expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([
      ["artifact.reinspected", ["unsafe_artifact"]],
      ["fetch.refused", ["unsafe_artifact"]],
      ["fetch.refused", ["unsafe_artifact"]],
    ]);
    expect(await env.store.stat(hex)).toEqual({ size: bytes.length });
  });

  it("a blob damaged on disk is not inspected again: quarantined and refused integrity_error", async () => {
    env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub }] }]);
    const damaged = Buffer.from(bytes);
    damaged[0] = (damaged[0] ?? 0) ^ 0xff;
    await fsp.writeFile(env.store.blobPath(hex), damaged);
    expect(await codeOfSettled(fetcher.admit(hex, env.call))).toBe("integrity_error");
    expect(env.inspections).toEqual([]);
    expect(await env.store.stat(hex)).toBeUndefined();
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "fetch.refused", codes: ["integrity_error"] })]);
  });

  it("storedSize: the record's size, or a blob of another size quarantined as integrity_error", async () => {
    const { record } = await fetcher.admit(hex, env.call);
    expect(await fetcher.storedSize(hex, record, env.call)).toBe(bytes.length);
    await fsp.truncate(env.store.blobPath(hex), 10);
    expect(await codeOfSettled(fetcher.storedSize(hex, record, env.call))).toBe("integrity_error");
    expect(await env.store.stat(hex)).toBeUndefined();
    expect(await codeOfSettled(fetcher.storedSize(hex, record, env.call))).toBe("not_found");
  });

  it("a whole read is re-hashed; bytes changed in place fail integrity_error at the end, and damagedWhileServed quarantines and audits", async () => {
    const whole = await fetcher.openWhole(hex);
    const sink = new PassThrough();
    sink.resume();
    await pipeline(whole.stream, whole.verifier, sink);
    expect(whole.verifier.bytes).toBe(bytes.length);

    const damaged = Buffer.from(bytes);
    damaged[100] = (damaged[100] ?? 0) ^ 0xff;
    await fsp.writeFile(env.store.blobPath(hex), damaged);
    const again = await fetcher.openWhole(hex);
    const out = new PassThrough();
    out.resume();
    const err = await pipeline(again.stream, again.verifier, out).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "integrity_error" });
    await fetcher.damagedWhileServed(hex, err as GatewayError, env.call);
    expect(await env.store.stat(hex)).toBeUndefined();
    expect(env.audit.events).toEqual([{ type: "fetch.refused", requestId: "req-1", digest: `sha256:${hex}`, codes: ["integrity_error"] }]);
  });

  it("a part is read as stored; the listing is the store's", async () => {
    const part = await fetcher.openPart(hex, { start: 0, end: 5 });
    const chunks: Buffer[] = [];
    for await (const chunk of part) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(bytes.subarray(0, 6));
    expect((await fetcher.list({ limit: 10 })).items.map((r) => r.digest)).toEqual([`sha256:${hex}`]);
  });
});
