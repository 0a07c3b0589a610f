import { pae } from "../../src/trust";

describe("DSSE pre-authentication encoding", () => {
  it("matches the DSSE specification's example", () => {
    const out = pae("http://example.com/HelloWorld", Buffer.from("hello world"));
    expect(Buffer.from(out).toString("utf8")).toBe("DSSEv1 29 http://example.com/HelloWorld 11 hello world");
  });

  it("counts bytes, not characters", () => {
    const out = pae("t/é", Buffer.from("ü", "utf8"));
    expect(Buffer.from(out).toString("utf8")).toBe("DSSEv1 4 t/é 2 ü");
  });

  it("encodes an empty payload and keeps binary payload bytes as they are", () => {
    expect(Buffer.from(pae("a", new Uint8Array(0))).toString("latin1")).toBe("DSSEv1 1 a 0 ");
    const out = pae("a", new Uint8Array([0, 255, 10]));
    expect(Array.from(out.slice(-3))).toEqual([0, 255, 10]);
    expect(Buffer.from(out.slice(0, -3)).toString()).toBe("DSSEv1 1 a 3 ");
  });
});
