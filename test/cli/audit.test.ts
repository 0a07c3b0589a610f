import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { FileAuditLog } from "../../src/audit/fileLog";
import { runCli } from "../support/cli";

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mg-cli-audit-"));
  file = path.join(dir, "audit.log");
  const log = await FileAuditLog.open(file);
  for (let i = 0; i < 4; i++) await log.append({ type: "upload.accepted", name: `m${i.toString()}` });
  await log.close();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("modelgate audit verify", () => {
  it("prints count and head hash and exits 0 for an intact log", async () => {
    const res = await runCli(["audit", "verify", file]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/4 entries, head [0-9a-f]{64}/);
  });

  it("finds the log through MODELGATE_AUDIT_LOG or the data dir", async () => {
    expect((await runCli(["audit", "verify"], { env: { MODELGATE_AUDIT_LOG: file } })).code).toBe(0);
    expect((await runCli(["audit", "verify"], { env: { MODELGATE_DATA_DIR: dir } })).code).toBe(0);
    expect((await runCli(["audit", "verify"], { cwd: dir })).code).toBe(2); // ./data/audit.log does not exist
  });

  it("exits 1 with the first broken entry for an edited log", async () => {
    const lines = (await readFile(file, "utf8")).split("\n");
    lines[1] = lines[1]!.replace('"m1"', '"mX"');
    await writeFile(file, lines.join("\n"));
    const res = await runCli(["audit", "verify", file]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain("line 2: edited");
  });

  it("detects a cut tail with --head", async () => {
    const ok = await runCli(["audit", "verify", file]);
    const head = /head ([0-9a-f]{64})/.exec(ok.stdout)![1]!;
    const lines = (await readFile(file, "utf8")).split("\n");
    await writeFile(file, `${lines.slice(0, 3).join("\n")}\n`);
    const res = await runCli(["audit", "verify", file, "--head", head]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain("truncated");
    expect((await runCli(["audit", "verify", file, "--head", "xyz"])).code).toBe(2);
  });

  it("rejects bad usage", async () => {
    expect((await runCli(["audit"])).code).toBe(2);
    expect((await runCli(["audit", "check", file])).code).toBe(2);
  });
});
