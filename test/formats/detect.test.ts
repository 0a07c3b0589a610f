import { deflateSync, gzipSync } from "node:zlib";
import { BufferSource } from "../../src/bytes/source";
import { classifyData } from "../../src/formats/data";
import { detectMagic, hdf5SignatureAt, readHead } from "../../src/formats/detect";
import { DEFAULT_CONTAINER_LIMITS } from "../../src/limits";

function detect(bytes: Uint8Array | number[] | string): string | undefined {
  const b = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : Uint8Array.from(bytes);
  return detectMagic(readHead(new BufferSource(b)));
}

function pad(bytes: number[], total = 64): number[] {
  return [...bytes, ...new Array<number>(Math.max(0, total - bytes.length)).fill(0)];
}

describe("detectMagic", () => {
  it.each([
    ["zip", pad([0x50, 0x4b, 3, 4])],
    ["zip", pad([0x50, 0x4b, 5, 6])],
    ["npy", pad([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0])],
    ["gzip", Array.from(gzipSync(Buffer.from("x")))],
    ["zlib", Array.from(deflateSync(Buffer.from("x")))],
    ["bz2", pad([0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26, 0x53, 0x59])],
    ["xz", pad([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
    ["lz4", pad([0x04, 0x22, 0x4d, 0x18])],
    ["7z", pad([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])],
    ["rar", pad(Array.from(Buffer.from("Rar!\x1a\x07\x00", "latin1")))],
    ["gguf", pad(Array.from(Buffer.from("GGUF", "latin1")))],
    ["hdf5", pad([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])],
    ["pytorch-legacy", pad([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e])],
    ["tflite", pad([0x1c, 0, 0, 0, 0x54, 0x46, 0x4c, 0x33])],
  ])("recognises %s", (format, bytes) => {
    expect(detect(bytes)).toBe(format);
  });

  it("recognises tar by ustar at 257", () => {
    const b = new Uint8Array(1024);
    b.set(Buffer.from("ustar\0", "latin1"), 257);
    expect(detect(b)).toBe("tar");
  });

  it("recognises safetensors by a u64 length and a JSON object, even when the length lies", () => {
    const header = Buffer.from('{"__metadata__":{}}');
    const b = Buffer.alloc(8 + header.length);
    b.writeBigUInt64LE(BigInt(header.length), 0);
    header.copy(b, 8);
    expect(detect(b)).toBe("safetensors");
    b.writeBigUInt64LE(BigInt(header.length + 1), 0);
    expect(detect(b)).toBe("safetensors");
    b.writeBigUInt64LE(2n ** 60n, 0);
    expect(detect(b)).toBeUndefined();
  });

  it("recognises a legacy .lzma header strictly, not a protocol-1 pickle starting with EMPTY_LIST", () => {
    expect(detect(pad([0x5d, 0x00, 0x00, 0x10, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toBe("lzma");
    // pickle.dumps([1], 1) = b']q\x00K\x01a.'
    expect(detect([0x5d, 0x71, 0x00, 0x4b, 0x01, 0x61, 0x2e])).toBeUndefined();
  });

  it("leaves pickles and text to the later sniffers", () => {
    expect(detect([0x80, 0x04, 0x95, 0x05, 0, 0, 0, 0, 0, 0, 0, 0x4b, 0x01, 0x2e])).toBeUndefined();
    expect(detect("(lp0\nI1\na.")).toBeUndefined();
    expect(detect("hello world\n")).toBeUndefined();
    expect(detect([])).toBeUndefined();
  });

  it("finds an HDF5 signature after a user block", () => {
    const b = new Uint8Array(1100);
    b.set([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a], 1024);
    expect(hdf5SignatureAt(new BufferSource(b))).toBe(true);
    expect(hdf5SignatureAt(new BufferSource(new Uint8Array(1100)))).toBe(false);
  });
});

describe("classifyData", () => {
  const data = (s: string | Uint8Array) => classifyData(new BufferSource(typeof s === "string" ? Buffer.from(s) : s), DEFAULT_CONTAINER_LIMITS);

  it("names JSON, YAML and text", () => {
    expect(data('{"a": [1, 2]}')).toBe("json");
    expect(data("flavors:\n  sklearn:\n    pickled_model: model.pkl\n")).toBe("yaml");
    expect(data("numpy==1.26\nscikit-learn\n")).toBe("text");
    expect(data("")).toBe("text");
  });

  it("refuses binary: NUL, control characters, invalid UTF-8", () => {
    expect(data(Uint8Array.from([0x61, 0x00, 0x62]))).toBeUndefined();
    expect(data(Uint8Array.from([0x61, 0x01]))).toBeUndefined();
    expect(data(Uint8Array.from([0xc3, 0x28]))).toBeUndefined();
  });

  it("streams text larger than the in-memory limit without parsing it", () => {
    const limits = { ...DEFAULT_CONTAINER_LIMITS, maxTextMemberBytes: 10 };
    expect(classifyData(new BufferSource(Buffer.from('{"a": 1, "b": 2}')), limits)).toBe("text");
    expect(classifyData(new BufferSource(Buffer.from("x".repeat(20) + "\0")), limits)).toBeUndefined();
  });
});

describe("zlib detection does not swallow text", () => {
  it("treats `x = 1` as no zlib stream (FDICT set would be needed for the checksum)", () => {
    expect(detectMagic(new TextEncoder().encode("x = 1\n"))).not.toBe("zlib");
  });
  it("still detects a real zlib header", () => {
    expect(detectMagic(new Uint8Array([0x78, 0x9c, 0x03, 0x00]))).toBe("zlib");
  });
});
