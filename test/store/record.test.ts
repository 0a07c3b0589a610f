import { summarize } from "../../src/inspect/report";
import { namesOf } from "../../src/store/names";
import { mergeApproval, recordPolicyAcceptance, sameApproval } from "../../src/store/record";
import type { ArtifactRecord, StoredSignature } from "../../src/store/types";

/** The record merge rule is pure: every backend (filesystem today, object storage next) applies the same one. */

const report = (format: string) => summarize({ kind: "file", path: "", findings: [], children: [] }, format);

function sig(source: string, envelope: string, extra: Partial<StoredSignature> = {}): StoredSignature {
  return { source, keyIds: ["k1"], envelope, addedAt: "2026-01-01T00:00:00.000Z", ...extra };
}

function record(signatures: StoredSignature[], extra: Partial<ArtifactRecord> = {}): ArtifactRecord {
  return {
    digest: `sha256:${"ab".repeat(32)}`,
    size: 3,
    name: "a/model",
    format: "safetensors",
    createdAt: "2026-01-01T00:00:00.000Z",
    signatures,
    inspection: report("safetensors"),
    ...extra,
  };
}

describe("sameApproval", () => {
  it("the same envelope text is the same approval whoever sent it", () => {
    expect(sameApproval(sig("research", "env"), sig("serving", "env"), "a/model")).toBe(true);
  });

  it("another spelling by the same source, for the same name, with the same keys (in any order, repeated) is the same approval", () => {
    const stored = sig("research", "env-1", { keyIds: ["k1", "k2"], name: "a/model" });
    expect(sameApproval(stored, sig("research", "env-1 respelled", { keyIds: ["k2", "k1", "k2"], name: "a/model" }), "a/model")).toBe(true);
  });

  it("an older signature without a name stands for the record's name", () => {
    expect(sameApproval(sig("research", "env-1"), sig("research", "env-2", { name: "a/model" }), "a/model")).toBe(true);
    expect(sameApproval(sig("research", "env-1"), sig("research", "env-2", { name: "b/model" }), "a/model")).toBe(false);
  });

  it("another source, other keys or another name is another approval", () => {
    const stored = sig("research", "env-1", { name: "a/model" });
    expect(sameApproval(stored, sig("serving", "env-2", { name: "a/model" }), "a/model")).toBe(false);
    expect(sameApproval(stored, sig("research", "env-2", { name: "a/model", keyIds: ["k9"] }), "a/model")).toBe(false);
    expect(sameApproval(stored, sig("research", "env-2", { name: "b/model" }), "a/model")).toBe(false);
  });
});

describe("mergeApproval", () => {
  it("appends a new approval, keeps the first acceptance's name, time and report, and adds the new name", () => {
    const existing = record([sig("research", "env-1", { name: "a/model" })], { names: ["a/model"] });
    const merged = mergeApproval(existing, sig("serving", "env-2", { name: "b/model", addedAt: "2026-02-01T00:00:00.000Z" }));
    expect(merged?.signatures.map((s) => s.source)).toEqual(["research", "serving"]);
    expect(merged?.names).toEqual(["a/model", "b/model"]);
    expect(merged?.name).toBe("a/model");
    expect(merged?.createdAt).toBe(existing.createdAt);
    expect(merged?.inspection).toBe(existing.inspection);
    expect(existing.signatures).toHaveLength(1);
  });

  it("a record written before names were kept gets both names", () => {
    const legacy = record([sig("research", "env-1")]);
    const merged = mergeApproval(legacy, sig("serving", "env-2", { name: "b/model" }));
    expect(merged?.names).toEqual(["a/model", "b/model"]);
    expect(merged && namesOf(merged)).toEqual(["a/model", "b/model"]);
  });

  it("the same approval under the policy already recorded, or without a policy, changes nothing", () => {
    const existing = record([sig("research", "env-1", { policyDigest: "p1" })]);
    expect(mergeApproval(existing, sig("research", "env-1", { policyDigest: "p1" }))).toBeUndefined();
    expect(mergeApproval(existing, sig("research", "env-1 respelled"))).toBeUndefined();
  });

  it("the same approval inspected under a new policy records that policy on the stored signature, and adds nothing", () => {
    const existing = record([sig("research", "env-1", { policyDigest: "p1" }), sig("serving", "env-2", { policyDigest: "p1" })]);
    const merged = mergeApproval(existing, sig("research", "env-1 respelled", { policyDigest: "p2" }));
    expect(merged?.signatures.map((s) => [s.envelope, s.policyDigest])).toEqual([
      ["env-1", "p2"],
      ["env-2", "p1"],
    ]);
  });
});

describe("recordPolicyAcceptance", () => {
  it("replaces the report and records the policy on the signatures the acceptance holds for, only those", () => {
    const existing = record([sig("research", "env-1", { policyDigest: "old" }), sig("serving", "env-2", { policyDigest: "old" }), sig("research", "env-3")]);
    const next = recordPolicyAcceptance(existing, { inspection: report("pickle"), envelopes: new Set(["env-1", "env-3"]), policyDigest: "new" });
    expect(next.inspection.format).toBe("pickle");
    expect(next.signatures.map((s) => s.policyDigest)).toEqual(["new", "old", "new"]);
    expect(existing.signatures.map((s) => s.policyDigest)).toEqual(["old", "old", undefined]);
  });
});
