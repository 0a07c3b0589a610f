import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { makeScanCommand, scanCommand } from "../../src/cli/commands/scan";
import type { Inspector } from "../../src/inspect/inspector";
import { inspectFile } from "../../src/formats/inspectFile";
import { buildPickle, callOf } from "../pickle/builders";
import { runCli, type CliRun } from "../support/cli";
import { makePublisher, publicKeyBase64 } from "../support/publisher";

const FIXTURES = path.join(__dirname, "..", "fixtures", "pickle-unit");

/** Run the command the way src/cli/main.ts does: a thrown GatewayError becomes its exit code. */
const scan = (args: string[], cwd: string): Promise<CliRun> => runCli(["scan", ...args], { cwd });

describe("modelgate scan (raw pickles)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-scan-"));
    copyFileSync(path.join(FIXTURES, "plain-p2.pkl"), path.join(dir, "plain.pkl"));
    copyFileSync(path.join(FIXTURES, "torch-state-dict.pkl"), path.join(dir, "weights.pkl"));
    copyFileSync(path.join(FIXTURES, "os-system-p4.pkl"), path.join(dir, "evil.pkl"));
    writeFileSync(path.join(dir, "sk.pkl"), buildPickle([["PROTO", 2], ...callOf("sklearn.tree", "DecisionTreeClassifier"), ["STOP"]]));
    writeFileSync(path.join(dir, "garbage.pkl"), "not a pickle at all");
    const pub = publicKeyBase64(makePublisher(7));
    writeFileSync(
      path.join(dir, "allowlist.json"),
      JSON.stringify({
        version: 1,
        sources: [{ id: "research", description: "r", keys: [{ publicKey: pub }], pickle: { allowGlobals: ["sklearn.*", "os.*"] } }],
      }),
    );
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("exit 0 and one ACCEPT line per accepted file", async () => {
    const r = await scan(["plain.pkl", "weights.pkl"], dir);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter((l) => l.startsWith("ACCEPT"))).toHaveLength(2);
  });

  it("exit 1 when any file is rejected, with the findings and imports in --json", async () => {
    const r = await scan(["plain.pkl", "evil.pkl", "--json"], dir);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as {
      files: {
        path: string;
        verdict: string;
        format: string;
        findings: { code: string; global?: string }[];
        imports: { module: string; name: string; safety: string }[];
      }[];
    };
    expect(doc.files.map((f) => [f.path, f.verdict, f.format])).toEqual([
      ["plain.pkl", "accept", "pickle"],
      ["evil.pkl", "reject", "pickle"],
    ]);
    const evil = doc.files[1]!;
    expect(evil.findings.map((f) => f.code)).toContain("dangerous_global");
    expect(evil.imports).toContainEqual(expect.objectContaining({ module: "posix", name: "system", safety: "dangerous" }));
  });

  it("human output names the finding and the imports to allow", async () => {
    const r = await scan(["sk.pkl"], dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^REJECT sk\.pkl \(pickle\)/);
    expect(r.stdout).toContain("unknown_global");
    expect(r.stdout).toContain("sklearn.tree.DecisionTreeClassifier");
  });

  it("--allow-global extends the policy, but never past the hard floor", async () => {
    expect((await scan(["sk.pkl", "--allow-global", "sklearn.*"], dir)).code).toBe(0);
    expect((await scan(["sk.pkl", "--allow-global", "sklearn.tree.DecisionTreeClassifier"], dir)).code).toBe(0);
    expect((await scan(["evil.pkl", "--allow-global", "posix.*", "--allow-global", "os.*"], dir)).code).toBe(1);
  });

  it("--policy/--source use the source's allowGlobals", async () => {
    expect((await scan(["sk.pkl", "--policy", "allowlist.json", "--source", "research"], dir)).code).toBe(0);
    expect((await scan(["evil.pkl", "--policy", "allowlist.json", "--source", "research"], dir)).code).toBe(1);
  });

  it("exit 2 on usage errors: no file, bad pattern, --policy without --source, unknown source, unknown flag", async () => {
    expect((await scan([], dir)).code).toBe(2);
    expect((await scan(["sk.pkl", "--allow-global", "*"], dir)).code).toBe(2);
    expect((await scan(["sk.pkl", "--allow-global", "builtins.__import__"], dir)).code).toBe(2);
    expect((await scan(["sk.pkl", "--policy", "allowlist.json"], dir)).code).toBe(2);
    expect((await scan(["sk.pkl", "--policy", "allowlist.json", "--source", "nope"], dir)).code).toBe(2);
    expect((await scan(["sk.pkl", "--bogus"], dir)).code).toBe(2);
  });

  it("exit 2 on I/O errors (missing file), still reporting the other files", async () => {
    const r = await scan(["missing.pkl", "plain.pkl", "--json"], dir);
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout) as { files: unknown[]; errors: { path: string; code: string }[] };
    expect(doc.files).toHaveLength(1);
    expect(doc.errors[0]?.path).toBe("missing.pkl");
  });

  it("rejects a file that is not a pickle (text named .pkl) as unknown_format", async () => {
    const r = await scan(["garbage.pkl", "--json"], dir);
    expect(r.code).toBe(1);
    const codes = (JSON.parse(r.stdout) as { files: { findings: { code: string }[] }[] }).files[0]?.findings.map((f) => f.code);
    expect(codes).toContain("unknown_format");
  });

  it("runs over any Inspector", async () => {
    const seen: string[] = [];
    const recording: Inspector = (file, options) => {
      seen.push(path.basename(file));
      return inspectFile(file, options);
    };
    const cmd = makeScanCommand(recording);
    let out = "";
    const code = await cmd.run(["plain.pkl"], { stdout: (t) => (out += t), stderr: () => undefined, env: {}, cwd: dir });
    expect(code).toBe(0);
    expect(out).toContain("ACCEPT");
    expect(seen).toEqual(["plain.pkl"]);
    expect(scanCommand.name).toBe("scan");
  });

  it("says how many findings a capped report left out, in --json and in the human output", async () => {
    const capped: Inspector = () =>
      Promise.resolve({
        verdict: "reject",
        format: "zip",
        root: { kind: "file", path: "", findings: [], children: [] },
        findings: [{ code: "opaque_member", severity: "suspicious", message: "m" }],
        imports: [],
        pickleFree: true,
        omittedFindings: { count: 500, byCode: { opaque_member: 500 } },
      });
    const cmd = makeScanCommand(capped);
    let json = "";
    expect(await cmd.run(["plain.pkl", "--json"], { stdout: (t) => (json += t), stderr: () => undefined, env: {}, cwd: dir })).toBe(1);
    const doc = JSON.parse(json) as { files: { omittedFindings?: { count: number } }[] };
    expect(doc.files[0]?.omittedFindings?.count).toBe(500);
    let human = "";
    await cmd.run(["plain.pkl"], { stdout: (t) => (human += t), stderr: () => undefined, env: {}, cwd: dir });
    expect(human).toContain("500 more finding(s) not listed (opaque_member 500)");
  });
});
