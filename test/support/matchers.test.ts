import { GatewayError } from "../../src/errors";

const gatewayError = (): GatewayError => new GatewayError("digest_mismatch", "digest differs");
const codedError = (): Error => Object.assign(new Error("looks alike"), { code: "digest_mismatch" });

describe("toFailWithCode", () => {
  it("a function: passes only for a thrown GatewayError with that code", () => {
    expect(() => {
      throw gatewayError();
    }).toFailWithCode("digest_mismatch");
    expect(() => {
      throw gatewayError();
    }).not.toFailWithCode("bad_signature");
    expect(() => {
      expect(() => {
        throw codedError();
      }).toFailWithCode("digest_mismatch");
    }).toThrow(/non-GatewayError/);
    expect(() => {
      expect(() => 1).toFailWithCode("digest_mismatch");
    }).toThrow(/did not fail/);
    expect(() => {
      expect(() => Promise.reject(gatewayError())).toFailWithCode("digest_mismatch");
    }).toThrow(/returned a promise/);
  });

  it("a promise: passes only when it rejects with a GatewayError with that code", async () => {
    await expect(Promise.reject(gatewayError())).toFailWithCode("digest_mismatch");
    await expect(Promise.reject(gatewayError())).not.toFailWithCode("io_error");
    await expect(expect(Promise.resolve(1)).toFailWithCode("digest_mismatch")).rejects.toThrow(/did not fail/);
    await expect(expect(Promise.reject(codedError())).toFailWithCode("digest_mismatch")).rejects.toThrow(/non-GatewayError/);
  });

  it("an HTTP answer: compares body.error.code, and the status when given", () => {
    const answer = { status: 403, body: { error: { code: "untrusted_source", message: "no" } } };
    expect(answer).toFailWithCode("untrusted_source");
    expect(answer).toFailWithCode("untrusted_source", 403);
    expect(answer).not.toFailWithCode("untrusted_source", 400);
    expect(answer).not.toFailWithCode("bad_signature");
    expect({ status: 413, body: JSON.stringify({ error: { code: "too_large" } }) }).toFailWithCode("too_large", 413);
    expect({ status: 200, body: { ok: true } }).not.toFailWithCode("too_large");
    expect(() => {
      expect(answer).toFailWithCode("bad_signature", 403);
    }).toThrow(/untrusted_source/);
  });

  it("anything else never matches", () => {
    expect(() => {
      expect(42).toFailWithCode("internal");
    }).toThrow(/takes a function, a promise or an HTTP answer/);
  });
});
