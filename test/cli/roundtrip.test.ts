import { spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { BIN, ROOT, ensureBuilt } from "../support/binary";

const root = ROOT;
const bin = BIN;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function modelgate(cwd: string, ...args: string[]): Run {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd, encoding: "utf8", env: { PATH: process.env.PATH ?? "" } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("CLI round trip through the real binary", () => {
  let dir: string;

  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(path.join(tmpdir(), "mg-roundtrip-"));
    // A copy of the repository's allowlist and keys: trust add must extend it, not replace it.
    copyFileSync(path.join(root, "allowlist.json"), path.join(dir, "allowlist.json"));
    mkdirSync(path.join(dir, "keys"));
    copyFileSync(path.join(root, "keys", "example-publisher.pub"), path.join(dir, "keys", "example-publisher.pub"));
    writeFileSync(path.join(dir, "model.safetensors"), Buffer.alloc(3 * 1024 * 1024 + 1, 0x17));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("keygen, trust add, sign, verify; a modified file and an unknown key are rejected", () => {
    const keygen = modelgate(dir, "keygen", "--out", "publisher");
    expect(keygen.status).toBe(0);
    const keyId = /key id: ([0-9a-f]{64})/.exec(keygen.stdout)?.[1];
    expect(keyId).toBeDefined();

    expect(modelgate(dir, "trust", "add", "--source", "research", "--pub", "publisher.pub").status).toBe(0);
    const list = modelgate(dir, "trust", "list");
    expect(list.status).toBe(0);
    expect(list.stdout).toContain("example-publisher");
    expect(list.stdout).toContain(`${keyId ?? ""}  active`);

    const sign = modelgate(dir, "sign", "model.safetensors", "--key", "publisher.key", "--name", "research/model.safetensors");
    expect(sign.status).toBe(0);
    expect(sign.stdout).toMatch(/^sha256:[0-9a-f]{64}\n/);
    expect(existsSync(path.join(dir, "model.safetensors.sig.json"))).toBe(true);

    const ok = modelgate(dir, "verify", "model.safetensors", "--sig", "model.safetensors.sig.json");
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain("source 'research'");

    copyFileSync(path.join(dir, "model.safetensors"), path.join(dir, "modified.safetensors"));
    appendFileSync(path.join(dir, "modified.safetensors"), "\0");
    const modified = modelgate(dir, "verify", "modified.safetensors", "--sig", "model.safetensors.sig.json");
    expect(modified.status).toBe(1);
    expect(modified.stderr).toMatch(/^modelgate verify: digest_mismatch: [^\n]+\n$/);

    expect(modelgate(dir, "keygen", "--out", "stranger").status).toBe(0);
    expect(
      modelgate(dir, "sign", "model.safetensors", "--key", "stranger.key", "--name", "research/model.safetensors", "--out", "stranger.sig.json").status,
    ).toBe(0);
    const unknown = modelgate(dir, "verify", "model.safetensors", "--sig", "stranger.sig.json");
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/^modelgate verify: untrusted_source: [^\n]+\n$/);
  });

  it("--help on every signing command, exit 2 with one line for usage and I/O errors", () => {
    for (const cmd of ["keygen", "sign", "verify", "trust"]) {
      const help = modelgate(dir, cmd, "--help");
      expect([cmd, help.status]).toEqual([cmd, 0]);
      expect(help.stdout).toContain(`usage: modelgate ${cmd}`);
    }
    const missing = modelgate(dir, "verify", "nope.bin", "--sig", "nope.json");
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^modelgate verify: io_error: [^\n]+\n$/);
    const usage = modelgate(dir, "sign");
    expect(usage.status).toBe(2);
    expect(usage.stderr).not.toMatch(/\n\s+at /);
  });

  it("uses MODELGATE_ALLOWLIST when --allowlist is absent", () => {
    const r = spawnSync(process.execPath, [bin, "trust", "list"], {
      cwd: tmpdir(),
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", MODELGATE_ALLOWLIST: path.join(dir, "allowlist.json") },
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("research");
  });
});
