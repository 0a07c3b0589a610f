import { decodeBase64Strict, encodeBase64 } from "../../src/trust";

describe("strict base64", () => {
  it("round-trips every length 0..40", () => {
    for (let n = 0; n <= 40; n++) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
      expect(Array.from(decodeBase64Strict(encodeBase64(bytes), "x"))).toEqual(Array.from(bytes));
    }
  });

  it.each([
    ["missing padding", "YWI"],
    ["whitespace", "YWJj ZGVm"],
    ["newline", "YWJj\nZGVm"],
    ["trailing newline", "YWJjZGVm\n"],
    ["url-safe alphabet -", "-_8="],
    ["url-safe alphabet _", "ab_d"],
    ["non-zero padding bits (one =)", "YWJ="],
    ["non-zero padding bits (two =)", "YR=="],
    ["excess padding", "YQ==="],
    ["padding in the middle", "YQ==YWJj"],
    ["junk character", "YW*j"],
  ])("rejects %s", (_label, text) => {
    expect(() => decodeBase64Strict(text, "x")).toFailWithCode("malformed_signature");
  });

  it("reports the caller's code", () => {
    expect(() => decodeBase64Strict("YWJ", "key", "invalid_key")).toFailWithCode("invalid_key");
  });

  it("accepts the canonical spellings next to the non-canonical ones", () => {
    expect(Buffer.from(decodeBase64Strict("YWI=", "x")).toString()).toBe("ab");
    expect(Buffer.from(decodeBase64Strict("YQ==", "x")).toString()).toBe("a");
  });
});
