import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { sha256File } from "../../src/digest";
import { keyIdOf, parseAllowlist, parsePublicKey, PUBLISH_PREDICATE_TYPE, verifyPublish } from "../../src/trust";

/** The shell block of README.md (Signing and trust) between the openssl-example markers: the docs are the test. */
function documentedScript(): string {
  const md = readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
  const m = /<!-- openssl-example:start -->\s*```sh\n([\s\S]*?)```\s*<!-- openssl-example:end -->/.exec(md);
  if (!m?.[1]) throw new Error("README.md (Signing and trust) has no openssl example block");
  return m[1];
}

function hasOpenssl3(): boolean {
  const r = spawnSync("openssl", ["version"], { encoding: "utf8" });
  return r.status === 0 && /^OpenSSL [3-9]\./.test(r.stdout);
}

const opensslPresent = hasOpenssl3();
if (!opensslPresent) {
  console.warn("openssl 3.x not found: skipping the openssl interop test (install openssl to run it)");
}
const itWithOpenssl = opensslPresent ? it : it.skip;

describe("openssl interop (the worked example of README.md (Signing and trust))", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-openssl-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  itWithOpenssl("an envelope made with openssl genpkey / pkeyutl -rawin is accepted", async () => {
    writeFileSync(path.join(dir, "model.safetensors"), Buffer.from("not really a model, but bytes to sign\n".repeat(100)));
    execFileSync("sh", ["-eu", "-c", documentedScript()], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });

    const pub = readFileSync(path.join(dir, "publisher.pub"), "utf8");
    const envelope = readFileSync(path.join(dir, "model.safetensors.sig.json"));
    const parsed = JSON.parse(envelope.toString("utf8")) as { signatures: { keyid: string }[] };
    expect(parsed.signatures[0]?.keyid).toBe(keyIdOf(parsePublicKey(pub)));

    const allowlist = parseAllowlist(
      { version: 1, sources: [{ id: "example", description: "openssl publisher", keys: [{ publicKey: pub }], names: ["examples/**"] }] },
      dir,
    );
    const { digestHex, size } = await sha256File(path.join(dir, "model.safetensors"));
    const result = verifyPublish({ envelope, digestHex, size, allowlist, now: new Date() });
    expect(result.source.id).toBe("example");
    expect(result.name).toBe("examples/model.safetensors");
    expect(result.statement.predicateType).toBe(PUBLISH_PREDICATE_TYPE);
    expect(result.statement.predicate.framework).toBe("pytorch");

    // And the same envelope does not vouch for other bytes.
    expect(() => verifyPublish({ envelope, digestHex: "0".repeat(64), allowlist, now: new Date() })).toFailWithCode("digest_mismatch");
  });
});
