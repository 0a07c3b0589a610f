import { Cursor } from "../../src/bytes/cursor";
import { BufferSource, SliceSource } from "../../src/bytes/source";

describe("Cursor", () => {
  it("reads little-endian integers and bytes", () => {
    const c = Cursor.ofBytes(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    expect(c.u8()).toBe(1);
    expect(c.u16le()).toBe(0x0302);
    expect(c.u32le()).toBe(0x07060504);
    expect(c.u8()).toBe(8);
    expect(c.u64le()).toBe(9);
    expect(c.i32le()).toBe(-1);
    expect(c.atEnd).toBe(true);
  });

  it("fails with the chosen code past the end, before allocating", () => {
    const c = Cursor.ofBytes(Uint8Array.from([1, 2]), { errorCode: "malformed_pickle" });
    expect(() => c.u32le()).toFailWithCode("malformed_pickle");
    expect(() => c.bytes(2 ** 40)).toFailWithCode("malformed_pickle");
    expect(c.position).toBe(0);
  });

  it("reads lines and fails on a missing newline", () => {
    const c = Cursor.ofBytes(new TextEncoder().encode("abc\ndef"));
    expect(new TextDecoder().decode(c.line(10))).toBe("abc");
    expect(() => c.line(10)).toFailWithCode("malformed_container");
    expect(() => Cursor.ofBytes(new TextEncoder().encode("abcdef\n")).line(3)).toFailWithCode("malformed_container");
  });

  it("reads across window boundaries and through slices", () => {
    const bytes = new Uint8Array(100).map((_, i) => i);
    const c = new Cursor(new SliceSource(new BufferSource(bytes), 10, 80), { windowSize: 16 });
    let sum = 0;
    while (!c.atEnd) sum += c.u8();
    expect(sum).toBe(Array.from({ length: 80 }, (_, i) => i + 10).reduce((a, b) => a + b, 0));
    c.seek(14);
    expect(Array.from(c.bytes(20))).toEqual(Array.from({ length: 20 }, (_, i) => i + 24));
  });

  it("rejects u64 values above 2^53", () => {
    const c = Cursor.ofBytes(new Uint8Array(8).fill(0xff));
    expect(() => c.u64le()).toFailWithCode("malformed_container");
  });
});
