import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { trustCommand } from "../../src/cli/commands/trust";
import { loadAllowlist, publicKeyToPem } from "../../src/trust";
import { runCli } from "../support/cli";
import { testKey } from "../trust/helpers";

describe("modelgate trust", () => {
  let dir: string;
  const a = testKey(21);
  const b = testKey(22);

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-trust-"));
    mkdirSync(path.join(dir, "conf", "keys"), { recursive: true });
    mkdirSync(path.join(dir, "elsewhere"));
    writeFileSync(path.join(dir, "elsewhere", "a.pub"), publicKeyToPem(a.publicKey));
    writeFileSync(path.join(dir, "elsewhere", "b.b64"), Buffer.from(b.publicKey).toString("base64"));
    writeFileSync(path.join(dir, "conf", "keys", "b.pub"), publicKeyToPem(b.publicKey));
    writeFileSync(
      path.join(dir, "conf", "allowlist.json"),
      `${JSON.stringify({ version: 1, sources: [{ id: "research", description: "kept as written", keys: [{ path: "keys/b.pub" }], names: ["research/**"], threshold: 1 }] }, null, 2)}\n`,
    );
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const al = () => path.join(dir, "conf", "allowlist.json");

  it("adds a key to an existing source, copying it into keys/, keeping the file valid and 2-space formatted", async () => {
    const r = await runCli(["trust", "add", "--source", "research", "--pub", "elsewhere/a.pub", "--allowlist", "conf/allowlist.json"], { cwd: dir });
    expect(r.code).toBe(0);
    const text = readFileSync(al(), "utf8");
    expect(text).toBe(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
    const loaded = loadAllowlist(al());
    expect(loaded.sources).toHaveLength(1);
    expect(loaded.sources[0]?.description).toBe("kept as written");
    expect(loaded.sources[0]?.names).toEqual(["research/**"]);
    expect(loaded.sources[0]?.keys.map((k) => k.keyId)).toEqual([b.keyId, a.keyId]);
    expect(loaded.sources[0]?.keys[1]?.origin).toBe(`keys/research-${a.keyId.slice(0, 16)}.pub`);
    expect(readdirSync(path.join(dir, "conf")).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("creates a new source; references a key already under the allowlist's directory in place", async () => {
    const r = await runCli(["trust", "add", "--source", "ops", "--pub", "conf/keys/b.pub", "--allowlist", "conf/allowlist.json"], { cwd: dir });
    expect(r.code).toBe(0);
    const ops = loadAllowlist(al()).sources.find((s) => s.id === "ops");
    expect(ops?.keys.map((k) => [k.keyId, k.origin])).toEqual([[b.keyId, "keys/b.pub"]]);
    expect(ops?.threshold).toBe(1);
    expect(ops?.names).toBeUndefined();
  });

  it("accepts a raw base64 public key file and is idempotent", async () => {
    const args = ["add", "--source", "ops", "--pub", "elsewhere/b.b64", "--allowlist", "conf/allowlist.json"];
    expect((await runCli(["trust", ...args], { cwd: dir })).code).toBe(0);
    const before = readFileSync(al(), "utf8");
    const again = await runCli(["trust", ...args], { cwd: dir });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("already");
    expect(readFileSync(al(), "utf8")).toBe(before);
  });

  it("creates allowlist.json (from MODELGATE_ALLOWLIST) when it does not exist", async () => {
    expect(
      (await runCli(["trust", "add", "--source", "first", "--pub", "elsewhere/a.pub"], { env: { MODELGATE_ALLOWLIST: "fresh/allowlist.json" }, cwd: dir }))
        .code,
    ).toBe(0);
    expect(loadAllowlist(path.join(dir, "fresh", "allowlist.json")).sources[0]?.keys[0]?.keyId).toBe(a.keyId);
  });

  it("refuses bad input without touching the allowlist", async () => {
    const before = readFileSync(al(), "utf8");
    writeFileSync(path.join(dir, "bad.pub"), "not a key");
    const cases: [string[], string][] = [
      [["add", "--source", "has space", "--pub", "elsewhere/a.pub"], "usage"],
      [["add", "--source", "x", "--pub", "bad.pub"], "invalid_key"],
      [["add", "--source", "x", "--pub", "missing.pub"], "io_error"],
      [["add", "--pub", "elsewhere/a.pub"], "usage"],
      [["add", "--source", "x"], "usage"],
      [["remove", "--source", "x"], "usage"],
      [[], "usage"],
    ];
    for (const [args, code] of cases) {
      const r = await runCli(["trust", ...args, "--allowlist", "conf/allowlist.json"], { cwd: dir });
      expect([args.join(" "), r.code, r.errorCode]).toEqual([args.join(" "), 2, code]);
    }
    expect(readFileSync(al(), "utf8")).toBe(before);
  });

  it("refuses to edit an invalid allowlist (exit 2)", async () => {
    writeFileSync(al(), JSON.stringify({ version: 1, sources: [{ id: "x", description: "", keys: [{ path: "keys/b.pub" }], treshold: 2 }] }));
    const r = await runCli(["trust", "add", "--source", "x", "--pub", "elsewhere/a.pub", "--allowlist", "conf/allowlist.json"], { cwd: dir });
    expect([r.code, r.errorCode]).toEqual([2, "invalid_allowlist"]);
    expect(existsSync(path.join(dir, "conf", "keys", `x-${a.keyId.slice(0, 16)}.pub`))).toBe(false);
  });

  it("lists sources, key ids and states", async () => {
    writeFileSync(
      al(),
      JSON.stringify({
        version: 1,
        sources: [
          {
            id: "research",
            description: "R",
            keys: [
              { path: "keys/b.pub", revoked: true },
              { publicKey: Buffer.from(a.publicKey).toString("base64"), notAfter: "2000-01-01T00:00:00Z" },
            ],
            names: ["research/**"],
          },
          { id: "future", description: "F", keys: [{ publicKey: Buffer.from(a.publicKey).toString("base64"), notBefore: "2999-01-01T00:00:00Z" }] },
          { id: "ok", description: "O", keys: [{ publicKey: Buffer.from(a.publicKey).toString("base64") }] },
          { id: "other", description: "B elsewhere", keys: [{ path: "keys/b.pub" }] },
        ],
      }),
    );
    const r = await runCli(["trust", "list", "--allowlist", "conf/allowlist.json"], { cwd: dir });
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines.find((l) => l.includes(b.keyId) && l.includes("keys/b.pub") && l.includes("revoked"))).toBeDefined();
    expect(lines.find((l) => l.includes(a.keyId) && l.includes("expired") && l.includes("inline"))).toBeDefined();
    expect(lines.find((l) => l.includes("not-yet-valid"))).toBeDefined();
    expect(lines.filter((l) => l.includes("active"))).toHaveLength(1);
    // Revocation is global: b, revoked by "research", is shown revoked where "other" lists it.
    expect(lines.find((l) => l.includes(b.keyId) && l.includes("revoked-elsewhere"))).toBeDefined();
    expect(r.stdout).toContain("research/**");
  });

  it("has a usage text naming both subcommands", () => {
    expect(trustCommand.usage).toContain("modelgate trust add --source <id> --pub <pubfile> [--allowlist <path>]");
    expect(trustCommand.usage).toContain("modelgate trust list");
  });
});
