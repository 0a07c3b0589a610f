import { GatewayError } from "../../src/errors";
import { publish, refusePublish, type PublishInput, type PublishResult } from "../../src/gateway/publish";
import { contentPolicyDigest } from "../../src/inspect/policy";
import { FsArtifactStore } from "../../src/store/fsStore";
import type { ArtifactRecord, CommitResult, StagedBlob, StagedUpload, StoredSignature } from "../../src/store/types";
import * as keys from "../../src/trust/keys";
import { preflightEnvelope, type ArtifactName } from "../../src/trust";
import { allowlistOf, artifactBytes, makeGatewayEnv, makePublisher, reportOf, sha256Hex, signFor, type GatewayEnv } from "./env";
import { codeOfSettled } from "../support/errors";

/** The publish use case without a transport: plain inputs in, a result or a GatewayError out, every decision audited. */

const pub = makePublisher();
const acme = [{ id: "acme", keys: [{ pub }] }];

/** The code publish fails with (undefined when it resolves). */

function input(env: GatewayEnv, upload: StagedUpload, envelope: string, extra: Partial<PublishInput> = {}): PublishInput {
  return { ...env.call, upload, envelope, ...extra };
}

describe("publish", () => {
  let env: GatewayEnv;
  beforeEach(async () => {
    env = await makeGatewayEnv(acme);
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await env.cleanup();
  });

  it("accepts: inspects the staged file under the source's policy, audits before the commit, stores blob and record", async () => {
    const bytes = artifactBytes("accepted");
    const hex = sha256Hex(bytes);
    const upload = await env.received(bytes);
    let storedWhenAudited: unknown = "not audited";
    env.audit.afterAppend = async (event) => {
      if (event.type === "upload.accepted") storedWhenAudited = await env.store.stat(hex);
    };
    const result = await publish(env.deps, input(env, upload, signFor(pub, bytes, "acme/model")));
    expect(result.created).toBe(true);
    expect(result.verification.source.id).toBe("acme");
    expect(result.record).toMatchObject({ digest: `sha256:${hex}`, size: bytes.length, name: "acme/model", names: ["acme/model"], format: "safetensors" });
    expect(result.record.signatures[0]?.policyDigest).toBe(contentPolicyDigest(result.verification.source.pickle));
    expect(env.inspections).toHaveLength(1);
    expect(env.inspections[0]?.path).toBe(upload.blob?.path);
    expect(env.inspections[0]?.options).toMatchObject({ policy: result.verification.source.pickle, fileName: "acme/model" });
    expect(storedWhenAudited).toBeUndefined();
    expect(env.audit.events).toEqual([
      {
        type: "upload.accepted",
        requestId: "req-1",
        tokenId: "tok-1",
        client: "192.0.2.7",
        digest: `sha256:${hex}`,
        name: "acme/model",
        size: bytes.length,
        source: "acme",
        keyIds: [pub.keyId],
        inspection: { verdict: "accept", format: "safetensors", findings: 0, imports: 0 },
      },
    ]);
    expect(await env.store.readRecord(hex)).toEqual(result.record);
    expect(env.metrics.finished).toEqual([{ verdict: "accepted", code: "ok" }]);
    expect(env.metrics.bytes).toBe(bytes.length);
    await upload.abort();
    expect(await env.store.stat(hex)).toEqual({ size: bytes.length });
    expect(await env.tmpFiles()).toEqual([]);
  });

  it("the same bytes again: not created, the stored record returned, the staged copy gone", async () => {
    const bytes = artifactBytes("twice");
    const envelope = signFor(pub, bytes, "acme/model");
    await publish(env.deps, input(env, await env.received(bytes), envelope));
    const again = await publish(env.deps, input(env, await env.received(bytes), envelope));
    expect(again.created).toBe(false);
    expect(again.record.signatures).toHaveLength(1);
    expect(await env.tmpFiles()).toEqual([]);
  });

  it("a requested name other than the signed one: name_not_allowed, audited with the name asked for", async () => {
    const bytes = artifactBytes("named");
    const upload = await env.received(bytes);
    const code = await codeOfSettled(publish(env.deps, input(env, upload, signFor(pub, bytes, "acme/model"), { name: "acme/other" as ArtifactName })));
    expect(code).toBe("name_not_allowed");
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: ["name_not_allowed"], name: "acme/other" })]);
  });

  describe("the envelope is verified once per allowlist version", () => {
    it("with a preflight on the allowlist in force, no signature is verified again", async () => {
      const bytes = artifactBytes("once");
      const envelope = signFor(pub, bytes, "acme/model");
      const verify = jest.spyOn(keys, "verifyEd25519");
      const preflight = preflightEnvelope(envelope, env.allowlist, env.now);
      expect(verify).toHaveBeenCalledTimes(1);
      const result = await publish(env.deps, input(env, await env.received(bytes), envelope, { preflight }));
      expect(result.created).toBe(true);
      expect(verify).toHaveBeenCalledTimes(1);
    });

    it("without a preflight, the envelope is verified once", async () => {
      const bytes = artifactBytes("no preflight");
      const verify = jest.spyOn(keys, "verifyEd25519");
      await publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model")));
      expect(verify).toHaveBeenCalledTimes(1);
    });

    it("a preflighted subject digest that is not the streamed hash fails digest_mismatch at once: no signature verified again, nothing inspected, nothing left", async () => {
      const bytes = artifactBytes("tampered");
      const envelope = signFor(pub, bytes, "acme/model", sha256Hex(artifactBytes("signed")));
      const preflight = preflightEnvelope(envelope, env.allowlist, env.now);
      const verify = jest.spyOn(keys, "verifyEd25519");
      const upload = await env.received(bytes);
      expect(await codeOfSettled(publish(env.deps, input(env, upload, envelope, { preflight })))).toBe("digest_mismatch");
      expect(verify).not.toHaveBeenCalled();
      expect(env.inspections).toEqual([]);
      expect(await env.tmpFiles()).toEqual([]);
      expect(env.audit.events).toEqual([
        expect.objectContaining({ type: "upload.rejected", codes: ["digest_mismatch"], digest: `sha256:${sha256Hex(bytes)}`, size: bytes.length }),
      ]);
      expect(env.metrics.finished).toEqual([{ verdict: "rejected", code: "digest_mismatch" }]);
    });

    it("an allowlist reloaded since the preflight decides (a key revoked meanwhile: key_revoked)", async () => {
      const bytes = artifactBytes("reloaded");
      const envelope = signFor(pub, bytes, "acme/model");
      const preflight = preflightEnvelope(envelope, env.allowlist, env.now);
      env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub, revoked: true }] }]);
      expect(await codeOfSettled(publish(env.deps, input(env, await env.received(bytes), envelope, { preflight })))).toBe("key_revoked");
      expect(await env.tmpFiles()).toEqual([]);
    });

    it("a key that expired between the preflight and the end of the body: key_expired", async () => {
      const bytes = artifactBytes("expiring");
      env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub, notAfter: "2026-06-01T12:00:01.000Z" }] }]);
      const envelope = signFor(pub, bytes, "acme/model");
      const preflight = preflightEnvelope(envelope, env.allowlist, env.now);
      env.now = new Date("2026-06-01T12:00:05.000Z");
      expect(await codeOfSettled(publish(env.deps, input(env, await env.received(bytes), envelope, { preflight })))).toBe("key_expired");
    });

    it("a preflight of another envelope is not used for this one", async () => {
      const bytes = artifactBytes("swapped");
      const other = makePublisher();
      const preflight = preflightEnvelope(signFor(pub, bytes, "acme/model"), env.allowlist, env.now);
      const code = await codeOfSettled(publish(env.deps, input(env, await env.received(bytes), signFor(other, bytes, "acme/model"), { preflight })));
      expect(code).toBe("untrusted_source");
    });
  });

  it("content inspection rejects: unsafe_artifact, audited with the inspection, nothing stored", async () => {
    env.verdict = () => Promise.resolve(reportOf("dangerous", "pickle"));
    const bytes = artifactBytes("dangerous");
    const err = await publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model"))).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "unsafe_artifact", details: { inspection: expect.objectContaining({ verdict: "reject" }) } });
    expect(env.audit.events).toEqual([
      expect.objectContaining({
        type: "upload.rejected",
        codes: ["unsafe_artifact"],
        source: "acme",
        inspection: expect.objectContaining({ format: "pickle" }),
      }),
    ]);
    expect(await env.store.stat(sha256Hex(bytes))).toBeUndefined();
    expect(await env.tmpFiles()).toEqual([]);
  });

  it("a pickle policy changed during inspection: inspected again under the new one, then accepted", async () => {
    let first = true;
    env.verdict = () => {
      if (first) {
        first = false;
        env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub }], allowGlobals: ["collections.OrderedDict"] }]);
      }
      return Promise.resolve(reportOf());
    };
    const bytes = artifactBytes("policy");
    const result = await publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model")));
    expect(result.created).toBe(true);
    expect(env.inspections.map((i) => i.options.policy.allowGlobals)).toEqual([[], ["collections.OrderedDict"]]);
  });

  it("a key revoked while the accepted entry is written: refused before the commit, audited accepted then rejected", async () => {
    env.audit.afterAppend = (event) => {
      if (event.type === "upload.accepted") env.allowlist = allowlistOf([{ id: "acme", keys: [{ pub, revoked: true }] }]);
      return Promise.resolve();
    };
    const bytes = artifactBytes("late");
    expect(await codeOfSettled(publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model"))))).toBe("key_revoked");
    expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([
      ["upload.accepted", undefined],
      ["upload.rejected", ["key_revoked"]],
    ]);
    expect(await env.store.stat(sha256Hex(bytes))).toBeUndefined();
  });

  it("an audit log that cannot be written: unavailable, nothing stored", async () => {
    env.audit.failing = true;
    const bytes = artifactBytes("unaudited");
    expect(await codeOfSettled(publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model"))))).toBe("unavailable");
    expect(env.metrics.auditFailures).toBe(2);
    expect(await env.store.stat(sha256Hex(bytes))).toBeUndefined();
    expect(await env.tmpFiles()).toEqual([]);
  });

  it("the cancellation signal reaches the inspector; an inspection stopped by it is refused unavailable, audited", async () => {
    const cancel = new AbortController();
    env.verdict = (_p, options) => {
      cancel.abort();
      return Promise.reject(options.signal?.reason instanceof Error ? options.signal.reason : new Error("stopped"));
    };
    const bytes = artifactBytes("cancelled");
    const code = await codeOfSettled(publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model"), { signal: cancel.signal })));
    expect(env.inspections[0]?.options.signal).toBe(cancel.signal);
    expect(code).toBe("unavailable");
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: ["unavailable"] })]);
    expect(await env.tmpFiles()).toEqual([]);
  });

  it("an inspector that crashes (not cancelled): internal, audited, nothing left", async () => {
    env.verdict = () => Promise.reject(new Error("boom"));
    const bytes = artifactBytes("crash");
    expect(await codeOfSettled(publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model"))))).toBe("internal");
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: ["internal"] })]);
    expect(await env.tmpFiles()).toEqual([]);
  });

  it("an upload that was never received is refused internal (publish takes a received upload)", async () => {
    const upload = env.store.begin({ maxBytes: 10 });
    expect(await codeOfSettled(publish(env.deps, input(env, upload, "{}")))).toBe("internal");
  });
});

/** The filesystem store with the disk full at commit. */
class FullStore extends FsArtifactStore {
  protected override promote(_staged: StagedBlob, _record: ArtifactRecord, _signature: StoredSignature): Promise<CommitResult> {
    return Promise.reject(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", syscall: "write" }));
  }
}

describe("publish on a full disk", () => {
  it("insufficient_storage after the accepted entry, a second entry records the refusal, the staged file is gone", async () => {
    const env = await makeGatewayEnv(acme, (dataDir) => new FullStore(dataDir));
    try {
      const bytes = artifactBytes("full");
      let result: PublishResult | undefined;
      const code = await codeOfSettled(
        publish(env.deps, input(env, await env.received(bytes), signFor(pub, bytes, "acme/model"))).then((r) => {
          result = r;
        }),
      );
      expect(result).toBeUndefined();
      expect(code).toBe("insufficient_storage");
      expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([
        ["upload.accepted", undefined],
        ["upload.rejected", ["insufficient_storage"]],
      ]);
      expect(await env.tmpFiles()).toEqual([]);
    } finally {
      await env.cleanup();
    }
  });
});

describe("refusePublish (a refusal before publish: preflight, size cap, malformed body)", () => {
  it("drops the staged upload before the refusal is recorded, and answers with the refusal", async () => {
    const env = await makeGatewayEnv(acme);
    try {
      const upload = await env.received(artifactBytes("partial"));
      let tmpWhenAudited: string[] | undefined;
      env.audit.afterAppend = async () => {
        tmpWhenAudited = await env.tmpFiles();
      };
      const refusal = await refusePublish(env.deps, { ...env.call, error: new GatewayError("too_large", "too big"), facts: { name: "as sent" }, upload });
      expect(refusal.code).toBe("too_large");
      expect(tmpWhenAudited).toEqual([]);
      expect(env.audit.events).toEqual([
        { type: "upload.rejected", requestId: "req-1", tokenId: "tok-1", client: "192.0.2.7", codes: ["too_large"], name: "as sent" },
      ]);
      expect(env.metrics.finished).toEqual([{ verdict: "rejected", code: "too_large" }]);
    } finally {
      await env.cleanup();
    }
  });

  it("an audit log that cannot be written turns the refusal into unavailable; a full disk is insufficient_storage", async () => {
    const env = await makeGatewayEnv(acme);
    try {
      const enospc = Object.assign(new Error("ENOSPC"), { code: "ENOSPC", syscall: "write" });
      expect((await refusePublish(env.deps, { ...env.call, error: enospc })).code).toBe("insufficient_storage");
      env.audit.failing = true;
      expect((await refusePublish(env.deps, { ...env.call, error: new GatewayError("untrusted_source", "no") })).code).toBe("unavailable");
      expect(env.metrics.auditFailures).toBe(1);
    } finally {
      await env.cleanup();
    }
  });
});
