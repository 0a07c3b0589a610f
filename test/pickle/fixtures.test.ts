import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BufferSource } from "../../src/bytes/source";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { summarize } from "../../src/inspect/report";
import { inspectPickleSource, startsWithWellFormedPickle } from "../../src/pickle";

const DIR = join(__dirname, "..", "fixtures", "pickle-unit");
const manifest = JSON.parse(readFileSync(join(DIR, "manifest.json"), "utf8")) as Record<string, { verdict: string; note: string }>;

function scan(name: string) {
  const bytes = readFileSync(join(DIR, name));
  return summarize(inspectPickleSource(new BufferSource(bytes), name, { policy: DEFAULT_CONTENT_POLICY }), "pickle");
}

describe("real CPython / numpy / torch pickles (test/fixtures/pickle-unit)", () => {
  it.each(Object.entries(manifest))("%s is %p", (name, entry) => {
    const report = scan(name);
    expect({ name, verdict: report.verdict, findings: report.verdict === entry.verdict ? [] : report.findings }).toEqual({
      name,
      verdict: entry.verdict,
      findings: [],
    });
    expect(startsWithWellFormedPickle(new BufferSource(readFileSync(join(DIR, name))))).toBe(!name.startsWith("broken"));
  });

  it("reports the payload's import and the break of a broken pickle", () => {
    const report = scan("broken-after-payload.pkl");
    expect(report.imports.map((i) => `${i.module}.${i.name}:${i.safety}`)).toContain("posix.system:dangerous");
    expect(report.findings.map((f) => f.code)).toEqual(expect.arrayContaining(["dangerous_global", "malformed_pickle"]));
  });

  it("finds the payload in the second pickle of a sequence", () => {
    const report = scan("payload-second-stream.pkl");
    const bad = report.findings.find((f) => f.code === "dangerous_global");
    expect(bad?.location).toBe("payload-second-stream.pkl#pickle[1]");
  });

  it("accepts the torch state_dict and reports its persistent ids", () => {
    const report = scan("torch-state-dict.pkl");
    expect(report.root.details?.persistentIds).toBe(4);
    expect(report.imports.map((i) => `${i.module}.${i.name}`)).toEqual(expect.arrayContaining(["torch._utils._rebuild_tensor_v2", "collections.OrderedDict"]));
  });

  it("rejects pickle.dumps of tensors (nested torch.load through _load_from_bytes)", () => {
    const report = scan("torch-pickle-dumps.pkl");
    expect(report.findings.some((f) => f.code === "dangerous_global" && f.global === "torch.storage._load_from_bytes")).toBe(true);
  });
});
