import { gguf as hfGguf } from "@huggingface/gguf";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BufferSource, type ByteSource } from "../../src/bytes/source";
import { DEFAULT_GGUF_LIMITS, readGguf } from "../../src/formats/models/gguf";
import { GGML_TYPE_COUNT, GGML_TYPES } from "../../src/formats/models/ggmlTypes";
import { MAX_GGUF_TENSORS } from "../../src/limits";
import { codeOf } from "../support/errors";
import { useInspectBytes } from "../support/inspectBytes";

const OTHER = join(__dirname, "..", "fixtures", "other");
const fixture = (name: string): Buffer => readFileSync(join(OTHER, name));
const inspectBytes = useInspectBytes("gguf");

function rejecting(report: { findings: { code: string; severity: string }[] }): string[] {
  return [...new Set(report.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code))];
}

/** A minimal GGUF writer (GGUFWriter's layout) for the bound tests. */
function ggufBytes(opts: {
  kvs?: Buffer[];
  tensors?: { name: string; dims: number[]; type: number; offset: number }[];
  counts?: [bigint, bigint];
  dataBytes?: number;
}): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s, "utf8");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(b.length));
    return Buffer.concat([len, b]);
  };
  const kvs = opts.kvs ?? [];
  const tensors = opts.tensors ?? [];
  const head = Buffer.alloc(24);
  head.write("GGUF", 0, "latin1");
  head.writeUInt32LE(3, 4);
  head.writeBigUInt64LE(opts.counts?.[0] ?? BigInt(tensors.length), 8);
  head.writeBigUInt64LE(opts.counts?.[1] ?? BigInt(kvs.length), 16);
  const infos = tensors.map((t) => {
    const rest = Buffer.alloc(4 + 8 * t.dims.length + 4 + 8);
    rest.writeUInt32LE(t.dims.length, 0);
    t.dims.forEach((d, i) => rest.writeBigUInt64LE(BigInt(d), 4 + 8 * i));
    rest.writeUInt32LE(t.type, 4 + 8 * t.dims.length);
    rest.writeBigUInt64LE(BigInt(t.offset), 8 + 8 * t.dims.length);
    return Buffer.concat([str(t.name), rest]);
  });
  const header = Buffer.concat([head, ...kvs, ...infos]);
  const padded = Math.ceil(header.length / 32) * 32;
  return Buffer.concat([header, Buffer.alloc(padded - header.length), Buffer.alloc(opts.dataBytes ?? 0)]);
}

function kvString(key: string, value: string): Buffer {
  const k = Buffer.from(key);
  const v = Buffer.from(value);
  const out = Buffer.alloc(8 + k.length + 4 + 8 + v.length);
  out.writeBigUInt64LE(BigInt(k.length), 0);
  k.copy(out, 8);
  out.writeUInt32LE(8, 8 + k.length);
  out.writeBigUInt64LE(BigInt(v.length), 12 + k.length);
  v.copy(out, 20 + k.length);
  return out;
}

/** Nested arrays `depth` deep: [[[...[1]...]]] as i32 at the bottom. */
function kvNestedArray(key: string, depth: number): Buffer {
  const k = Buffer.from(key);
  let value = Buffer.alloc(4 + 8 + 4);
  value.writeUInt32LE(5, 0); // i32 items
  value.writeBigUInt64LE(1n, 4);
  value.writeInt32LE(1, 12);
  for (let d = 1; d < depth; d++) {
    const wrap = Buffer.alloc(12);
    wrap.writeUInt32LE(9, 0);
    wrap.writeBigUInt64LE(1n, 4);
    value = Buffer.concat([wrap, value]);
  }
  const head = Buffer.alloc(8 + k.length + 4);
  head.writeBigUInt64LE(BigInt(k.length), 0);
  k.copy(head, 8);
  head.writeUInt32LE(9, 8 + k.length);
  return Buffer.concat([head, value]);
}

describe("GGUF reader cross-checked with @huggingface/gguf", () => {
  it.each(["gguf_benign_v3.gguf", "gguf_benign_v2.gguf", "gguf_alignment_64.gguf", "gguf_nested_arrays.gguf", "model.gguf"])(
    "%s: same version, tensors, offsets, data offset and chat templates",
    async (name) => {
      const ours = readGguf(new BufferSource(fixture(name)));
      const theirs = await hfGguf(join(OTHER, name), { allowLocalFile: true });
      expect(ours.version).toBe(theirs.metadata.version);
      // ggml pads to the data section only when there are tensors (gguf.cpp); @huggingface/gguf always does.
      if (ours.tensorCount > 0) expect(BigInt(ours.dataOffset)).toBe(theirs.tensorDataOffset);
      expect(ours.tensors.map((t) => [t.name, t.dims, t.type, t.offset])).toEqual(theirs.tensorInfos.map((t) => [t.name, t.shape, t.dtype, t.offset]));
      const metadata = theirs.metadata as Record<string, unknown>;
      const templates = Object.keys(metadata).filter((k) => k === "tokenizer.chat_template" || k.startsWith("tokenizer.chat_template."));
      expect(ours.templates.map((t) => [t.key, t.text])).toEqual(templates.map((k) => [k, metadata[k]]));
      expect(ours.alignment).toBe(metadata["general.alignment"] ?? 32);
    },
  );

  it("admits the benign fixtures and reports their layout", async () => {
    const report = await inspectBytes(fixture("gguf_benign_v3.gguf"), "model.gguf");
    expect(report.verdict).toBe("accept");
    expect(report.format).toBe("gguf");
    const node = [report.root, ...report.root.children].find((n) => n.kind === "gguf");
    expect(node?.details).toMatchObject({
      version: 3,
      tensors: 5,
      alignment: 32,
      tensorTypes: { F32: 1, F16: 1, Q8_0: 1, Q4_0: 1, Q4_K: 1 },
      chatTemplates: ["tokenizer.chat_template", "tokenizer.chat_template.tool_use"],
    });
  });
});

describe("ggml type table", () => {
  it("names every id below GGML_TYPE_COUNT except the removed ones, with ggml's block sizes", () => {
    const removed = [4, 5, 31, 32, 33, 36, 37, 38];
    for (let id = 0; id < GGML_TYPE_COUNT; id++) expect([id, GGML_TYPES.has(id)]).toEqual([id, !removed.includes(id)]);
    expect([...GGML_TYPES.values()].map((t) => `${t.name}:${t.blockSize}/${t.typeSize}`)).toEqual(
      expect.arrayContaining(["Q4_0:32/18", "Q8_0:32/34", "Q8_1:32/36", "Q2_K:256/84", "Q3_K:256/110", "Q4_K:256/144", "Q5_K:256/176", "Q6_K:256/210"]),
    );
    expect([...GGML_TYPES.values()].map((t) => `${t.name}:${t.blockSize}/${t.typeSize}`)).toEqual(
      expect.arrayContaining([
        "Q8_K:256/292",
        "IQ2_XXS:256/66",
        "IQ3_S:256/110",
        "IQ4_XS:256/136",
        "IQ1_M:256/56",
        "TQ1_0:256/54",
        "MXFP4:32/17",
        "NVFP4:64/36",
      ]),
    );
  });
});

describe("GGUF structure and bounds", () => {
  it.each([
    ["gguf_misaligned.gguf", "malformed_container"],
    ["gguf_gap.gguf", "malformed_container"],
    ["gguf_overlapping.gguf", "malformed_container"],
    ["gguf_out_of_file.gguf", "malformed_container"],
    ["gguf_truncated.gguf", "malformed_container"],
    ["gguf_huge_tensor_count.gguf", "limit_exceeded"],
    ["gguf_huge_kv_count.gguf", "malformed_container"],
    ["gguf_huge_string.gguf", "malformed_container"],
    ["gguf_huge_array.gguf", "malformed_container"],
    ["gguf_bad_alignment.gguf", "malformed_container"],
    ["gguf_v1.gguf", "malformed_container"],
    ["gguf_removed_type.gguf", "malformed_container"],
  ])("%s -> %s", async (name, code) => {
    expect(codeOf(() => readGguf(new BufferSource(fixture(name))))).toBe(code);
    expect(rejecting(await inspectBytes(fixture(name), name))).toEqual([code]);
  });

  it("every cut of a benign file is refused, never accepted or thrown", () => {
    const bytes = fixture("gguf_benign_v3.gguf");
    const { dataOffset, dataBytes } = readGguf(new BufferSource(bytes));
    for (let cut = 0; cut < dataOffset + dataBytes; cut += 7) {
      expect([cut, codeOf(() => readGguf(new BufferSource(bytes.subarray(0, cut))))]).toEqual([cut, "malformed_container"]);
    }
  });

  it("MAX_GGUF_TENSORS: a count at the limit is judged by the file's size, one past it is limit_exceeded", () => {
    const at = ggufBytes({ counts: [BigInt(MAX_GGUF_TENSORS), 0n] });
    expect(codeOf(() => readGguf(new BufferSource(at)))).toBe("malformed_container");
    const past = ggufBytes({ counts: [BigInt(MAX_GGUF_TENSORS) + 1n, 0n] });
    expect(codeOf(() => readGguf(new BufferSource(past)))).toBe("limit_exceeded");
    const limits = { ...DEFAULT_GGUF_LIMITS, maxTensors: 1 };
    const one = ggufBytes({ tensors: [{ name: "a", dims: [8], type: 0, offset: 0 }], dataBytes: 32 });
    expect(readGguf(new BufferSource(one), limits).tensorCount).toBe(1);
    const two = ggufBytes({
      tensors: [
        { name: "a", dims: [8], type: 0, offset: 0 },
        { name: "b", dims: [8], type: 0, offset: 32 },
      ],
      dataBytes: 64,
    });
    expect(codeOf(() => readGguf(new BufferSource(two), limits))).toBe("limit_exceeded");
  });

  it("MAX_GGUF_ARRAY_DEPTH: nested arrays at the depth are read, one deeper is limit_exceeded", () => {
    const depth = DEFAULT_GGUF_LIMITS.maxArrayDepth;
    expect(readGguf(new BufferSource(ggufBytes({ kvs: [kvNestedArray("x", depth)] }))).kvCount).toBe(1);
    expect(codeOf(() => readGguf(new BufferSource(ggufBytes({ kvs: [kvNestedArray("x", depth + 1)] }))))).toBe("limit_exceeded");
  });

  it("a chat template over the byte limit is limit_exceeded; duplicate keys and a non-string template are malformed", () => {
    const limits = { ...DEFAULT_GGUF_LIMITS, maxTemplateBytes: 16 };
    const at = ggufBytes({ kvs: [kvString("tokenizer.chat_template", "x".repeat(16))] });
    expect(readGguf(new BufferSource(at), limits).templates).toHaveLength(1);
    const past = ggufBytes({ kvs: [kvString("tokenizer.chat_template", "x".repeat(17))] });
    expect(codeOf(() => readGguf(new BufferSource(past), limits))).toBe("limit_exceeded");
    const dup = ggufBytes({ kvs: [kvString("general.name", "a"), kvString("general.name", "b")] });
    expect(codeOf(() => readGguf(new BufferSource(dup)))).toBe("malformed_container");
    const notString = ggufBytes({ kvs: [kvNestedArray("tokenizer.chat_template", 1)] });
    expect(codeOf(() => readGguf(new BufferSource(notString)))).toBe("malformed_container");
  });

  it("tensor rules of gguf_init_from_file: name length, dims, block multiple", () => {
    const t = (name: string, dims: number[], type: number): Buffer => ggufBytes({ tensors: [{ name, dims, type, offset: 0 }], dataBytes: 4096 });
    expect(readGguf(new BufferSource(t("n".repeat(63), [8], 0))).tensorCount).toBe(1);
    expect(codeOf(() => readGguf(new BufferSource(t("n".repeat(64), [8], 0))))).toBe("malformed_container");
    expect(codeOf(() => readGguf(new BufferSource(t("a", [1, 1, 1, 1, 1], 0))))).toBe("malformed_container");
    expect(codeOf(() => readGguf(new BufferSource(t("a", [16], 2))))).toBe("malformed_container"); // Q4_0 rows are multiples of 32
    expect(readGguf(new BufferSource(t("a", [32], 2))).tensors[0]?.nbytes).toBe(18n);
    expect(codeOf(() => readGguf(new BufferSource(t("a", [8], GGML_TYPE_COUNT))))).toBe("malformed_container");
  });

  it("reads the header only: a 4 MiB tensor costs no read of its data", () => {
    const bytes = ggufBytes({
      kvs: [kvString("general.architecture", "llama")],
      tensors: [{ name: "w", dims: [1 << 20], type: 0, offset: 0 }],
      dataBytes: 4 << 20,
    });
    let read = 0;
    const counting: ByteSource = {
      size: bytes.length,
      readAt(target, position) {
        const n = new BufferSource(bytes).readAt(target, position);
        read += n;
        return n;
      },
    };
    expect(readGguf(counting).dataBytes).toBe(4 << 20);
    expect(read).toBeLessThanOrEqual(64 * 1024);
  });
});

describe("GGUF chat templates", () => {
  it.each(["gguf_ssti_template.gguf", "gguf_ssti_named_template.gguf", "gguf_ssti_in_zip.zip"])("%s -> unsafe_template", async (name) => {
    const report = await inspectBytes(fixture(name), name);
    expect(rejecting(report)).toEqual(["unsafe_template"]);
    expect(report.findings.find((f) => f.code === "unsafe_template")?.severity).toBe("dangerous");
  });

  it("an unparsable template is malformed_container", async () => {
    expect(rejecting(await inspectBytes(fixture("gguf_unparsable_template.gguf"), "x.gguf"))).toEqual(["malformed_container"]);
  });
});
