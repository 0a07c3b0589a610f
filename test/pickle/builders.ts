import { Cursor } from "../../src/bytes/cursor";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { analyzePickle, type AnalyzeOptions, type PickleAnalysis } from "../../src/pickle/analyzer";
import { makePicklePolicy } from "../../src/pickle/policy";
import { OP, opcodeInfo, type OpName } from "../../src/pickle/opcodes";

/**
 * A tiny pickle assembler for tests: `buildPickle([["PROTO", 4], ["GLOBAL", "os", "system"], ...])`.
 * Arguments are encoded by each opcode's argument kind; lengths are computed unless given as
 * `{ declared }` overrides. `{ raw }` inserts bytes verbatim (garbage, lying lengths).
 */
export type PickleOp = [OpName] | [OpName, number | bigint | string | boolean | Uint8Array] | [OpName, string, string] | { raw: Uint8Array | string };

const enc = new TextEncoder();

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}
function u64(n: number): number[] {
  return [...u32(n >>> 0), ...u32(Math.floor(n / 0x100000000))];
}
function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return enc.encode(v);
  throw new Error(`need string or bytes, got ${String(v)}`);
}
function latin1(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  const s = String(v);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}
function longBytes(v: bigint): number[] {
  if (v === 0n) return [];
  const out: number[] = [];
  let x = v;
  for (;;) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
    const last = out[out.length - 1] as number;
    if ((x === 0n && (last & 0x80) === 0) || (x === -1n && (last & 0x80) !== 0)) break;
  }
  return out;
}

export function encodeOp(op: PickleOp): number[] {
  if (!Array.isArray(op)) return [...(typeof op.raw === "string" ? latin1(op.raw) : op.raw)];
  const [name, a, b] = op as [OpName, unknown, unknown];
  const code = OP[name];
  const info = opcodeInfo(code);
  if (!info) throw new Error(name);
  const out: number[] = [code];
  switch (info.arg) {
    case "none":
      break;
    case "uint1":
      out.push(Number(a) & 0xff);
      break;
    case "uint2":
      out.push(Number(a) & 0xff, (Number(a) >> 8) & 0xff);
      break;
    case "int4":
    case "uint4":
      out.push(...u32(Number(a)));
      break;
    case "uint8":
      out.push(...u64(Number(a)));
      break;
    case "float8": {
      const dv = new DataView(new ArrayBuffer(8));
      dv.setFloat64(0, Number(a), false);
      out.push(...new Uint8Array(dv.buffer));
      break;
    }
    case "long1":
    case "long4": {
      const bs = longBytes(typeof a === "bigint" ? a : BigInt(Number(a)));
      if (info.arg === "long1") out.push(bs.length);
      else out.push(...u32(bs.length));
      out.push(...bs);
      break;
    }
    case "string1":
    case "bytes1": {
      const bs = info.arg === "string1" ? latin1(a) : bytesOf(a);
      out.push(bs.length, ...bs);
      break;
    }
    case "unicodestring1": {
      const bs = bytesOf(a);
      out.push(bs.length, ...bs);
      break;
    }
    case "string4":
    case "bytes4":
    case "unicodestring4": {
      const bs = info.arg === "string4" ? latin1(a) : bytesOf(a);
      out.push(...u32(bs.length), ...bs);
      break;
    }
    case "bytes8":
    case "bytearray8":
    case "unicodestring8": {
      const bs = bytesOf(a);
      out.push(...u64(bs.length), ...bs);
      break;
    }
    case "decimalnl_short":
      out.push(...latin1(typeof a === "boolean" ? (a ? "01" : "00") : String(a)), 0x0a);
      break;
    case "decimalnl_long":
      out.push(...latin1(`${String(a)}L`), 0x0a);
      break;
    case "floatnl":
      out.push(...latin1(String(a)), 0x0a);
      break;
    case "stringnl":
      out.push(...latin1(typeof a === "string" && (a.startsWith("'") || a.startsWith('"')) ? a : `'${String(a)}'`), 0x0a);
      break;
    case "stringnl_noescape":
    case "unicodestringnl":
      out.push(...latin1(String(a)), 0x0a);
      break;
    case "stringnl_noescape_pair":
      out.push(...bytesOf(a), 0x0a, ...bytesOf(b), 0x0a);
      break;
  }
  return out;
}

export function buildPickle(ops: PickleOp[]): Uint8Array {
  const out: number[] = [];
  for (const op of ops) out.push(...encodeOp(op));
  return Uint8Array.from(out);
}

/** A FRAME opcode whose length covers exactly `ops`, followed by them. */
export function framed(ops: PickleOp[]): PickleOp[] {
  const body = buildPickle(ops);
  return [["FRAME", body.length], { raw: body }];
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The common shapes: an import and a call of it with one string argument. */
export function callOf(module: string, name: string, arg = "id", via: "GLOBAL" | "STACK_GLOBAL" = "GLOBAL"): PickleOp[] {
  const imp: PickleOp[] = via === "GLOBAL" ? [["GLOBAL", module, name]] : [["SHORT_BINUNICODE", module], ["SHORT_BINUNICODE", name], ["STACK_GLOBAL"]];
  return [...imp, ["SHORT_BINUNICODE", arg], ["TUPLE1"], ["REDUCE"]];
}

/** Analyze bytes under the default policy plus `allow` patterns. */
export function analyzeBytes(bytes: Uint8Array, opts: Partial<Omit<AnalyzeOptions, "policy">> & { allow?: string[] } = {}): PickleAnalysis {
  const { allow, ...rest } = opts;
  return analyzePickle(Cursor.ofBytes(bytes, { errorCode: "malformed_pickle" }), {
    policy: makePicklePolicy(DEFAULT_CONTENT_POLICY, allow ?? []),
    location: "t",
    ...rest,
  });
}

export function codesOf(a: PickleAnalysis): string[] {
  return a.node.findings.map((f) => f.code);
}

export function verdictOf(a: PickleAnalysis): "accept" | "reject" {
  return a.node.findings.some((f) => f.severity !== "innocuous") ? "reject" : "accept";
}

export function analyzeOps(ops: PickleOp[], opts: Parameters<typeof analyzeBytes>[1] = {}): PickleAnalysis {
  return analyzeBytes(buildPickle(ops), opts);
}
