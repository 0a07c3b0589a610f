import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { MAX_ENVELOPE_BYTES } from "../../src/limits";
import { privateKeyToPem, publicKeyToPem } from "../../src/trust";
import { runCli } from "../support/cli";
import { testKey } from "../trust/helpers";

describe("modelgate verify", () => {
  let dir: string;
  const k = testKey(11);
  const stranger = testKey(12);

  function allowlist(file: string, keys: Record<string, unknown>[], names?: string[]) {
    writeFileSync(file, JSON.stringify({ version: 1, sources: [{ id: "research", description: "r", keys, ...(names ? { names } : {}) }] }));
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-verify-"));
    mkdirSync(path.join(dir, "keys"));
    writeFileSync(path.join(dir, "keys", "k.pub"), publicKeyToPem(k.publicKey));
    writeFileSync(path.join(dir, "k.key"), privateKeyToPem(k.secretKey));
    writeFileSync(path.join(dir, "s.key"), privateKeyToPem(stranger.secretKey));
    allowlist(path.join(dir, "allowlist.json"), [{ path: "keys/k.pub" }], ["research/**"]);
    allowlist(path.join(dir, "revoked.json"), [{ path: "keys/k.pub", revoked: true }]);
    writeFileSync(path.join(dir, "model.bin"), "model bytes");
    writeFileSync(path.join(dir, "other.bin"), "model bytes");
    expect((await runCli(["sign", "model.bin", "--key", "k.key", "--name", "research/model.bin"], { cwd: dir })).code).toBe(0);
    expect((await runCli(["sign", "other.bin", "--key", "s.key", "--name", "research/model.bin"], { cwd: dir })).code).toBe(0);
    expect((await runCli(["sign", "model.bin", "--key", "k.key", "--name", "prod/model.bin", "--out", "prod.sig.json"], { cwd: dir })).code).toBe(0);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("exit 0 and prints the source when trusted and valid (allowlist from ./allowlist.json)", async () => {
    const r = await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("source 'research'");
    expect(r.stdout).toContain(k.keyId);
  });

  it("takes the allowlist from --allowlist, then MODELGATE_ALLOWLIST", async () => {
    expect(await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json", "--allowlist", "revoked.json"], { cwd: dir })).toMatchObject({
      code: 1,
      errorCode: "key_revoked",
    });
    expect(await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json"], { env: { MODELGATE_ALLOWLIST: "revoked.json" }, cwd: dir })).toMatchObject({
      code: 1,
      errorCode: "key_revoked",
    });
    expect(
      await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json", "--allowlist", "allowlist.json"], {
        env: {
          MODELGATE_ALLOWLIST: "revoked.json",
        },
        cwd: dir,
      }),
    ).toMatchObject({ code: 0 });
  });

  it("exit 1 with the rejection code: untrusted_source, name_not_allowed, digest_mismatch", async () => {
    expect(await runCli(["verify", "other.bin", "--sig", "other.bin.sig.json"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "untrusted_source" });
    expect(await runCli(["verify", "model.bin", "--sig", "prod.sig.json"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "name_not_allowed" });
    expect(await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json", "--name", "research/else"], { cwd: dir })).toMatchObject({
      code: 1,
      errorCode: "name_not_allowed",
    });
    writeFileSync(path.join(dir, "changed.bin"), "model bytes");
    appendFileSync(path.join(dir, "changed.bin"), "!");
    const r = await runCli(["verify", "changed.bin", "--sig", "model.bin.sig.json"], { cwd: dir });
    expect(r).toMatchObject({ code: 1, errorCode: "digest_mismatch" });
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("exit 1 malformed_signature for a garbage or oversized signature file", async () => {
    writeFileSync(path.join(dir, "garbage.json"), "{]");
    writeFileSync(path.join(dir, "huge.json"), " ".repeat(MAX_ENVELOPE_BYTES + 1));
    expect(await runCli(["verify", "model.bin", "--sig", "garbage.json"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "malformed_signature" });
    expect(await runCli(["verify", "model.bin", "--sig", "huge.json"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "malformed_signature" });
  });

  it("exit 2 for usage and I/O errors and for an invalid allowlist", async () => {
    writeFileSync(
      path.join(dir, "typo.json"),
      JSON.stringify({ version: 1, sources: [{ id: "x", description: "", keys: [{ path: "keys/k.pub", revokd: true }] }] }),
    );
    expect(await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json", "--allowlist", "typo.json"], { cwd: dir })).toMatchObject({
      code: 2,
      errorCode: "invalid_allowlist",
    });
    expect(await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json", "--allowlist", "none.json"], { cwd: dir })).toMatchObject({
      code: 2,
      errorCode: "io_error",
    });
    expect(await runCli(["verify", "missing.bin", "--sig", "model.bin.sig.json"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "io_error" });
    expect(await runCli(["verify", "model.bin", "--sig", "missing.json"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "io_error" });
    expect(await runCli(["verify", "model.bin"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "usage" });
    expect(await runCli(["verify", "--sig", "x"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "usage" });
  });
});
