import fc from "fast-check";
import { BufferSource } from "../../src/bytes/source";
import { GatewayError } from "../../src/errors";
import type { FormatContext } from "../../src/formats/context";
import { inspectSafetensors, parseStrictJson } from "../../src/formats/models/safetensors";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import type { InspectionNode } from "../../src/inspect/report";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, type ContainerLimits } from "../../src/limits";
import { safetensorsBytes } from "../support/bytes";

function ctxWith(limits: Partial<ContainerLimits> = {}): FormatContext {
  return {
    policy: { ...DEFAULT_CONTENT_POLICY },
    containerLimits: { ...DEFAULT_CONTAINER_LIMITS, ...limits },
    pickleLimits: DEFAULT_PICKLE_LIMITS,
    depth: 0,
    tempDir: "/nonexistent",
    budget: { uncompressedBytes: 0 },
    inspectMember: () => Promise.reject(new Error("not used")),
    inspectArchive: () => Promise.reject(new Error("not used")),
  };
}

const benignHeader = {
  __metadata__: { format: "pt", note: "hello" },
  weight: { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
  bias: { dtype: "BF16", shape: [3], data_offsets: [24, 30] },
  step: { dtype: "I64", shape: [], data_offsets: [30, 38] },
};

async function inspect(bytes: Uint8Array, limits: Partial<ContainerLimits> = {}): Promise<InspectionNode> {
  return inspectSafetensors(new BufferSource(bytes), "model.safetensors", ctxWith(limits));
}
function codes(node: InspectionNode): string[] {
  return node.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code);
}

describe("inspectSafetensors", () => {
  it("accepts a benign file and says no pickle can hide in it", async () => {
    const node = await inspect(safetensorsBytes(benignHeader, new Uint8Array(38), 6));
    expect(codes(node)).toEqual([]);
    expect(node.format).toBe("safetensors");
    expect(node.details).toMatchObject({ tensors: 3, dataBytes: 38, pickleFree: true, metadata: { format: "pt" } });
    expect(node.findings.some((f) => f.code === "info" && f.severity === "innocuous")).toBe(true);
  });

  it("accepts an empty header object with no data, and zero-element tensors", async () => {
    expect(codes(await inspect(safetensorsBytes({}, new Uint8Array(0))))).toEqual([]);
    const empty = { a: { dtype: "F32", shape: [0, 4], data_offsets: [0, 0] } };
    expect(codes(await inspect(safetensorsBytes(empty, new Uint8Array(0))))).toEqual([]);
  });

  it("sizes sub-byte dtypes in bits", async () => {
    const f4 = { a: { dtype: "F4", shape: [4], data_offsets: [0, 2] } };
    expect(codes(await inspect(safetensorsBytes(f4, new Uint8Array(2))))).toEqual([]);
    const odd = { a: { dtype: "F4", shape: [3], data_offsets: [0, 2] } };
    expect(codes(await inspect(safetensorsBytes(odd, new Uint8Array(2))))).toEqual(["malformed_container"]);
  });

  const bad: [string, string | object, number][] = [
    ["overlapping spans", { a: { dtype: "U8", shape: [4], data_offsets: [0, 4] }, b: { dtype: "U8", shape: [4], data_offsets: [2, 6] } }, 6],
    ["a gap", { a: { dtype: "U8", shape: [4], data_offsets: [0, 4] }, b: { dtype: "U8", shape: [2], data_offsets: [6, 8] } }, 8],
    ["uncovered trailing bytes", { a: { dtype: "U8", shape: [4], data_offsets: [0, 4] } }, 5],
    ["a span past the end", { a: { dtype: "U8", shape: [8], data_offsets: [0, 8] } }, 4],
    ["shape x dtype != span", { a: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, 4],
    ["end before begin", { a: { dtype: "U8", shape: [0], data_offsets: [4, 0] } }, 4],
    ["an unknown dtype", { a: { dtype: "F128", shape: [1], data_offsets: [0, 16] } }, 16],
    ["a prototype key as dtype", { a: { dtype: "constructor", shape: [1], data_offsets: [0, 1] } }, 1],
    ["a non-string metadata value", { __metadata__: { n: 1 } }, 0],
    ["metadata that is not an object", { __metadata__: ["x"] }, 0],
    ["an extra tensor key", { a: { dtype: "U8", shape: [1], data_offsets: [0, 1], extra: 1 } }, 1],
    ["a missing tensor key", { a: { dtype: "U8", shape: [1] } }, 1],
    ["a negative dimension", { a: { dtype: "U8", shape: [-1], data_offsets: [0, 1] } }, 1],
    ["a float dimension", { a: { dtype: "U8", shape: [1.5], data_offsets: [0, 1] } }, 1],
    ["a tensor that is not an object", { a: [1, 2] }, 0],
    ["duplicate keys", '{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}', 1],
    ["a header that is not an object", "[1, 2]", 0],
    ["trailing garbage in the header", '{"__metadata__": {}} x', 0],
    ["invalid JSON", '{"a": }', 0],
  ];
  it.each(bad)("rejects %s as malformed_container", async (_name, header, dataLen) => {
    expect(codes(await inspect(safetensorsBytes(header, new Uint8Array(dataLen))))).toEqual(["malformed_container"]);
  });

  it("rejects a header length past the file, truncated files and invalid UTF-8", async () => {
    const good = safetensorsBytes(benignHeader, new Uint8Array(38));
    const lying = good.slice();
    new DataView(lying.buffer).setBigUint64(0, BigInt(good.length), true);
    expect(codes(await inspect(lying))).toEqual(["malformed_container"]);
    expect(codes(await inspect(good.subarray(0, 5)))).toEqual(["malformed_container"]);
    const utf = safetensorsBytes('{"__metadata__": {"a": "\u00e9"}}', new Uint8Array(0));
    const i = utf.indexOf(0xc3);
    utf[i] = 0xff;
    expect(codes(await inspect(utf))).toEqual(["malformed_container"]);
  });

  it("bounds the header size: at the limit and one past it", async () => {
    const file = safetensorsBytes({}, new Uint8Array(0), 98); // header of 100 bytes
    expect(codes(await inspect(file, { maxSafetensorsHeaderBytes: 100 }))).toEqual([]);
    expect(codes(await inspect(file, { maxSafetensorsHeaderBytes: 99 }))).toEqual(["limit_exceeded"]);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
    expect(codes(await inspect(huge))).toEqual(["limit_exceeded"]);
  });

  it("bounds the tensor count: at the limit and one past it", async () => {
    const two = { a: { dtype: "U8", shape: [1], data_offsets: [0, 1] }, b: { dtype: "U8", shape: [1], data_offsets: [1, 2] } };
    expect(codes(await inspect(safetensorsBytes(two, new Uint8Array(2)), { maxEntries: 2 }))).toEqual([]);
    expect(codes(await inspect(safetensorsBytes(two, new Uint8Array(2)), { maxEntries: 1 }))).toEqual(["limit_exceeded"]);
  });

  it("bounds JSON nesting", () => {
    expect(() => parseStrictJson("[[[[1]]]]", 4)).not.toThrow();
    let code: unknown;
    try {
      parseStrictJson("[[[[[1]]]]]", 4);
    } catch (err) {
      code = err instanceof GatewayError ? err.code : err;
    }
    expect(code).toBe("limit_exceeded");
  });

  it("never crashes on mutated files", async () => {
    const good = safetensorsBytes(benignHeader, new Uint8Array(38));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), async (edits) => {
        const bytes = good.slice();
        for (const [at, b] of edits) bytes[at] = b;
        const node = await inspect(bytes);
        expect(node.kind).toBe("safetensors");
      }),
      { numRuns: 500 },
    );
  });
});
