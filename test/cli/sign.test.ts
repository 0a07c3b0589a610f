import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parseEnvelope, privateKeyToPem } from "../../src/trust";
import { runCli } from "../support/cli";
import { testKey } from "../trust/helpers";

describe("modelgate sign", () => {
  let dir: string;
  const k = testKey(7);
  const bytes = Buffer.alloc(2 * 1024 * 1024 + 3, 0x42);
  const digest = createHash("sha256").update(bytes).digest("hex");

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-sign-"));
    writeFileSync(path.join(dir, "model.bin"), bytes);
    writeFileSync(path.join(dir, "signer.key"), privateKeyToPem(k.secretKey), { mode: 0o600 });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes <file>.sig.json by default, names the file's base name, prints the digest", async () => {
    const r = await runCli(["sign", "model.bin", "--key", "signer.key"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe(`sha256:${digest}`);
    const { statement, envelope } = parseEnvelope(readFileSync(path.join(dir, "model.bin.sig.json")));
    expect(statement.subject[0]).toEqual({ name: "model.bin", digest: { sha256: digest } });
    expect(statement.predicate.size).toBe(bytes.length);
    expect(envelope.signatures).toEqual([{ keyid: k.keyId, sig: expect.any(String) }]);
  });

  it("honours --name and --out", async () => {
    const r = await runCli(["sign", "model.bin", "--key", "signer.key", "--name", "team/m.bin", "--out", "custom.json"], { cwd: dir });
    expect(r.code).toBe(0);
    expect(parseEnvelope(readFileSync(path.join(dir, "custom.json"))).statement.subject[0].name).toBe("team/m.bin");
  });

  it("exit 2 for a missing file, a missing key, a bad key, usage errors", async () => {
    writeFileSync(path.join(dir, "bad.key"), "nope");
    expect(await runCli(["sign", "missing.bin", "--key", "signer.key"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "io_error" });
    expect(await runCli(["sign", "model.bin", "--key", "missing.key"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "io_error" });
    expect(await runCli(["sign", "model.bin", "--key", "bad.key"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "invalid_key" });
    expect(await runCli(["sign", "model.bin"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "usage" });
    expect(await runCli(["sign", "--key", "signer.key"], { cwd: dir })).toMatchObject({ code: 2, errorCode: "usage" });
    // A name outside the name rule is a refusal (invalid_name, exit 1), as the server would answer.
    expect(await runCli(["sign", "model.bin", "--key", "signer.key", "--name", ""], { cwd: dir })).toMatchObject({ code: 1, errorCode: "invalid_name" });
    expect(await runCli(["sign", "model.bin", "--key", "signer.key", "--name", "a\nb"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "invalid_name" });
  });
});
