import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { signCommand } from "../../src/cli/commands/sign";
import { verifyCommand } from "../../src/cli/commands/verify";
import { MAX_ENVELOPE_BYTES } from "../../src/limits";
import { privateKeyToPem, publicKeyToPem } from "../../src/trust";
import { runCommand } from "../trust/cliRun";
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
    expect((await runCommand(signCommand, ["model.bin", "--key", "k.key", "--name", "research/model.bin"], dir)).code).toBe(0);
    expect((await runCommand(signCommand, ["other.bin", "--key", "s.key", "--name", "research/model.bin"], dir)).code).toBe(0);
    expect((await runCommand(signCommand, ["model.bin", "--key", "k.key", "--name", "prod/model.bin", "--out", "prod.sig.json"], dir)).code).toBe(0);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("exit 0 and prints the source when trusted and valid (allowlist from ./allowlist.json)", async () => {
    const r = await runCommand(verifyCommand, ["model.bin", "--sig", "model.bin.sig.json"], dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("source 'research'");
    expect(r.stdout).toContain(k.keyId);
  });

  it("takes the allowlist from --allowlist, then MODELGATE_ALLOWLIST", async () => {
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "model.bin.sig.json", "--allowlist", "revoked.json"], dir)).toMatchObject({
      code: 1,
      errorCode: "key_revoked",
    });
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "model.bin.sig.json"], dir, { MODELGATE_ALLOWLIST: "revoked.json" })).toMatchObject({
      code: 1,
      errorCode: "key_revoked",
    });
    expect(
      await runCommand(verifyCommand, ["model.bin", "--sig", "model.bin.sig.json", "--allowlist", "allowlist.json"], dir, {
        MODELGATE_ALLOWLIST: "revoked.json",
      }),
    ).toMatchObject({ code: 0 });
  });

  it("exit 1 with the rejection code: untrusted_source, name_not_allowed, digest_mismatch", async () => {
    expect(await runCommand(verifyCommand, ["other.bin", "--sig", "other.bin.sig.json"], dir)).toMatchObject({ code: 1, errorCode: "untrusted_source" });
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "prod.sig.json"], dir)).toMatchObject({ code: 1, errorCode: "name_not_allowed" });
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "model.bin.sig.json", "--name", "research/else"], dir)).toMatchObject({
      code: 1,
      errorCode: "name_not_allowed",
    });
    writeFileSync(path.join(dir, "changed.bin"), "model bytes");
    appendFileSync(path.join(dir, "changed.bin"), "!");
    const r = await runCommand(verifyCommand, ["changed.bin", "--sig", "model.bin.sig.json"], dir);
    expect(r).toMatchObject({ code: 1, errorCode: "digest_mismatch" });
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("exit 1 malformed_signature for a garbage or oversized signature file", async () => {
    writeFileSync(path.join(dir, "garbage.json"), "{]");
    writeFileSync(path.join(dir, "huge.json"), " ".repeat(MAX_ENVELOPE_BYTES + 1));
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "garbage.json"], dir)).toMatchObject({ code: 1, errorCode: "malformed_signature" });
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "huge.json"], dir)).toMatchObject({ code: 1, errorCode: "malformed_signature" });
  });

  it("exit 2 for usage and I/O errors and for an invalid allowlist", async () => {
    writeFileSync(
      path.join(dir, "typo.json"),
      JSON.stringify({ version: 1, sources: [{ id: "x", description: "", keys: [{ path: "keys/k.pub", revokd: true }] }] }),
    );
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "model.bin.sig.json", "--allowlist", "typo.json"], dir)).toMatchObject({
      code: 2,
      errorCode: "invalid_allowlist",
    });
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "model.bin.sig.json", "--allowlist", "none.json"], dir)).toMatchObject({
      code: 2,
      errorCode: "io_error",
    });
    expect(await runCommand(verifyCommand, ["missing.bin", "--sig", "model.bin.sig.json"], dir)).toMatchObject({ code: 2, errorCode: "io_error" });
    expect(await runCommand(verifyCommand, ["model.bin", "--sig", "missing.json"], dir)).toMatchObject({ code: 2, errorCode: "io_error" });
    expect(await runCommand(verifyCommand, ["model.bin"], dir)).toMatchObject({ code: 2, errorCode: "usage" });
    expect(await runCommand(verifyCommand, ["--sig", "x"], dir)).toMatchObject({ code: 2, errorCode: "usage" });
  });
});
