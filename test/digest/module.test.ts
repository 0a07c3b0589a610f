import { createHash } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  assertHexDigest,
  digestBytes,
  formatDigest,
  isSha256Hex,
  parseDigest,
  sameDigest,
  Sha256DigestSchema,
  Sha256HexSchema,
  VerifyingStream,
} from "../../src/digest";

const hex = createHash("sha256").update("modelgate").digest("hex");
const other = createHash("sha256").update("modelgate!").digest("hex");

describe("bare hex: isSha256Hex, assertHexDigest, digestBytes, Sha256HexSchema", () => {
  it("accepts 64 lowercase hex", () => {
    expect(isSha256Hex(hex)).toBe(true);
    expect(() => {
      assertHexDigest(hex);
    }).not.toThrow();
    expect(digestBytes(hex)).toEqual(Buffer.from(hex, "hex"));
    expect(Sha256HexSchema.safeParse(hex).success).toBe(true);
  });

  // Uppercase was refused by every caller before the module (store names, trust subjects, routes).
  it.each([
    ["uppercase", hex.toUpperCase()],
    ["one uppercase letter", `${hex.slice(0, 63)}F`],
    ["63 characters", hex.slice(1)],
    ["65 characters", `${hex}0`],
    ["non-hex", `${hex.slice(0, 63)}g`],
    ["prefixed", `sha256:${hex}`],
    ["empty", ""],
    ["trailing newline", `${hex}\n`],
  ])("refuses %s as bad_request", (_label, text) => {
    expect(isSha256Hex(text)).toBe(false);
    expect(() => {
      assertHexDigest(text);
    }).toFailWithCode("bad_request");
    expect(() => digestBytes(text)).toFailWithCode("bad_request");
    expect(Sha256HexSchema.safeParse(text).success).toBe(false);
  });
});

describe("parseDigest and formatDigest", () => {
  it("round-trips", () => {
    expect(formatDigest(hex)).toBe(`sha256:${hex}`);
    expect(parseDigest(formatDigest(hex))).toBe(hex);
  });
  it.each([`sha1:${hex}`, `sha-256:${hex}`, `sha256::${hex}`, `sha256:${hex.toUpperCase()}`, `sha256:${hex.slice(2)}`, `sha256: ${hex}`])(
    "refuses %j as bad_request",
    (text) => {
      expect(() => parseDigest(text)).toFailWithCode("bad_request");
    },
  );
});

describe("Sha256DigestSchema (stored records)", () => {
  it("accepts only the prefixed spelling", () => {
    expect(Sha256DigestSchema.safeParse(`sha256:${hex}`).success).toBe(true);
    expect(Sha256DigestSchema.safeParse(hex).success).toBe(false);
    expect(Sha256DigestSchema.safeParse(`sha256:${hex.toUpperCase()}`).success).toBe(false);
    expect(Sha256DigestSchema.safeParse(`sha512:${hex}`).success).toBe(false);
    expect(Sha256DigestSchema.safeParse(42).success).toBe(false);
  });
});

describe("sameDigest", () => {
  it("is true for equal digests only", () => {
    expect(sameDigest(hex, hex)).toBe(true);
    expect(sameDigest(hex, other)).toBe(false);
  });
  it("is false for digests of another length, never throwing (timingSafeEqual would)", () => {
    expect(sameDigest(hex, hex.slice(0, 62))).toBe(false);
    expect(sameDigest(hex.slice(0, 62), hex.slice(0, 62))).toBe(false);
    expect(sameDigest(`${hex}00`, `${hex}00`)).toBe(false);
    expect(sameDigest("", "")).toBe(false);
  });
  it("is false for malformed hex that Buffer.from would truncate", () => {
    expect(sameDigest(`zz${hex.slice(2)}`, `zz${hex.slice(2)}`)).toBe(false);
  });
});

describe("VerifyingStream", () => {
  async function run(chunks: Buffer[], expectedHex: string): Promise<{ out: Buffer; err: unknown }> {
    const received: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        received.push(chunk);
        cb();
      },
    });
    let err: unknown;
    try {
      await pipeline(Readable.from(chunks), new VerifyingStream(expectedHex), sink);
    } catch (e) {
      err = e;
    }
    return { out: Buffer.concat(received), err };
  }

  const chunks = [Buffer.from("model"), Buffer.from("gate")];

  it("passes every byte when the digest matches", async () => {
    const { out, err } = await run(chunks, hex);
    expect(err).toBeUndefined();
    expect(out.toString()).toBe("modelgate");
  });

  it("fails with integrity_error before the last chunk on a mismatch", async () => {
    const { out, err } = await run(chunks, other);
    expect(err).toMatchObject({ code: "integrity_error" });
    expect(out.toString()).toBe("model");
  });
});
