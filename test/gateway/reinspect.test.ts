import { promises as fsp } from "node:fs";
import { publish } from "../../src/gateway/publish";
import { acceptedUnderCurrentPolicy, Reinspector } from "../../src/gateway/reinspect";
import { contentPolicyDigest } from "../../src/inspect/policy";
import { recheckTrustAll } from "../../src/trust";
import { allowlistOf, artifactBytes, makeGatewayEnv, makePublisher, reportOf, sha256Hex, signFor, type GatewayEnv, type SourceSpec } from "./env";
import { codeOfSettled } from "../support/errors";

/** Inspection again under a changed content policy, driven directly (no fetch, no transport). */

const research = makePublisher();
const serving = makePublisher();
const SAFE = "collections.OrderedDict";

describe("Reinspector", () => {
  let env: GatewayEnv;
  const bytes = artifactBytes("two sources");
  const hex = sha256Hex(bytes);
  const sources = (researchGlobals: string[], servingGlobals: string[]): SourceSpec[] => [
    { id: "research", keys: [{ pub: research }], allowGlobals: researchGlobals },
    { id: "serving", keys: [{ pub: serving }], allowGlobals: servingGlobals },
  ];
  const trustedNow = async () => {
    const record = await env.store.readRecord(hex);
    if (record === undefined) throw new Error("no record");
    return { record, trusted: recheckTrustAll({ envelopes: record.signatures, digestHex: hex, name: record.name, allowlist: env.allowlist, now: env.now }) };
  };

  beforeEach(async () => {
    env = await makeGatewayEnv(sources([SAFE], [SAFE]));
    for (const [pub, name] of [
      [research, "research/model"],
      [serving, "serving/model"],
    ] as const) {
      await publish(env.deps, { ...env.call, upload: await env.received(bytes), envelope: signFor(pub, bytes, name) });
    }
    // Accepts only under a policy that still allows SAFE.
    env.verdict = (_p, options) =>
      Promise.resolve(options.policy.allowGlobals.includes(SAFE) ? reportOf(undefined, "pickle") : reportOf("dangerous", "pickle"));
    env.audit.events.length = 0;
    env.inspections.length = 0;
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("acceptedUnderCurrentPolicy: the signature accepted under its source's policy as it is now, none once it changed", async () => {
    const before = await trustedNow();
    expect(acceptedUnderCurrentPolicy(before.record, before.trusted)?.verification.source.id).toBe("research");
    env.allowlist = allowlistOf(sources([SAFE, "x.Y"], [SAFE, "x.Y"]));
    const after = await trustedNow();
    expect(acceptedUnderCurrentPolicy(after.record, after.trusted)).toBeUndefined();
  });

  it("tries each trusted signature's current policy until one accepts; records that policy on that source's signatures only", async () => {
    env.allowlist = allowlistOf(sources([], [SAFE, "x.Y"]));
    const { record, trusted } = await trustedNow();
    const reinspector = new Reinspector({ store: env.store, inspect: env.deps.inspect, audit: env.audit, metrics: env.metrics });
    const admitted = await reinspector.admit(hex, record, trusted, { requestId: "req-9" });
    expect(admitted.verification.source.id).toBe("serving");
    expect(env.inspections.map((i) => i.options.policy.allowGlobals)).toEqual([[], [SAFE, "x.Y"]]);
    const servingPolicy = contentPolicyDigest(admitted.verification.source.pickle);
    expect(admitted.record.signatures.map((s) => [s.source, s.policyDigest === servingPolicy])).toEqual([
      ["research", false],
      ["serving", true],
    ]);
    expect(env.audit.events.map((e) => [e.type, e.source, e.codes, e.requestId])).toEqual([
      ["artifact.reinspected", "research", ["unsafe_artifact"], "req-9"],
      ["artifact.reinspected", "serving", undefined, "req-9"],
    ]);
  });

  it("every policy refuses: the first refusal's code, remembered (not inspected again for the same policy)", async () => {
    env.allowlist = allowlistOf(sources([], []));
    const { record, trusted } = await trustedNow();
    const reinspector = new Reinspector({ store: env.store, inspect: env.deps.inspect, audit: env.audit, metrics: env.metrics });
    const err = await reinspector.admit(hex, record, trusted, {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "unsafe_artifact", details: { source: "research", reinspected: true } });
    expect(env.inspections).toHaveLength(2);
    expect(await codeOfSettled(reinspector.admit(hex, record, trusted, {}))).toBe("unsafe_artifact");
    expect(env.inspections).toHaveLength(2);
  });

  it("a blob whose bytes are not the signed ones is integrity_error before any inspection", async () => {
    env.allowlist = allowlistOf(sources([SAFE, "x.Y"], [SAFE, "x.Y"]));
    const { record, trusted } = await trustedNow();
    const damaged = Buffer.from(bytes);
    damaged[7] = (damaged[7] ?? 0) ^ 1;
    await fsp.writeFile(env.store.blobPath(hex), damaged);
    const reinspector = new Reinspector({ store: env.store, inspect: env.deps.inspect, audit: env.audit, metrics: env.metrics });
    expect(await codeOfSettled(reinspector.admit(hex, record, trusted, {}))).toBe("integrity_error");
    expect(env.inspections).toEqual([]);
  });
});
