import { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import { GatewayError, isGatewayError } from "../../errors";
import type { InspectionNode } from "../../inspect/report";
import { MAX_SAFETENSORS_JSON_DEPTH } from "../../limits";
import type { FormatContext, FormatInspector } from "../context";

/**
 * safetensors (huggingface/safetensors, docs "format"): u64 LE header length N, N bytes of JSON
 * (may be right-padded with spaces), then the data section. The header maps tensor names to
 * {dtype, shape, data_offsets: [begin, end]} relative to the data section, plus an optional
 * `__metadata__` of string to string. The reference loader checks that the spans are contiguous
 * when sorted, sized by shape x dtype, and cover the data section exactly; we check the same, with
 * a strict JSON parser that rejects duplicate keys (JSON.parse silently keeps the last one, so two
 * parsers could read two different headers). There is no code path for a pickle in this format.
 */

/** Bits per element of every safetensors dtype (the sub-byte float formats pack bits). */
export const SAFETENSORS_DTYPE_BITS: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
});

export type Json = null | boolean | string | { num: string } | Json[] | { obj: [string, Json][] };

function malformed(message: string, details: Record<string, unknown> = {}): never {
  throw new GatewayError("malformed_container", `safetensors: ${message}`, details);
}

/**
 * RFC 8259 JSON with duplicate object keys rejected, depth bounded, numbers kept as text.
 * Objects keep their key order as entries.
 */
export function parseStrictJson(text: string, maxDepth: number = MAX_SAFETENSORS_JSON_DEPTH): Json {
  let pos = 0;
  const fail = (m: string): never => malformed(`header JSON: ${m} at character ${pos}`, { offset: pos });
  // Sticky regexes and charCodeAt: a 16 MiB header of 100k tensors must parse in well under a second.
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const ws = (): void => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else return;
    }
  };
  const str = (): string => {
    pos++; // opening quote
    let out = "";
    for (;;) {
      let end = pos;
      for (let k = text.charCodeAt(end); k !== 0x22 && k !== 0x5c && k >= 0x20; k = text.charCodeAt(++end));
      out += text.slice(pos, end);
      pos = end;
      const c = text.charCodeAt(pos);
      if (Number.isNaN(c)) return fail("unterminated string");
      if (c === 0x22) {
        pos++;
        return out;
      }
      if (c < 0x20) return fail("control character in string");
      // A backslash escape.
      const e = text[pos + 1];
      switch (e) {
        case '"':
        case "\\":
        case "/":
          out += e;
          break;
        case "b":
          out += "\b";
          break;
        case "f":
          out += "\f";
          break;
        case "n":
          out += "\n";
          break;
        case "r":
          out += "\r";
          break;
        case "t":
          out += "\t";
          break;
        case "u": {
          const hex = text.slice(pos + 2, pos + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) return fail("bad \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          pos += 4;
          break;
        }
        default:
          return fail("bad escape");
      }
      pos += 2;
    }
  };
  const value = (depth: number): Json => {
    ws();
    const c = text.charCodeAt(pos);
    if (c === 0x7b || c === 0x5b) {
      if (depth >= maxDepth) throw new GatewayError("limit_exceeded", `safetensors: header JSON nests deeper than ${maxDepth}`, { limit: "jsonDepth" });
      pos++;
      ws();
      if (c === 0x5b) {
        const items: Json[] = [];
        if (text.charCodeAt(pos) === 0x5d) {
          pos++;
          return items;
        }
        for (;;) {
          items.push(value(depth + 1));
          ws();
          const d = text.charCodeAt(pos);
          pos++;
          if (d === 0x5d) return items;
          if (d !== 0x2c) return fail("expected ',' or ']'");
        }
      }
      const entries: [string, Json][] = [];
      const seen = new Set<string>();
      if (text.charCodeAt(pos) === 0x7d) {
        pos++;
        return { obj: entries };
      }
      for (;;) {
        ws();
        if (text.charCodeAt(pos) !== 0x22) return fail("expected a string key");
        const key = str();
        if (seen.has(key)) return fail(`duplicate key ${JSON.stringify(key.slice(0, 64))}`);
        seen.add(key);
        ws();
        if (text.charCodeAt(pos) !== 0x3a) return fail("expected ':'");
        pos++;
        entries.push([key, value(depth + 1)]);
        ws();
        const d = text.charCodeAt(pos);
        pos++;
        if (d === 0x7d) return { obj: entries };
        if (d !== 0x2c) return fail("expected ',' or '}'");
      }
    }
    if (c === 0x22) return str();
    if (text.startsWith("true", pos)) {
      pos += 4;
      return true;
    }
    if (text.startsWith("false", pos)) {
      pos += 5;
      return false;
    }
    if (text.startsWith("null", pos)) {
      pos += 4;
      return null;
    }
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (m === null) return fail("unexpected character");
    pos = NUMBER.lastIndex;
    return { num: m[0] };
  };
  const v = value(0);
  ws();
  if (pos !== text.length) fail("data after the JSON value");
  return v;
}

function isObj(v: Json): v is { obj: [string, Json][] } {
  return v !== null && typeof v === "object" && "obj" in v;
}

/** A JSON number that is a non-negative integer, as a bigint (serde's usize rejects anything else). */
function uint(v: Json | undefined, what: string): bigint {
  if (v === null || v === undefined || typeof v !== "object" || !("num" in v) || !/^(0|[1-9]\d*)$/.test(v.num)) {
    return malformed(`${what} is not a non-negative integer`);
  }
  if (v.num.length > 20) malformed(`${what} is too large`);
  return BigInt(v.num);
}

interface TensorSpan {
  name: string;
  dtype: string;
  begin: bigint;
  end: bigint;
}

export interface SafetensorsSummary {
  headerBytes: number;
  dataBytes: number;
  tensorCount: number;
  dtypes: Record<string, number>;
  metadata: Record<string, string> | undefined;
}

/** Read and check the whole structure (throws GatewayError malformed_container / limit_exceeded). */
export function readSafetensors(source: ByteSource, maxHeaderBytes: number, maxTensors: number): SafetensorsSummary {
  const cur = new Cursor(source, { errorCode: "malformed_container", what: "safetensors" });
  const n = cur.u64leBig("header length");
  if (n > BigInt(maxHeaderBytes)) {
    throw new GatewayError("limit_exceeded", `safetensors: header of ${n.toString()} bytes exceeds the limit of ${maxHeaderBytes}`, {
      limit: "maxSafetensorsHeaderBytes",
    });
  }
  const headerBytes = Number(n);
  if (headerBytes > cur.remaining) malformed(`header length ${headerBytes} runs past the end of the file`);
  const raw = cur.bytes(headerBytes, "header");
  if (raw[0] !== 0x7b) malformed("header does not start with '{'");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    return malformed("header is not valid UTF-8");
  }
  // Writers right-pad with spaces (0x20); any JSON whitespace is accepted, as serde_json does.
  const json = parseStrictJson(text);
  if (!isObj(json)) return malformed("header is not a JSON object");
  const dataBytes = cur.remaining;
  const spans: TensorSpan[] = [];
  const dtypes: Record<string, number> = {};
  let metadata: Record<string, string> | undefined;
  for (const [name, info] of json.obj) {
    if (name === "__metadata__") {
      if (!isObj(info)) return malformed("__metadata__ is not an object of strings");
      const pairs: [string, string][] = [];
      for (const [k, v] of info.obj) {
        if (typeof v !== "string") return malformed(`__metadata__ value of ${JSON.stringify(k.slice(0, 64))} is not a string`);
        pairs.push([k, v]);
      }
      // fromEntries defines own properties: a "__proto__" key stays data.
      metadata = Object.fromEntries(pairs);
      continue;
    }
    if (spans.length >= maxTensors) throw new GatewayError("limit_exceeded", `safetensors: more than ${maxTensors} tensors`, { limit: "maxEntries" });
    const where = `tensor ${JSON.stringify(name.slice(0, 64))}`;
    if (!isObj(info)) return malformed(`${where} is not an object`);
    const keys = info.obj
      .map(([k]) => k)
      .sort()
      .join(",");
    if (keys !== "data_offsets,dtype,shape") malformed(`${where} must have exactly dtype, shape, data_offsets`);
    const field = (k: string): Json | undefined => info.obj.find(([key]) => key === k)?.[1];
    const dtype = field("dtype");
    if (typeof dtype !== "string") return malformed(`${where}: dtype is not a string`);
    const bits = Object.hasOwn(SAFETENSORS_DTYPE_BITS, dtype) ? SAFETENSORS_DTYPE_BITS[dtype] : undefined;
    if (bits === undefined) return malformed(`${where}: unknown dtype ${JSON.stringify(dtype.slice(0, 32))}`);
    const shape = field("shape");
    if (!Array.isArray(shape)) return malformed(`${where}: shape is not an array`);
    const numel = shape.reduce<bigint>((acc, d) => acc * uint(d, `${where} shape dimension`), 1n);
    const offsets = field("data_offsets");
    if (!Array.isArray(offsets) || offsets.length !== 2) return malformed(`${where}: data_offsets is not [begin, end]`);
    const begin = uint(offsets[0], `${where} begin offset`);
    const end = uint(offsets[1], `${where} end offset`);
    if (end < begin) malformed(`${where}: end offset before begin offset`);
    const totalBits = numel * BigInt(bits);
    if (totalBits % 8n !== 0n) malformed(`${where}: ${numel.toString()} elements of ${dtype} do not fill whole bytes`);
    if (totalBits / 8n !== end - begin) {
      malformed(`${where}: shape x dtype is ${(totalBits / 8n).toString()} bytes but its span is ${(end - begin).toString()}`);
    }
    if (end > BigInt(dataBytes)) malformed(`${where}: span ends at ${end.toString()}, past the data section of ${dataBytes} bytes`);
    spans.push({ name, dtype, begin, end });
    dtypes[dtype] = (dtypes[dtype] ?? 0) + 1;
  }
  // Sorted by offset, each span must start where the previous ended (no overlap, no gap), and the
  // last must end at the end of the file (no trailing bytes).
  spans.sort((a, b) => (a.begin < b.begin ? -1 : a.begin > b.begin ? 1 : a.end < b.end ? -1 : a.end > b.end ? 1 : 0));
  let at = 0n;
  for (const s of spans) {
    if (s.begin < at) malformed(`tensor ${JSON.stringify(s.name.slice(0, 64))} overlaps the previous tensor`);
    if (s.begin > at) malformed(`${(s.begin - at).toString()} bytes before tensor ${JSON.stringify(s.name.slice(0, 64))} belong to no tensor`);
    at = s.end;
  }
  if (at !== BigInt(dataBytes)) malformed(`tensors cover ${at.toString()} of ${dataBytes} data bytes`);
  return { headerBytes, dataBytes, tensorCount: spans.length, dtypes, metadata };
}

/** `inspectSafetensors`: one node of kind "safetensors", never any pickle below it. */
export const inspectSafetensors: FormatInspector = (source: ByteSource, path: string, ctx: FormatContext) => {
  const node: InspectionNode = { kind: "safetensors", path, format: "safetensors", findings: [], children: [] };
  try {
    const s = readSafetensors(source, ctx.containerLimits.maxSafetensorsHeaderBytes, ctx.containerLimits.maxEntries);
    node.details = {
      headerBytes: s.headerBytes,
      dataBytes: s.dataBytes,
      tensors: s.tensorCount,
      dtypes: s.dtypes,
      pickleFree: true,
    };
    if (s.metadata !== undefined) node.details.metadata = capMetadata(s.metadata);
    node.findings.push({
      code: "info",
      severity: "innocuous",
      message: "safetensors holds a JSON header and raw tensor bytes only: no pickle or code can be embedded",
      location: path,
    });
  } catch (err) {
    if (isGatewayError(err) && (err.code === "malformed_container" || err.code === "limit_exceeded")) {
      node.findings.push({ code: err.code, severity: "malformed", message: err.message, location: path });
    } else throw err;
  }
  return Promise.resolve(node);
};

/** Metadata is reported as data, bounded so a report never carries megabytes of it. */
function capMetadata(metadata: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(metadata)
      .slice(0, 64)
      .map(([k, v]) => [k.slice(0, 128), v.length > 256 ? `${v.slice(0, 256)}...` : v]),
  );
}
