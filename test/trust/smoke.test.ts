import { verifyPublish } from "../../src/trust";
import { allowlistOf, codeOf, DIGEST, NOW, signed, source, testKey, trusted } from "./helpers";

describe("smoke", () => {
  it("accepts a signed statement and rejects a wrong digest", () => {
    const k = testKey(1);
    const al = allowlistOf(source("s", [trusted(k)]));
    const r = verifyPublish({ envelope: signed([k]), digestHex: DIGEST, allowlist: al, now: NOW });
    expect(r.source.id).toBe("s");
    expect(r.keyIds).toEqual([k.keyId]);
    expect(codeOf(() => verifyPublish({ envelope: signed([k]), digestHex: "b".repeat(64), allowlist: al, now: NOW }))).toBe("digest_mismatch");
  });
});
