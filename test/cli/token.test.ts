import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { readTokensFile, TokenStore } from "../../src/auth/tokens";
import { runCli } from "../support/cli";

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mg-cli-token-"));
  file = path.join(dir, "tokens.json");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("modelgate token", () => {
  it("creates a token, prints it once, stores only its hash", async () => {
    const res = await runCli(["token", "create", "--id", "ci", "--scope", "publish,read", "--tokens", file]);
    expect(res.code).toBe(0);
    const token = res.stdout.trim();
    expect(token).toMatch(/^mgt_/);
    expect(res.stderr).not.toContain(token);
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(token);
    const content = await readTokensFile(file);
    expect(content.tokens).toEqual([expect.objectContaining({ id: "ci", scopes: ["publish", "read"] })]);
    expect(new TokenStore(content).authenticate(token)?.id).toBe("ci");
  });

  it("reads the file from MODELGATE_TOKENS_FILE, appends, and refuses a duplicate id", async () => {
    const env = { MODELGATE_TOKENS_FILE: file };
    expect((await runCli(["token", "create", "--id", "a", "--scope", "read"], { env: env })).code).toBe(0);
    expect((await runCli(["token", "create", "--id", "b", "--scope", "admin"], { env: env })).code).toBe(0);
    const dup = await runCli(["token", "create", "--id", "a", "--scope", "publish"], { env: env });
    expect(dup.code).toBe(2);
    expect(dup.stderr).toContain("invalid_config");
    expect((await readTokensFile(file)).tokens.map((t) => t.id)).toEqual(["a", "b"]);
  });

  it("lists ids and scopes without secrets, and revokes", async () => {
    const created = await runCli(["token", "create", "--id", "ops", "--scope", "admin,metrics", "--tokens", file]);
    const list = await runCli(["token", "list", "--tokens", file]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^ops\tadmin,metrics\t\d{4}-/);
    expect(list.stdout).not.toContain(created.stdout.trim());
    expect(list.stdout).not.toMatch(/[0-9a-f]{64}/);
    expect((await runCli(["token", "revoke", "--id", "ops", "--tokens", file])).code).toBe(0);
    expect((await readTokensFile(file)).tokens).toEqual([]);
    expect((await runCli(["token", "revoke", "--id", "ops", "--tokens", file])).code).toBe(1);
  });

  it("rejects bad usage with exit 2", async () => {
    for (const argv of [
      ["token"],
      ["token", "frobnicate", "--tokens", file],
      ["token", "create", "--scope", "read", "--tokens", file],
      ["token", "create", "--id", "../x", "--scope", "read", "--tokens", file],
      ["token", "create", "--id", "x", "--scope", "root", "--tokens", file],
      ["token", "create", "--id", "x", "--tokens", file],
      ["token", "create", "--id", "x", "--scope", "read"],
      ["token", "create", "--id", "x", "--scope", "read", "--tokens", file, "--bogus"],
    ]) {
      const res = await runCli(argv);
      expect({ argv, code: res.code }).toEqual({ argv, code: 2 });
      expect(res.stdout).toBe("");
    }
  });

  it("refuses to overwrite a corrupt tokens file and honours the lock", async () => {
    await writeFile(file, "{broken");
    expect((await runCli(["token", "create", "--id", "x", "--scope", "read", "--tokens", file])).code).toBe(2);
    expect(await readFile(file, "utf8")).toBe("{broken");
    await rm(file);
    await writeFile(`${file}.lock`, "");
    const locked = await runCli(["token", "create", "--id", "x", "--scope", "read", "--tokens", file]);
    expect(locked.code).toBe(2);
    expect(locked.stderr).toContain("io_error");
  });
});
