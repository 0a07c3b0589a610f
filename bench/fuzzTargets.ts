import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import nacl from "tweetnacl";
import { isGatewayError } from "../src/errors";
import type { InspectionNode } from "../src/inspect/report";

/**
 * Fuzz targets shared by `npm run fuzz` (bench/fuzz.ts) and the CI property pass
 * (test/fuzz/properties.test.ts). Each target takes arbitrary bytes and must either return or
 * throw a GatewayError: any other thrown value is a crash (an untyped exception is a parser
 * bug), and so is exceeding the time budget (a hang). Modules are imported lazily so a target
 * whose module is not there yet is skipped with a message instead of failing the whole run.
 */

/** The function under test; `dispose` removes what load() created (temp files). */
export type Execute = ((input: Uint8Array) => void | Promise<void>) & { dispose?: () => void };

export interface FuzzTarget {
  name: string;
  /** The function under test, or undefined (with why) when its module/export is missing. */
  load(): Promise<Execute | { missing: string }>;
  /** Small hand-built seeds (fixtures are added by seedsFor). */
  builtinSeeds(): Uint8Array[];
  /** Does this fixture file make a good seed for the target? */
  fixture(file: string, head: Uint8Array): boolean;
  /** Tokens the mutator splices in (magic numbers, keywords). */
  dictionary: string[];
  /** The input is JSON: the fuzzer also mutates it structurally (values, keys, nesting, base64 JSON inside strings). */
  json?: boolean;
}

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const latin1 = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, "latin1"));

/** An untyped error, or a GatewayError: is this outcome a crash? */
export function isCrash(err: unknown): boolean {
  return !isGatewayError(err);
}

/** The report tree carries non-GatewayErrors caught by the dispatcher as "inspection failed:" findings. */
function findUntypedFailure(node: InspectionNode): string | undefined {
  for (const f of node.findings) if (f.message.startsWith("inspection failed:")) return f.message;
  for (const c of node.children) {
    const found = findUntypedFailure(c);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Thrown when an inspection swallowed an untyped error into its report: still a crash. */
export class SwallowedError extends Error {
  override name = "SwallowedError";
}

// ---- seeds ----------------------------------------------------------------------------------

function u32le(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = (CRC_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A stored (uncompressed) zip with the given members. */
export function storedZip(members: [string, Uint8Array][]): Uint8Array {
  const crc = crc32;
  const local: number[] = [];
  const central: number[] = [];
  for (const [name, data] of members) {
    const n = bytes(name);
    const offset = local.length;
    const c = crc(data);
    local.push(
      ...u32le(0x04034b50),
      20,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...u32le(c),
      ...u32le(data.length),
      ...u32le(data.length),
      n.length & 0xff,
      n.length >> 8,
      0,
      0,
      ...n,
      ...data,
    );
    central.push(
      ...u32le(0x02014b50),
      20,
      0,
      20,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...u32le(c),
      ...u32le(data.length),
      ...u32le(data.length),
      n.length & 0xff,
      n.length >> 8,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...u32le(offset),
      ...n,
    );
  }
  const eocd = [...u32le(0x06054b50), 0, 0, 0, 0, members.length, 0, members.length, 0, ...u32le(central.length), ...u32le(local.length), 0, 0];
  return Uint8Array.from([...local, ...central, ...eocd]);
}

/** A ustar archive with the given files. */
export function ustar(members: [string, Uint8Array][]): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const [name, data] of members) {
    const h = new Uint8Array(512);
    h.set(bytes(name).subarray(0, 100), 0);
    h.set(bytes("0000644\0"), 100);
    h.set(bytes("0000000\0"), 108);
    h.set(bytes("0000000\0"), 116);
    h.set(bytes(`${data.length.toString(8).padStart(11, "0")}\0`), 124);
    h.set(bytes("00000000000\0"), 136);
    h.set(bytes("        "), 148);
    h[156] = 0x30;
    h.set(bytes("ustar\u000000"), 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.set(bytes(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
    blocks.push(h);
    const body = new Uint8Array(Math.ceil(data.length / 512) * 512);
    body.set(data);
    blocks.push(body);
  }
  blocks.push(new Uint8Array(1024));
  return Buffer.concat(blocks);
}

export function npy(shape: number[], descr = "<f4", body = new Uint8Array(16)): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  return Buffer.concat([latin1("\x93NUMPY\x01\x00"), Uint8Array.from([header.length & 0xff, header.length >> 8]), bytes(header), body]);
}

export function safetensors(tensors: Record<string, { dtype: string; shape: number[] }>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const size = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === "F64" || t.dtype === "I64" ? 8 : t.dtype === "F16" || t.dtype === "BF16" ? 2 : 4);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, bytes(json), new Uint8Array(offset)]);
}

const PICKLE_SEEDS = [
  // protocol 2: {'a': [1, 2.5, 'x']}
  latin1("\x80\x02}q\x00X\x01\x00\x00\x00aq\x01]q\x02(K\x01G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x03es."),
  // protocol 0 global + reduce: collections.OrderedDict()
  latin1("ccollections\nOrderedDict\np0\n(tRp1\n."),
  // protocol 4 frame, STACK_GLOBAL of builtins.eval (dangerous)
  latin1("\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94\x8c\x011\x94\x85\x94R\x94."),
  // memo, persistent id, build, bytes
  latin1("\x80\x03cnumpy.core.multiarray\n_reconstruct\nq\x00(X\x01\x00\x00\x00pQC\x03abcq\x01tq\x02bh\x01N\x86."),
  latin1("\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x96\x03\x00\x00\x00\x00\x00\x00\x00abc\x94."),
];

function envelopeSeeds(): Uint8Array[] {
  const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
  const statement = {
    _type: "https://in-toto.io/Statement/v1",
    subject: [{ name: "examples/model.safetensors", digest: { sha256: "a".repeat(64) } }],
    predicateType: "https://modelgate.dev/attestation/publish/v1",
    predicate: {},
  };
  const payload = Buffer.from(JSON.stringify(statement));
  const payloadType = "application/vnd.in-toto+json";
  const pae = Buffer.concat([bytes(`DSSEv1 ${payloadType.length.toString()} ${payloadType} ${payload.length.toString()} `), payload]);
  const sig = Buffer.from(nacl.sign.detached(pae, kp.secretKey)).toString("base64");
  const env = { payloadType, payload: payload.toString("base64"), signatures: [{ keyid: "k".repeat(64), sig }] };
  return [bytes(JSON.stringify(env)), bytes(JSON.stringify({ ...env, signatures: [] })), bytes('{"payloadType":1}')];
}

function allowlistSeeds(): Uint8Array[] {
  const kp = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9));
  const der = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), Buffer.from(kp.publicKey)]);
  const pem = `-----BEGIN PUBLIC KEY-----\n${der.toString("base64")}\n-----END PUBLIC KEY-----\n`;
  const file = {
    version: 1,
    sources: [
      {
        id: "research",
        description: "research cluster",
        keys: [{ publicKey: pem, notBefore: "2026-01-01T00:00:00Z" }],
        threshold: 1,
        names: ["research/**"],
        pickle: { allowGlobals: ["sklearn.*"], allowTorchScript: false, allowEmbeddedCode: false, allowOpaqueMembers: false },
      },
    ],
  };
  return [bytes(JSON.stringify(file, null, 2)), bytes('{"version":1,"sources":[]}'), bytes("[]")];
}

// ---- targets --------------------------------------------------------------------------------

const hasMagic = (head: Uint8Array, magic: number[], at = 0): boolean => magic.every((b, i) => head[at + i] === b);
const isZipHead = (head: Uint8Array): boolean => hasMagic(head, [0x50, 0x4b, 0x03, 0x04]);

type Module = Record<string, unknown>;
async function exported<T>(modulePath: string, name: string): Promise<T | { missing: string }> {
  let mod: Module;
  try {
    mod = (await import(modulePath)) as Module;
  } catch (err) {
    return { missing: `cannot import ${modulePath}: ${err instanceof Error ? err.message : String(err)}` };
  }
  const fn = mod[name];
  return typeof fn === "function" ? (fn as T) : { missing: `${modulePath} has no export ${name}` };
}

/** Run `use` with `limits` loaded from src/limits (container limits shrunk so fuzzing stays fast). */
async function containerLimits(): Promise<Record<string, number>> {
  const limits = (await import("../src/limits")) as unknown as { DEFAULT_CONTAINER_LIMITS: Record<string, number> };
  return { ...limits.DEFAULT_CONTAINER_LIMITS, maxEntries: 256, maxEntryUncompressedBytes: 1 << 22, maxTotalUncompressedBytes: 1 << 24 };
}

const PICKLE_DICT = [
  "\x80\x02",
  "\x80\x04",
  "\x80\x05",
  "c",
  "\x93",
  "R",
  "b",
  "(",
  "t",
  ".",
  "q\x00",
  "h\x00",
  "\x94",
  "\x95",
  "\x8c",
  "X",
  "N",
  "}",
  "]",
  "e",
  "u",
  "s",
  "Q",
  "P",
  "\x81",
  "\x82",
  "\x88",
  "builtins\neval\n",
  "os\nsystem\n",
  "torch._utils\n_rebuild_tensor_v2\n",
  "__builtin__",
  "\x96",
  "\x97",
  "\x98",
];

export const TARGETS: readonly FuzzTarget[] = [
  {
    name: "pickle",
    async load() {
      const analyze = await exported<(c: unknown, o: unknown) => unknown>("../src/pickle/analyzer", "analyzePickle");
      if ("missing" in analyze) return analyze;
      const { Cursor } = await import("../src/bytes/cursor");
      const { makePicklePolicy } = await import("../src/pickle/policy");
      const { DEFAULT_CONTENT_POLICY } = await import("../src/inspect/policy");
      const policy = makePicklePolicy(DEFAULT_CONTENT_POLICY);
      return (input) => {
        analyze(Cursor.ofBytes(input, { errorCode: "malformed_pickle", what: "pickle" }), {
          policy,
          location: "fuzz",
          limits: { timeBudgetMs: 2_000, maxOpsPerStream: 200_000, maxStreamsPerSequence: 50 },
        });
      };
    },
    builtinSeeds: () => PICKLE_SEEDS,
    fixture: (file, head) => /\.(pkl|pickle|p)$/.test(file) || (head[0] === 0x80 && (head[1] ?? 9) <= 5),
    dictionary: PICKLE_DICT,
  },
  {
    name: "zip",
    async load() {
      const read = await exported<(s: unknown, o: unknown) => unknown>("../src/formats/containers/zip", "readZipDirectory");
      if ("missing" in read) return read;
      const { BufferSource } = await import("../src/bytes/source");
      const limits = await containerLimits();
      return (input) => {
        read(new BufferSource(input), { limits });
      };
    },
    builtinSeeds: () => [
      storedZip([["a/data.pkl", PICKLE_SEEDS[0] ?? new Uint8Array()]]),
      storedZip([
        ["x.npy", npy([2, 2])],
        ["y.npy", npy([4])],
      ]),
      storedZip([]),
    ],
    fixture: (_f, head) => isZipHead(head),
    dictionary: ["PK\x03\x04", "PK\x01\x02", "PK\x05\x06", "PK\x06\x06", "PK\x06\x07", "PK\x07\x08", "\x01\x00", "\xff\xff\xff\xff", "../", "/", "\\", "\x00"],
  },
  {
    name: "tar",
    async load() {
      const read = await exported<(s: unknown, c: unknown) => unknown>("../src/formats/containers/tar", "readTarEntries");
      if ("missing" in read) return read;
      const { BufferSource } = await import("../src/bytes/source");
      const limits = await containerLimits();
      return (input) => {
        read(new BufferSource(input), { containerLimits: limits });
      };
    },
    builtinSeeds: () => [
      ustar([
        ["model/MLmodel", bytes("flavors: {}\n")],
        ["model/x.pkl", PICKLE_SEEDS[0] ?? new Uint8Array()],
      ]),
      ustar([]),
    ],
    fixture: (_f, head) => hasMagic(head, [0x75, 0x73, 0x74, 0x61, 0x72], 257),
    dictionary: ["ustar\x0000", "ustar  \x00", "././@LongLink", "x", "g", "L", "K", "path=", " 30 path=", "\n", "0000000", "../"],
  },
  {
    name: "npy",
    async load() {
      const read = await exported<(s: unknown, n: number) => unknown>("../src/formats/models/numpy", "readNpyHeader");
      if ("missing" in read) return read;
      const { BufferSource } = await import("../src/bytes/source");
      return (input) => {
        read(new BufferSource(input), 64 * 1024);
      };
    },
    builtinSeeds: () => [npy([2, 2]), npy([3], "|O"), npy([], "<i8", new Uint8Array(8)), npy([1, 2], "[('a', '<f4'), ('b', '|O')]")],
    fixture: (file, head) => file.endsWith(".npy") || hasMagic(head, [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]),
    dictionary: ["\x93NUMPY", "'descr'", "'shape'", "'fortran_order'", "True", "False", "|O", "<f8", ">i4", "(", ")", "{", "}", "[(", ")]", ","],
  },
  {
    name: "safetensors",
    async load() {
      const read = await exported<(s: unknown, h: number, t: number) => unknown>("../src/formats/models/safetensors", "readSafetensors");
      if ("missing" in read) return read;
      const { BufferSource } = await import("../src/bytes/source");
      return (input) => {
        read(new BufferSource(input), 1 << 20, 10_000);
      };
    },
    builtinSeeds: () => [safetensors({ w: { dtype: "F32", shape: [2, 3] }, b: { dtype: "F16", shape: [3] } }, { format: "pt" }), safetensors({})],
    fixture: (file) => file.endsWith(".safetensors"),
    dictionary: [
      '"dtype"',
      '"shape"',
      '"data_offsets"',
      '"__metadata__"',
      '"F32"',
      '"BF16"',
      '"I64"',
      "[",
      "]",
      "{",
      "}",
      ",",
      "0",
      "18446744073709551615",
      "\\u0000",
    ],
  },
  {
    name: "envelope",
    async load() {
      const parse = await exported<(b: Uint8Array) => unknown>("../src/trust/dsse", "parseEnvelope");
      if ("missing" in parse) return parse;
      return (input) => {
        parse(input);
      };
    },
    builtinSeeds: envelopeSeeds,
    json: true,
    fixture: (file, head) => file.endsWith(".json") && Buffer.from(head).toString("latin1").includes("payload"),
    dictionary: [
      '"payloadType"',
      '"payload"',
      '"signatures"',
      '"keyid"',
      '"sig"',
      '"_type"',
      '"subject"',
      '"predicateType"',
      "null",
      "[",
      "]",
      "{",
      "}",
      "\\u",
      "==",
    ],
  },
  {
    name: "allowlist",
    async load() {
      const load = await exported<(file: string) => unknown>("../src/trust/allowlist", "loadAllowlist");
      if ("missing" in load) return load;
      const dir = mkdtempSync(path.join(tmpdir(), "modelgate-fuzz-allowlist-"));
      const file = path.join(dir, "allowlist.json");
      const run: Execute = (input) => {
        writeFileSync(file, input);
        load(file);
      };
      run.dispose = () => {
        rmSync(dir, { recursive: true, force: true });
      };
      return run;
    },
    builtinSeeds: allowlistSeeds,
    json: true,
    fixture: (file) => /allowlist.*\.json$/.test(file),
    dictionary: [
      '"sources"',
      '"keys"',
      '"publicKey"',
      '"path"',
      '"threshold"',
      '"names"',
      '"revoked"',
      '"notBefore"',
      '"pickle"',
      '"allowGlobals"',
      "-----BEGIN PUBLIC KEY-----",
      "../",
      "**",
    ],
  },
  {
    name: "onnx",
    async load() {
      const read = await exported<(s: unknown) => unknown>("../src/formats/models/onnx", "readOnnxModel");
      if ("missing" in read) return read;
      const { BufferSource } = await import("../src/bytes/source");
      return (input) => {
        read(new BufferSource(input));
      };
    },
    builtinSeeds: () => [
      // ModelProto { ir_version 8, graph { node { input "x", output "y", op_type "Relu" } }, opset_import { domain "", version 13 } }
      Uint8Array.from([
        0x08, 0x08, 0x3a, 0x0f, 0x0a, 0x0d, 0x0a, 0x01, 0x78, 0x12, 0x01, 0x79, 0x22, 0x04, 0x52, 0x65, 0x6c, 0x75, 0x42, 0x04, 0x0a, 0x00, 0x10, 0x0d,
      ]),
    ],
    fixture: (file) => file.endsWith(".onnx"),
    dictionary: ["ai.onnx", "com.microsoft", "location", "offset", "length", "../", "*/_ORT_MEM_ADDR_/*", "\x3a", "\x6a", "\x70\x01"],
  },
  {
    name: "inspect",
    async load() {
      const dispatch = await exported<(...a: unknown[]) => Promise<InspectionNode>>("../src/formats/dispatch", "inspectByContent");
      if ("missing" in dispatch) return dispatch;
      const d = (await import("../src/formats/dispatch")) as unknown as { inspectMember: unknown; inspectArchive: unknown };
      const { BufferSource } = await import("../src/bytes/source");
      const { DEFAULT_CONTENT_POLICY } = await import("../src/inspect/policy");
      const { DEFAULT_PICKLE_LIMITS } = await import("../src/limits");
      const limits = await containerLimits();
      return async (input) => {
        const tempDir = mkdtempSync(path.join(tmpdir(), "modelgate-fuzz-"));
        try {
          const ctx = {
            policy: DEFAULT_CONTENT_POLICY,
            containerLimits: limits,
            pickleLimits: { ...DEFAULT_PICKLE_LIMITS, timeBudgetMs: 2_000, maxOpsPerStream: 200_000 },
            depth: 0,
            tempDir,
            budget: { uncompressedBytes: 0 },
            inspectMember: d.inspectMember,
            inspectArchive: d.inspectArchive,
          };
          const node = await dispatch(new BufferSource(input), "", ctx, true);
          const swallowed = findUntypedFailure(node);
          if (swallowed !== undefined) throw new SwallowedError(swallowed);
        } finally {
          rmSync(tempDir, { recursive: true, force: true });
        }
      };
    },
    builtinSeeds: () => [
      ...PICKLE_SEEDS.slice(0, 2),
      storedZip([
        ["archive/data.pkl", PICKLE_SEEDS[0] ?? new Uint8Array()],
        ["archive/version", bytes("3\n")],
      ]),
      npy([2]),
    ],
    fixture: () => true,
    dictionary: [...PICKLE_DICT.slice(0, 12), "PK\x03\x04", "PK\x05\x06", "\x93NUMPY", "\x1f\x8b", "BZh", "\xfd7zXZ\x00", "\x04\x22\x4d\x18", "ustar"],
  },
  {
    name: "gguf",
    async load() {
      const read = await exported<(s: unknown) => unknown>("../src/formats/models/gguf", "readGguf");
      if ("missing" in read) return read;
      const { BufferSource } = await import("../src/bytes/source");
      return (input) => {
        read(new BufferSource(input));
      };
    },
    builtinSeeds: () => [],
    fixture: (file, head) => file.endsWith(".gguf") && head[0] === 0x47,
    dictionary: [
      "GGUF",
      "\x03\x00\x00\x00",
      "\x02\x00\x00\x00",
      "general.alignment",
      "tokenizer.chat_template",
      "\x09\x00\x00\x00",
      "\x08\x00\x00\x00",
      "\xff\xff\xff\xff",
    ],
  },
  {
    name: "chat-template",
    async load() {
      const judge = await exported<(s: string) => unknown>("../src/formats/models/chatTemplate", "judgeChatTemplate");
      if ("missing" in judge) return judge;
      // judgeChatTemplate returns a verdict for any text: any throw is a crash.
      return (input) => {
        const verdict = judge(new TextDecoder().decode(input));
        if (typeof verdict !== "object" || verdict === null) throw new Error("no verdict");
      };
    },
    builtinSeeds: () => [
      bytes("{% for m in messages %}{{ m['role'] ~ m.content|trim }}{% endfor %}{% if add_generation_prompt %}x{% endif %}"),
      bytes("{% set ns = namespace(a=0) %}{% macro f(x, y=1) %}{{ x[y] }}{% endmacro %}{{ f(messages) }}{{ messages|selectattr('role')|list }}"),
    ],
    fixture: () => false,
    dictionary: [
      "{{",
      "}}",
      "{%",
      "%}",
      "{#",
      "#}",
      "for ",
      "in ",
      "endfor",
      "if ",
      "endif",
      "set ",
      "macro ",
      "endmacro",
      "call",
      "|",
      ".",
      "[",
      "]",
      "(",
      ")",
      "__class__",
      "~",
      "'",
      "self",
      "loop.index0",
    ],
  },
];

// ---- fixtures -------------------------------------------------------------------------------

/** test/fixtures, whether running from bench/ (ts-jest) or dist/bench/ (compiled). */
export function fixtureRoot(): string {
  const fromSource = path.resolve(__dirname, "..", "test", "fixtures");
  const fromDist = path.resolve(__dirname, "..", "..", "test", "fixtures");
  for (const candidate of [fromSource, fromDist]) {
    try {
      if (statSync(candidate).isDirectory()) return candidate;
    } catch {
      // try the next
    }
  }
  return fromSource;
}

function walk(dir: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, out);
    else if (st.isFile()) out.push(p);
  }
}

/**
 * Built-in seeds, fixture files that suit the target and the target's saved crashers in
 * test/fixtures/fuzz-regressions/ (each at most maxBytes; larger files are skipped).
 */
export function seedsFor(target: FuzzTarget, maxBytes = 256 * 1024): Uint8Array[] {
  const seeds = [...target.builtinSeeds()];
  const files: string[] = [];
  walk(fixtureRoot(), files);
  for (const file of files.sort()) {
    const st = statSync(file);
    if (st.size === 0 || st.size > maxBytes || /\.(py|md)$/.test(file) || file.endsWith("manifest.json")) continue;
    const rel = path.relative(fixtureRoot(), file);
    const data = readFileSync(file);
    if (rel.startsWith(`fuzz-regressions${path.sep}`)) {
      // Saved crashers replay against their own target only.
      if (path.basename(rel).startsWith(`${target.name}-`) && rel.endsWith(".bin")) seeds.push(new Uint8Array(data));
      continue;
    }
    if (target.fixture(rel, data.subarray(0, 512))) seeds.push(new Uint8Array(data));
  }
  return seeds;
}
