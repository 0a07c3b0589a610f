import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { privateKeyToPem, publicKeyToPem, type Envelope } from "../../src/trust";
import { runCli } from "../support/cli";
import { rawEnvelope, statementJson, testKey } from "../trust/helpers";

/** Red team, issue 10 family 6: `modelgate sign` and `verify` apply the server's name rule. */
describe("modelgate sign / verify and the name rule", () => {
  let dir: string;
  const k = testKey(61);
  const bytes = Buffer.from("model bytes for the name rule");
  const digest = (): string => createHash("sha256").update(bytes).digest("hex");

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-names-"));
    writeFileSync(path.join(dir, "model.bin"), bytes);
    writeFileSync(path.join(dir, "k.key"), privateKeyToPem(k.secretKey), { mode: 0o600 });
    writeFileSync(path.join(dir, "k.pub"), publicKeyToPem(k.publicKey));
    writeFileSync(
      path.join(dir, "allowlist.json"),
      JSON.stringify({ version: 1, sources: [{ id: "team-a", description: "a", keys: [{ path: "k.pub" }], names: ["team-a/**"] }] }),
    );
    expect((await runCli(["sign", "model.bin", "--key", "k.key", "--name", "team-a/model.bin"], { cwd: dir })).code).toBe(0);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    "team-a/../prod/model.bin",
    "/team-a/model.bin",
    "team-a/./model.bin",
    "team-a//model.bin",
    "team-a\\model.bin",
    "team-a/\u202enib.ledom",
    "team-a/mo\u200bdel.bin",
    "team-a/cafe\u0301.bin",
    "team-a/\u0000",
  ])("sign --name %j -> invalid_name (exit 1), no envelope written", async (name) => {
    const r = await runCli(["sign", "model.bin", "--key", "k.key", "--name", name, "--out", "refused.sig.json"], { cwd: dir });
    expect(r).toMatchObject({ code: 1, errorCode: "invalid_name" });
    expect(() => readFileSync(path.join(dir, "refused.sig.json"))).toThrow();
  });

  it("sign without --name refuses a file whose base name is not NFC", async () => {
    const nfd = "cafe\u0301.bin";
    writeFileSync(path.join(dir, nfd), bytes);
    expect(await runCli(["sign", nfd, "--key", "k.key", "--out", "nfd.sig.json"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "invalid_name" });
  });

  it.each(["team-a/../team-a/model.bin", "team-a/\u202emodel.bin", "/team-a/model.bin"])("verify --name %j -> invalid_name (exit 1)", async (name) => {
    expect(await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json", "--name", name], { cwd: dir })).toMatchObject({
      code: 1,
      errorCode: "invalid_name",
    });
  });

  it("control: verify accepts the clean envelope", async () => {
    expect((await runCli(["verify", "model.bin", "--sig", "model.bin.sig.json"], { cwd: dir })).code).toBe(0);
  });

  it("verify refuses an envelope signed for team-a/../prod/model.bin (accepted under team-a/** before)", async () => {
    const env = rawEnvelope(statementJson({ subject: [{ name: "team-a/../prod/model.bin", digest: { sha256: digest() } }] }), [k]);
    writeFileSync(path.join(dir, "dotdot.sig.json"), JSON.stringify(env));
    expect(await runCli(["verify", "model.bin", "--sig", "dotdot.sig.json"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "invalid_name" });
  });

  it("verify refuses an envelope with a duplicate key (malformed_signature, exit 1)", async () => {
    const env = JSON.parse(readFileSync(path.join(dir, "model.bin.sig.json"), "utf8")) as Envelope;
    const text = `{"payloadType":"${env.payloadType}","payloadType":"${env.payloadType}","payload":"${env.payload}","signatures":${JSON.stringify(env.signatures)}}`;
    writeFileSync(path.join(dir, "dup.sig.json"), text);
    expect(await runCli(["verify", "model.bin", "--sig", "dup.sig.json"], { cwd: dir })).toMatchObject({ code: 1, errorCode: "malformed_signature" });
  });
});
