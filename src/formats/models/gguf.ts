import { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import { GatewayError, isGatewayError } from "../../errors";
import type { InspectionNode } from "../../inspect/report";
import { MAX_CHAT_TEMPLATE_BYTES, MAX_GGUF_ARRAY_DEPTH, MAX_GGUF_ARRAY_ELEMENTS, MAX_GGUF_KEY_BYTES, MAX_GGUF_KV, MAX_GGUF_TENSORS } from "../../limits";
import type { FormatContext, FormatInspector } from "../context";
import { chatTemplateFindings } from "./chatTemplate";
import { GGML_TYPE_COUNT, GGML_TYPES } from "./ggmlTypes";

/**
 * GGUF (llama.cpp, Ollama, LM Studio, llama-cpp-python), versions 2 and 3, read the way ggml's
 * gguf_init_from_file_impl (ggml/src/gguf.cpp) and gguf-py's GGUFReader read it, through
 * positional reads (the tensor data is never read):
 *
 *   "GGUF", u32 version, i64 tensor count, i64 metadata count,
 *   metadata: (string key, i32 value type, value)*   string = u64 length + UTF-8 bytes,
 *             arrays = i32 item type + u64 count + items (gguf-py also reads arrays of arrays),
 *   tensor infos: (string name, u32 n_dims, i64 dims[n_dims], i32 ggml type, u64 offset)*,
 *   padding to `general.alignment` (u32, a power of two, default 32), then the tensor data.
 *
 * ggml refuses version 1 and versions past 3, a key that is empty or repeated, a non-u32 or
 * non-power-of-two alignment, a tensor name of 64 bytes or more or repeated, more than 4
 * dimensions, negative dimensions, a removed or unknown ggml type, a row not a multiple of the
 * type's block, and any tensor whose offset is not the running total of the padded sizes before it
 * (the data is contiguous, each tensor aligned); llama.cpp's loader (llama_model_loader) refuses a
 * tensor whose data ends past the end of the file. modelgate refuses the same, as
 * `malformed_container`, and bounds every count by the bytes left in the file and by named limits
 * before it loops on it (ggml allocates per count; modelgate keeps only the tensor infos).
 *
 * Nothing in GGUF is code except the chat templates (`tokenizer.chat_template` and
 * `tokenizer.chat_template.<name>`), Jinja rendered by the serving stack: each is judged by
 * chatTemplate.ts.
 */

/** GGUF value types (gguf.h `enum gguf_type`) and their fixed sizes; 8 is a string, 9 an array. */
const FIXED_SIZE: Readonly<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const TYPE_STRING = 8;
const TYPE_ARRAY = 9;
const TYPE_UINT32 = 4;

/** ggml's GGUF_MAX_STRING_LENGTH: a longer string makes gguf_init_from_file fail. */
const GGUF_MAX_STRING_LENGTH = 1024 * 1024 * 1024;
/** ggml's GGML_MAX_NAME: a tensor name must be shorter. */
const GGML_MAX_NAME = 64;
/** ggml's GGML_MAX_DIMS. */
const GGML_MAX_DIMS = 4;
/** GGUF_DEFAULT_ALIGNMENT. */
const DEFAULT_ALIGNMENT = 32;
/** Smallest tensor info: empty name (8) + n_dims (4) + type (4) + offset (8). */
const MIN_TENSOR_INFO_BYTES = 24;
/** Smallest metadata pair: key length (8) + 1 key byte + type (4) + a one-byte value. */
const MIN_KV_BYTES = 14;
const INT64_MAX = (1n << 63n) - 1n;

export interface GgufLimits {
  maxTensors: number;
  maxKv: number;
  maxArrayDepth: number;
  maxTemplateBytes: number;
}

export const DEFAULT_GGUF_LIMITS: Readonly<GgufLimits> = Object.freeze({
  maxTensors: MAX_GGUF_TENSORS,
  maxKv: MAX_GGUF_KV,
  maxArrayDepth: MAX_GGUF_ARRAY_DEPTH,
  maxTemplateBytes: MAX_CHAT_TEMPLATE_BYTES,
});

export interface GgufTensorInfo {
  name: string;
  dims: bigint[];
  type: number;
  typeName: string;
  /** Offset from the start of the data section. */
  offset: bigint;
  nbytes: bigint;
}

export interface GgufTemplate {
  key: string;
  text: string;
  /** File offset of the template's string. */
  offset: number;
}

export interface GgufFile {
  version: number;
  tensorCount: number;
  kvCount: number;
  alignment: number;
  /** File offset of the data section. */
  dataOffset: number;
  /** Bytes of tensor data (through the end of the last tensor). */
  dataBytes: number;
  architecture?: string;
  name?: string;
  templates: GgufTemplate[];
  tensors: GgufTensorInfo[];
}

function malformed(message: string, details: Record<string, unknown> = {}): never {
  throw new GatewayError("malformed_container", `gguf: ${message}`, details);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeUtf8(bytes: Uint8Array, what: string, offset: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return malformed(`${what} is not UTF-8 (gguf-py decodes it strictly)`, { offset });
  }
}

/** A string's u64 length, checked against ggml's maximum and the bytes left. */
function stringLength(c: Cursor, what: string): number {
  const at = c.position;
  const n = c.u64leBig(`${what} length`);
  if (n > BigInt(GGUF_MAX_STRING_LENGTH)) malformed(`${what} of ${n} bytes exceeds ggml's GGUF_MAX_STRING_LENGTH`, { offset: at });
  const len = Number(n);
  c.require(len, what);
  return len;
}

function readString(c: Cursor, what: string, maxBytes: number, overLimit: "limit_exceeded" | "malformed_container"): string {
  const at = c.position;
  const len = stringLength(c, what);
  if (len > maxBytes) {
    const message = `${what} of ${len} bytes exceeds ${maxBytes}`;
    if (overLimit === "limit_exceeded") throw new GatewayError("limit_exceeded", `gguf: ${message}`, { offset: at });
    malformed(message, { offset: at });
  }
  return decodeUtf8(c.bytes(len, what), what, at);
}

/** Skip one value of `type` (no allocation: strings are skipped by length, fixed-size arrays in one step). */
function skipValue(c: Cursor, type: number, depth: number, key: string, limits: GgufLimits): void {
  const fixed = FIXED_SIZE[type];
  if (fixed !== undefined) {
    c.skip(fixed, `value of ${key}`);
    return;
  }
  if (type === TYPE_STRING) {
    c.skip(stringLength(c, `string value of ${key}`), `string value of ${key}`);
    return;
  }
  if (type !== TYPE_ARRAY) malformed(`key '${key}' has invalid GGUF type ${type}`, { offset: c.position });
  if (depth >= limits.maxArrayDepth) {
    throw new GatewayError("limit_exceeded", `gguf: key '${key}' nests arrays deeper than ${limits.maxArrayDepth} (MAX_GGUF_ARRAY_DEPTH)`, {
      offset: c.position,
    });
  }
  const itemType = c.i32le(`array type of ${key}`);
  const countAt = c.position;
  const count = c.u64leBig(`array length of ${key}`);
  if (count > BigInt(MAX_GGUF_ARRAY_ELEMENTS)) malformed(`key '${key}' array of ${count} elements exceeds ggml's GGUF_MAX_ARRAY_ELEMENTS`, { offset: countAt });
  const n = Number(count);
  const itemFixed = FIXED_SIZE[itemType];
  if (itemFixed !== undefined) {
    c.skip(n * itemFixed, `array of ${key}`);
    return;
  }
  // Strings take at least their 8-byte length, arrays their 12-byte header: the count is bounded by the file before the loop.
  const minItem =
    itemType === TYPE_STRING ? 8 : itemType === TYPE_ARRAY ? 12 : malformed(`key '${key}' array has invalid item type ${itemType}`, { offset: countAt });
  c.require(n * minItem, `array of ${key}`);
  for (let i = 0; i < n; i++) skipValue(c, itemType, depth + 1, key, limits);
}

function isTemplateKey(key: string): boolean {
  return key === "tokenizer.chat_template" || key.startsWith("tokenizer.chat_template.");
}

function padTo(n: bigint, alignment: bigint): bigint {
  return ((n + alignment - 1n) / alignment) * alignment;
}

/** Parse a GGUF header and check its tensor layout; throws malformed_container or limit_exceeded. */
export function readGguf(source: ByteSource, limits: GgufLimits = DEFAULT_GGUF_LIMITS): GgufFile {
  const c = new Cursor(source, { errorCode: "malformed_container", what: "gguf", windowSize: 64 * 1024 });
  const magic = c.bytes(4, "magic");
  if (String.fromCharCode(...magic) !== "GGUF") malformed("no GGUF magic", { offset: 0 });
  const version = c.u32le("version");
  if (version === 0) malformed("bad GGUF version 0", { offset: 4 });
  if ((version & 0xffff) === 0) malformed(`GGUF version ${version}: a big-endian file (llama.cpp refuses the endianness mismatch)`, { offset: 4 });
  if (version === 1) malformed("GGUF version 1, which llama.cpp no longer reads", { offset: 4 });
  if (version > 3) malformed(`GGUF version ${version}: llama.cpp reads up to version 3`, { offset: 4 });

  const tensorCountBig = c.u64leBig("tensor count");
  const kvCountBig = c.u64leBig("metadata count");
  if (tensorCountBig > INT64_MAX || kvCountBig > INT64_MAX) malformed("negative tensor or metadata count", { offset: 8 });
  if (tensorCountBig > BigInt(limits.maxTensors)) {
    throw new GatewayError("limit_exceeded", `gguf: ${tensorCountBig} tensors declared, more than ${limits.maxTensors} (MAX_GGUF_TENSORS)`, { offset: 8 });
  }
  if (kvCountBig > BigInt(limits.maxKv)) {
    throw new GatewayError("limit_exceeded", `gguf: ${kvCountBig} metadata pairs declared, more than ${limits.maxKv} (MAX_GGUF_KV)`, { offset: 16 });
  }
  const tensorCount = Number(tensorCountBig);
  const kvCount = Number(kvCountBig);
  if (kvCount * MIN_KV_BYTES + tensorCount * MIN_TENSOR_INFO_BYTES > c.remaining) {
    malformed(`${kvCount} metadata pairs and ${tensorCount} tensor infos cannot fit in the ${c.remaining} bytes left`, { offset: 8 });
  }

  const keys = new Set<string>();
  const templates: GgufTemplate[] = [];
  let alignment = DEFAULT_ALIGNMENT;
  let architecture: string | undefined;
  let name: string | undefined;
  for (let i = 0; i < kvCount; i++) {
    const keyAt = c.position;
    const key = readString(c, `key ${i}`, MAX_GGUF_KEY_BYTES, "limit_exceeded");
    if (key === "") malformed(`key ${i} is empty`, { offset: keyAt });
    if (keys.has(key)) malformed(`duplicate key '${key}'`, { offset: keyAt });
    keys.add(key);
    const typeAt = c.position;
    const type = c.i32le(`type of ${key}`);
    if (key === "general.alignment") {
      if (type !== TYPE_UINT32) malformed(`general.alignment must be of type u32, not type ${type}`, { offset: typeAt });
      alignment = c.u32le("general.alignment");
      if (alignment === 0 || (alignment & (alignment - 1)) !== 0) malformed(`alignment ${alignment} is not a power of 2`, { offset: typeAt + 4 });
    } else if (isTemplateKey(key)) {
      // llama.cpp reads it with gguf_get_val_str, which asserts a string.
      if (type !== TYPE_STRING) malformed(`${key} must be a string, not type ${type}`, { offset: typeAt });
      const offset = c.position;
      templates.push({ key, text: readString(c, key, limits.maxTemplateBytes, "limit_exceeded"), offset });
    } else if ((key === "general.architecture" || key === "general.name") && type === TYPE_STRING) {
      const value = readString(c, key, GGUF_MAX_STRING_LENGTH, "malformed_container");
      if (key === "general.architecture") architecture = value.slice(0, 256);
      else name = value.slice(0, 256);
    } else {
      skipValue(c, type, 0, key, limits);
    }
  }

  if (tensorCount * MIN_TENSOR_INFO_BYTES > c.remaining) {
    malformed(`${tensorCount} tensor infos cannot fit in the ${c.remaining} bytes left`, { offset: c.position });
  }
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const at = c.position;
    const tensorName = readString(c, `tensor name ${i}`, GGML_MAX_NAME - 1, "malformed_container");
    if (names.has(tensorName)) malformed(`duplicate tensor name '${tensorName}'`, { offset: at });
    names.add(tensorName);
    const nDims = c.u32le(`n_dims of ${tensorName}`);
    if (nDims > GGML_MAX_DIMS) malformed(`tensor '${tensorName}' has ${nDims} dimensions, more than ${GGML_MAX_DIMS}`, { offset: at });
    const dims: bigint[] = [];
    let elements = 1n;
    for (let d = 0; d < nDims; d++) {
      const dim = c.u64leBig(`dimension ${d} of ${tensorName}`);
      if (dim > INT64_MAX) malformed(`tensor '${tensorName}' dimension ${d} is negative`, { offset: at });
      dims.push(dim);
      elements *= dim;
      if (elements > INT64_MAX) malformed(`tensor '${tensorName}' has more than INT64_MAX elements`, { offset: at });
    }
    const typeAt = c.position;
    const type = c.i32le(`type of ${tensorName}`);
    const ggmlType = GGML_TYPES.get(type);
    if (ggmlType === undefined) {
      malformed(
        type < 0 || type >= GGML_TYPE_COUNT ? `tensor '${tensorName}' has invalid ggml type ${type}` : `tensor '${tensorName}' has removed ggml type ${type}`,
        { offset: typeAt },
      );
    }
    const row = dims[0] ?? 1n;
    if (row % BigInt(ggmlType.blockSize) !== 0n) {
      malformed(`tensor '${tensorName}' of type ${ggmlType.name} has ${row} elements per row, not a multiple of the block size ${ggmlType.blockSize}`, {
        offset: typeAt,
      });
    }
    const nbytes = (elements / BigInt(ggmlType.blockSize)) * BigInt(ggmlType.typeSize);
    const offset = c.u64leBig(`offset of ${tensorName}`);
    tensors.push({ name: tensorName, dims, type, typeName: ggmlType.name, offset, nbytes });
  }

  // ggml seeks to the aligned start of the data section only when there are tensors.
  const align = BigInt(alignment);
  const dataStart = tensorCount > 0 ? padTo(BigInt(c.position), align) : BigInt(c.position);
  if (dataStart > BigInt(source.size))
    malformed(`data section starts at ${dataStart}, past the end of the file (${source.size} bytes)`, { offset: c.position });
  let expected = 0n;
  let dataEnd = 0n;
  for (const t of tensors) {
    if (t.offset !== expected) {
      const why =
        t.offset % align !== 0n
          ? `is not a multiple of the alignment ${alignment}`
          : t.offset < expected
            ? "overlaps the tensor before it"
            : "leaves a gap after the tensor before it (ggml reads the data as one contiguous, aligned run)";
      malformed(`tensor '${t.name}' data offset ${t.offset} ${why}; expected ${expected}`, { tensor: t.name });
    }
    const end = dataStart + t.offset + t.nbytes;
    if (end > BigInt(source.size)) {
      malformed(`tensor '${t.name}' data [${dataStart + t.offset}, ${end}) lies outside the file of ${source.size} bytes`, { tensor: t.name });
    }
    dataEnd = t.offset + t.nbytes;
    expected += padTo(t.nbytes, align);
  }
  const file: GgufFile = {
    version,
    tensorCount,
    kvCount,
    alignment,
    dataOffset: Number(dataStart),
    dataBytes: Number(dataEnd),
    templates,
    tensors,
  };
  if (architecture !== undefined) file.architecture = architecture;
  if (name !== undefined) file.name = name;
  return file;
}

/** `inspectGguf`: one node of kind "gguf"; its chat templates judged, no tensor data read. */
export const inspectGguf: FormatInspector = (source: ByteSource, path: string, _ctx: FormatContext) => {
  const node: InspectionNode = { kind: "gguf", path, format: "gguf", findings: [], children: [] };
  try {
    const g = readGguf(source);
    const types: Record<string, number> = {};
    for (const t of g.tensors) types[t.typeName] = (types[t.typeName] ?? 0) + 1;
    node.details = {
      version: g.version,
      tensors: g.tensorCount,
      metadataKeys: g.kvCount,
      alignment: g.alignment,
      dataOffset: g.dataOffset,
      dataBytes: g.dataBytes,
      tensorTypes: types,
      chatTemplates: g.templates.map((t) => t.key),
    };
    if (g.architecture !== undefined) node.details.architecture = g.architecture;
    if (g.name !== undefined) node.details.name = g.name;
    for (const t of g.templates) {
      const findings = chatTemplateFindings(t.text, `GGUF metadata ${t.key}`, `${path}#metadata[${t.key}]`);
      for (const f of findings) f.offset = t.offset;
      node.findings.push(...findings);
    }
    node.findings.push({
      code: "info",
      severity: "innocuous",
      message: `GGUF v${g.version} holds metadata and raw tensor bytes only; its ${g.templates.length} chat template(s) were checked against the chat-template allowlist`,
      location: path,
    });
  } catch (err) {
    if (isGatewayError(err) && (err.code === "malformed_container" || err.code === "limit_exceeded")) {
      const finding: InspectionNode["findings"][number] = { code: err.code, severity: "malformed", message: err.message, location: path };
      const offset = err.details?.offset;
      if (typeof offset === "number") finding.offset = offset;
      node.findings.push(finding);
    } else throw err;
  }
  return Promise.resolve(node);
};
