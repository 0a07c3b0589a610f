import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parseDigest, sha256File } from "../../src/digest";

describe("sha256File", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-digest-"));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([0, 1, 1024 * 1024 - 1, 1024 * 1024, 3 * 1024 * 1024 + 7])("hashes %d bytes in a stream", async (n) => {
    const bytes = Buffer.alloc(n, 0x5a);
    const file = path.join(dir, `f${String(n)}`);
    writeFileSync(file, bytes);
    await expect(sha256File(file)).resolves.toEqual({ digestHex: createHash("sha256").update(bytes).digest("hex"), size: n });
  });

  it("io_error for a missing file", async () => {
    await expect(sha256File(path.join(dir, "missing"))).toFailWithCode("io_error");
  });
});

describe("parseDigest", () => {
  const hex = "0123456789abcdef".repeat(4);
  it("accepts sha256:<hex> and bare hex", () => {
    expect(parseDigest(`sha256:${hex}`)).toBe(hex);
    expect(parseDigest(hex)).toBe(hex);
  });
  it.each([hex.toUpperCase(), hex.slice(1), `${hex}0`, `sha512:${hex}`, `SHA256:${hex}`, ` ${hex}`, "", `sha256:`])("rejects %j", (text) => {
    expect(() => parseDigest(text)).toFailWithCode("bad_request");
  });
});
