import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { keygenCommand } from "../../src/cli/commands/keygen";
import { keyIdOf, parsePublicKey, readPrivateKey } from "../../src/trust";
import { runCli } from "../support/cli";

describe("modelgate keygen", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-keygen-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes <prefix>.key (PKCS#8, 0600) and <prefix>.pub (SPKI) and prints the key id", async () => {
    const r = await runCli(["keygen", "--out", "pub1"], { cwd: dir });
    expect(r.code).toBe(0);
    const key = readFileSync(path.join(dir, "pub1.key"), "utf8");
    const pub = readFileSync(path.join(dir, "pub1.pub"), "utf8");
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(pub).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(statSync(path.join(dir, "pub1.key")).mode & 0o777).toBe(0o600);
    const pair = readPrivateKey(key);
    expect(Array.from(pair.publicKey)).toEqual(Array.from(parsePublicKey(pub)));
    expect(r.stdout).toContain(`key id: ${keyIdOf(pair.publicKey)}`);
    expect(r.stdout).not.toContain("PRIVATE KEY");
  });

  it("refuses to overwrite either file (exit 2), leaving them untouched", async () => {
    writeFileSync(path.join(dir, "k.pub"), "keep");
    const r = await runCli(["keygen", "--out", "k"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.errorCode).toBe("io_error");
    expect(readFileSync(path.join(dir, "k.pub"), "utf8")).toBe("keep");
    expect(() => statSync(path.join(dir, "k.key"))).toThrow();
    expect((await runCli(["keygen", "--out", "k2"], { cwd: dir })).code).toBe(0);
    expect((await runCli(["keygen", "--out", "k2"], { cwd: dir })).code).toBe(2);
  });

  it("usage errors: missing --out, unknown flag, stray argument", async () => {
    for (const args of [[], ["--out"], ["--bogus", "x"], ["--out", "a", "extra"]]) {
      const r = await runCli(["keygen", ...args], { cwd: dir });
      expect([r.code, r.errorCode]).toEqual([2, "usage"]);
    }
  });

  it("has a usage text", () => {
    expect(keygenCommand.usage).toMatch(/^usage: modelgate keygen --out <prefix>/);
  });
});
