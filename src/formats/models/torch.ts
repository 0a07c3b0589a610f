import { Cursor } from "../../bytes/cursor";
import { SliceSource, type ByteSource } from "../../bytes/source";
import type { Finding, InspectionNode } from "../../inspect/report";
import { MAX_REPORT_PICKLE_NODES_PER_MEMBER } from "../../limits";
import { analyzePickle, inspectPickleSource, makePicklePolicy, type PickleAnalysis } from "../../pickle";
import type { SymbolicValue } from "../../pickle/values";
import { describeValue } from "../../pickle/values";
import type { ArchiveContents, ArchiveMember } from "../containers/archive";
import type { FormatContext } from "../context";
import { readHead } from "../detect";
import { memberPath } from "../containers/memberPath";
import { appendMemberNode, deeper, findingOf, withMember } from "../members";
import { pickleLoadWouldRun } from "../pickleProbe";

/**
 * PyTorch checkpoints.
 *
 * Zip (torch.save since 1.6, torch/csrc/jit/serialization + caffe2/serialize/inline_container.cc):
 * `<top>/data.pkl` (the object graph; tensors are persistent ids
 * `('storage', torch.<T>Storage, key, location, numel)`), `<top>/data/<key>` (raw storage bytes,
 * never unpickled), `<top>/version`, `<top>/byteorder`, `<top>/.data/...`. Any top folder name is
 * allowed but every entry must sit under the same one (torch takes the name from the first entry
 * and ignores the rest: a second folder is a place to hide things). Every `.pkl` entry is scanned,
 * not only data.pkl. TorchScript archives (`code/`, `constants.pkl`) carry TorchScript source that
 * runs on load: `embedded_code`, unless the policy allows TorchScript.
 *
 * Legacy (`_use_new_zipfile_serialization=False`, torch/serialization.py `_legacy_save`): five
 * pickles back to back (magic number, protocol version, sys info, the data, the sorted list of
 * storage keys), then per key in that order: an 8-byte little-endian element count and
 * count * element_size raw bytes (`storage._write_file`). The raw bytes are skipped by those sizes
 * and must end exactly at the end of the file.
 */

/** Element size of every storage type torch.save writes (torch/storage.py, _utils._element_size). */
export const TORCH_STORAGE_ELEMENT_SIZE: Readonly<Record<string, number>> = Object.freeze({
  DoubleStorage: 8,
  FloatStorage: 4,
  HalfStorage: 2,
  BFloat16Storage: 2,
  LongStorage: 8,
  IntStorage: 4,
  ShortStorage: 2,
  CharStorage: 1,
  ByteStorage: 1,
  BoolStorage: 1,
  ComplexDoubleStorage: 16,
  ComplexFloatStorage: 8,
  ComplexHalfStorage: 4,
  QUInt8Storage: 1,
  QInt8Storage: 1,
  QInt32Storage: 4,
  QUInt4x2Storage: 1,
  QUInt2x4Storage: 1,
  UntypedStorage: 1,
  Float8_e5m2Storage: 1,
  Float8_e4m3fnStorage: 1,
  Float8_e5m2fnuzStorage: 1,
  Float8_e4m3fnuzStorage: 1,
  UInt16Storage: 2,
  UInt32Storage: 4,
  UInt64Storage: 8,
});

/** torch's legacy MAGIC_NUMBER and PROTOCOL_VERSION (torch/serialization.py). */
export const TORCH_LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
export const TORCH_LEGACY_PROTOCOL = 1001n;

export interface StorageRef {
  key: string;
  storageType: string;
  location: string;
  numel: bigint;
  elementSize: number;
}

/**
 * Check one persistent id against the shape torch writes. Returns the storage reference, or a
 * reason it is not one. `legacy` ids carry a sixth field (view metadata: None or a tuple).
 */
export function parseStoragePid(id: SymbolicValue, legacy: boolean): StorageRef | string {
  if (id.kind !== "tuple") return `persistent id ${describeValue(id)} is not a tuple`;
  const want = legacy ? 6 : 5;
  if (id.items.length !== want || id.truncated === true) return `persistent id ${describeValue(id)} does not have ${want} fields`;
  const [tag, type, key, location, numel, view] = id.items;
  if (tag?.kind !== "str" || tag.value !== "storage") return `persistent id ${describeValue(id)} is not a ('storage', ...) reference`;
  if (type?.kind !== "global" || type.module !== "torch") return `persistent id storage type ${type ? describeValue(type) : "?"} is not a torch storage class`;
  const elementSize = TORCH_STORAGE_ELEMENT_SIZE[type.name];
  if (elementSize === undefined) return `persistent id storage type torch.${type.name} is not a known storage class`;
  if (key?.kind !== "str" || key.truncated === true || key.value.length === 0 || !/^[A-Za-z0-9_.-]+$/.test(key.value)) {
    return `persistent id key ${key ? describeValue(key) : "?"} is not a storage key`;
  }
  if (location?.kind !== "str" || location.truncated === true || !/^[A-Za-z0-9_:.-]{1,64}$/.test(location.value)) {
    return `persistent id location ${location ? describeValue(location) : "?"} is not a device name`;
  }
  if (numel?.kind !== "int" || numel.value < 0n) return `persistent id size ${numel ? describeValue(numel) : "?"} is not a non-negative int`;
  if (legacy && view !== undefined && view.kind !== "none" && view.kind !== "tuple") {
    return `persistent id view metadata ${describeValue(view)} is neither None nor a tuple`;
  }
  return { key: key.value, storageType: type.name, location: location.value, numel: numel.value, elementSize };
}

function pidFinding(message: string, location: string, offset?: number): Finding {
  const f: Finding = { code: "bad_persistent_id", severity: "malformed", message, location };
  if (offset !== undefined) f.offset = offset;
  return f;
}

// ---- zip layout ------------------------------------------------------------------------------

export interface TorchZipLayout {
  top: string;
  torchScript: boolean;
}

/** ASCII-only lower case, as miniz's MZ_TOLOWER compares names (mz_zip_reader_locate_file). */
export function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** A PyTorch zip layout: every entry under one top folder that holds data.pkl. */
export function torchZipLayout(members: readonly ArchiveMember[]): TorchZipLayout | undefined {
  const first = members.find((m) => !m.isDirectory);
  if (!first) return undefined;
  const slash = first.path.indexOf("/");
  if (slash <= 0) return undefined;
  const top = first.path.slice(0, slash);
  // torch finds records with miniz's case-insensitive lookup: "archive/DATA.PKL" is its data.pkl.
  const dataPkl = asciiLower(`${top}/data.pkl`);
  if (!members.some((m) => asciiLower(m.path) === dataPkl && !m.isDirectory)) return undefined;
  const code = asciiLower(`${top}/code`);
  const constants = asciiLower(`${top}/constants.pkl`);
  const torchScript = members.some((m) => {
    const p = asciiLower(m.path);
    return p.startsWith(`${code}/`) || p === code || p === constants;
  });
  return { top, torchScript };
}

/**
 * What torch.jit.load's own unpickler (torch/csrc/jit/serialization/unpickler.cpp) resolves
 * natively in a TorchScript archive: the list/tensor builders of torch.jit._pickle and the
 * `__torch__.*` classes compiled from the archive's code/. Python's pickle never reads these
 * pickles (torch.load hands TorchScript zips to torch.jit.load), so when the policy allows
 * TorchScript (and so trusts its code) these imports are what TorchScript means, not a finding.
 */
const TORCHSCRIPT_BUILDERS: ReadonlySet<string> = new Set([
  "torch.jit._pickle.build_intlist",
  "torch.jit._pickle.build_tensorlist",
  "torch.jit._pickle.build_doublelist",
  "torch.jit._pickle.build_boollist",
  "torch.jit._pickle.build_complexlist",
  "torch.jit._pickle.build_tensor_from_id",
  "torch.jit._pickle.restore_type_tag",
]);

function isTorchScriptNative(global: string): boolean {
  return (
    TORCHSCRIPT_BUILDERS.has(global) ||
    (global.startsWith("__torch__.") &&
      !global
        .slice("__torch__.".length)
        .split(".")
        .some((s) => s.startsWith("__") && s.endsWith("__")))
  );
}

/** Under an allowing policy, mark TorchScript-native imports of a pickle node innocuous. */
export function relaxTorchScriptImports(node: InspectionNode): void {
  for (const f of node.findings) {
    if ((f.code === "unknown_global" || f.code === "dangerous_global") && f.global !== undefined && isTorchScriptNative(f.global)) {
      f.severity = "innocuous";
      f.message = `${f.message} (TorchScript-native, resolved by torch.jit.load; allowed with TorchScript)`;
    }
  }
  for (const rec of node.imports ?? []) {
    if (isTorchScriptNative(`${rec.module}.${rec.name}`)) rec.safety = "innocuous";
  }
}

/** A legacy ('module', class, source_file, source) persistent id (torch/serialization.py _legacy_save). */
function isModulePid(id: SymbolicValue): boolean {
  if (id.kind !== "tuple" || id.truncated === true || id.items.length !== 4) return false;
  const [tag, cls, file, source] = id.items;
  const strOrNone = (v: SymbolicValue | undefined): boolean => v?.kind === "none" || (v?.kind === "str" && v.truncated !== true);
  return tag?.kind === "str" && tag.value === "module" && cls?.kind === "global" && strOrNone(file) && strOrNone(source);
}

/**
 * Analyze the one pickle torch reads at `start` (pickle.load reads one and stops at its STOP).
 * `judgePid` says what is wrong with a persistent id, or undefined when torch accepts it.
 */
function analyzeTorchPickle(
  source: ByteSource,
  location: string,
  ctx: FormatContext,
  start: number,
  judgePid: (id: SymbolicValue) => string | undefined,
): PickleAnalysis {
  const cursor = new Cursor(source, { start, errorCode: "malformed_pickle", what: location });
  return analyzePickle(cursor, {
    policy: makePicklePolicy(ctx.policy),
    limits: ctx.pickleLimits,
    location,
    single: true,
    onPersistentId: (id: SymbolicValue, offset: number): Finding[] => {
      const wrong = judgePid(id);
      return wrong === undefined ? [] : [pidFinding(wrong, location, offset)];
    },
  });
}

/** Scan one pickle of a torch checkpoint, collecting its storage references. */
function scanTorchPickle(
  source: ByteSource,
  path: string,
  ctx: FormatContext,
  legacy: boolean,
  refs: Map<string, StorageRef>,
  start = 0,
): { node: InspectionNode; end: number; value: SymbolicValue | undefined } {
  const analysis = analyzeTorchPickle(source, `${path}#pickle`, ctx, start, (id) => {
    // _legacy_save names each nn.Module class it pickles as ('module', cls, source_file, source);
    // persistent_load returns cls (an import the analyzer already classified).
    if (legacy && isModulePid(id)) return undefined;
    const ref = parseStoragePid(id, legacy);
    if (typeof ref === "string") return ref;
    const seen = refs.get(ref.key);
    if (seen && (seen.storageType !== ref.storageType || seen.numel !== ref.numel)) {
      return `storage ${ref.key} is referenced with two different types or sizes`;
    }
    refs.set(ref.key, ref);
    return undefined;
  });
  return { node: analysis.node, end: analysis.end, value: analysis.values[0] };
}

/**
 * Inspect a PyTorch zip checkpoint (or TorchScript archive): every .pkl scanned with storage
 * reference checks, every referenced data/<key> CRC-checked (opened) and size-checked but never
 * parsed, every other member sniffed by content.
 */
export async function inspectTorchZip(archive: ArchiveContents, layout: TorchZipLayout, path: string, ctx: FormatContext): Promise<InspectionNode> {
  const node = archive.node;
  node.format = layout.torchScript ? "torchscript" : "pytorch-zip";
  const prefix = `${layout.top}/`;
  const outside = archive.members.filter((m) => !(m.path === layout.top && m.isDirectory) && !m.path.startsWith(prefix));
  for (const m of outside) {
    node.findings.push({
      code: "malformed_container",
      severity: "malformed",
      message: `entry ${JSON.stringify(m.path.slice(0, 200))} is outside the checkpoint folder ${JSON.stringify(layout.top)} (torch ignores it)`,
      location: memberPath(path, m.path),
    });
  }
  if (layout.torchScript) {
    node.findings.push(
      ctx.policy.allowTorchScript
        ? { code: "embedded_code", severity: "innocuous", message: "TorchScript archive (code/, constants.pkl) allowed by the source's policy", location: path }
        : {
            code: "embedded_code",
            severity: "dangerous",
            message: "TorchScript archive: its code/ runs on torch.jit.load; rejected unless the source's policy allows TorchScript",
            location: path,
          },
    );
  }
  // torch's record lookup ignores ASCII case: two entries that differ only in case are one
  // record to torch, and which of them it reads is up to miniz's binary search.
  const folded = new Map<string, string>();
  for (const m of archive.members) {
    const key = asciiLower(m.path).replace(/\/+$/, "");
    const other = folded.get(key);
    if (other !== undefined && other !== m.path) {
      node.findings.push({
        code: "malformed_container",
        severity: "malformed",
        message: `entries ${JSON.stringify(other.slice(0, 200))} and ${JSON.stringify(m.path.slice(0, 200))} differ only in case (torch looks records up case-insensitively)`,
        location: memberPath(path, m.path),
      });
    } else folded.set(key, m.path);
  }
  const inner = deeper(ctx);
  const refs = new Map<string, StorageRef>();
  const handled = new Set<string>();
  // 1. every pickle by name, case-insensitively (TorchScript's debug_pkl too), with storage reference checks
  for (const m of archive.members) {
    const lower = asciiLower(m.path);
    if (m.isDirectory || !(lower.endsWith(".pkl") || lower.endsWith(".debug_pkl"))) continue;
    handled.add(m.path);
    const p = memberPath(path, m.path);
    node.children.push(
      await withMember(m, p, (source) => {
        const scanned = scanTorchPickle(source, p, inner, false, refs);
        if (layout.torchScript && ctx.policy.allowTorchScript) relaxTorchScriptImports(scanned.node);
        const broken = scanned.node.findings.some((f) => f.severity === "malformed");
        if (!broken && scanned.end !== source.size) {
          // torch reads one pickle per entry; bytes after its STOP are a place to hide a second one.
          scanned.node.findings.push({
            code: "malformed_pickle",
            severity: "malformed",
            message: `${source.size - scanned.end} bytes after the pickle's STOP`,
            location: p,
            offset: scanned.end,
          });
        }
        return Promise.resolve(scanned.node);
      }),
    );
  }
  // 2. referenced storages: exist, right size, CRC verified on open; bytes never parsed
  const byPath = new Map(archive.members.map((m) => [m.path, m]));
  let tensorBytes = 0;
  for (const ref of refs.values()) {
    const dataPath = `${prefix}data/${ref.key}`;
    const member = byPath.get(dataPath);
    if (!member || member.isDirectory) {
      node.findings.push(pidFinding(`storage ${ref.key} has no entry ${dataPath}`, memberPath(path, dataPath)));
      continue;
    }
    handled.add(dataPath);
    const expected = ref.numel * BigInt(ref.elementSize);
    if (BigInt(member.size) !== expected) {
      node.findings.push(
        pidFinding(
          `storage ${ref.key} declares ${expected.toString()} bytes (${ref.numel.toString()} x ${ref.elementSize}) but ${dataPath} holds ${member.size}`,
          memberPath(path, dataPath),
        ),
      );
      continue;
    }
    try {
      const opened = await member.open();
      opened.close();
      tensorBytes += member.size;
    } catch (err) {
      node.findings.push(findingOf(err, memberPath(path, dataPath)));
    }
  }
  // 3. everything else (version, byteorder, code/*.py, unreferenced data) by content
  for (const m of archive.members) {
    if (m.isDirectory || handled.has(m.path)) continue;
    const p = memberPath(path, m.path);
    appendMemberNode(node, await withMember(m, p, (source) => ctx.inspectMember(source, p, inner)), ctx);
  }
  node.details = { ...node.details, top: layout.top, storages: refs.size, tensorBytes };
  return node;
}

// ---- legacy ----------------------------------------------------------------------------------

function legacyFinding(message: string, location: string, offset?: number): Finding {
  const f: Finding = { code: "malformed_container", severity: "malformed", message: `legacy torch: ${message}`, location };
  if (offset !== undefined) f.offset = offset;
  return f;
}

/**
 * The storage keys pickle read on its own, independent of the symbolic machine: torch writes
 * `pickle.dump(sorted(keys))`, a flat list of str. Only the opcodes a pickler emits for that are
 * accepted (PROTO, FRAME, EMPTY_LIST, MARK, BINUNICODE/SHORT_BINUNICODE, the memo puts, APPEND(S),
 * STOP); anything else is not a keys list and rejects the file (fail closed).
 */
export function readLegacyKeys(source: ByteSource, start: number, end: number, maxKeys: number): string[] | string {
  const c = new Cursor(source, { start, end, errorCode: "malformed_container", what: "legacy torch keys" });
  const keys: string[] = [];
  let pending: string[] = [];
  let inMark = false;
  let haveList = false;
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const str = (n: number): void => {
    if (!haveList) throw new Error("string before the list");
    if (n > 4096) throw new Error("storage key longer than 4096 bytes");
    pending.push(utf8.decode(c.bytes(n, "key")));
  };
  try {
    for (;;) {
      const op = c.u8("opcode");
      switch (op) {
        case 0x80: // PROTO
          c.u8("protocol");
          break;
        case 0x95: // FRAME
          c.u64le("frame length");
          break;
        case 0x5d: // EMPTY_LIST
          if (haveList) return "two lists in the keys pickle";
          haveList = true;
          break;
        case 0x28: // MARK
          if (inMark || pending.length > 0) return "nested MARK in the keys pickle";
          inMark = true;
          break;
        case 0x58: // BINUNICODE
          str(c.u32le("length"));
          break;
        case 0x8c: // SHORT_BINUNICODE
          str(c.u8("length"));
          break;
        case 0x71: // BINPUT
          c.u8("memo index");
          break;
        case 0x72: // LONG_BINPUT
          c.u32le("memo index");
          break;
        case 0x94: // MEMOIZE
          break;
        case 0x61: // APPEND
          if (inMark || pending.length !== 1) return "APPEND without exactly one key";
          keys.push(...pending);
          pending = [];
          break;
        case 0x65: // APPENDS
          if (!inMark) return "APPENDS without MARK";
          keys.push(...pending);
          pending = [];
          inMark = false;
          break;
        case 0x2e: // STOP
          if (!haveList || inMark || pending.length > 0) return "keys pickle ends with unappended values";
          if (!c.atEnd) return "keys pickle does not end at its STOP";
          return keys;
        default:
          return `opcode 0x${op.toString(16)} is not part of a list of keys`;
      }
      if (keys.length + pending.length > maxKeys) return `more than ${maxKeys} storage keys`;
    }
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

const LEGACY_PARTS = ["magic number", "protocol version", "sys info", "data", "storage keys"] as const;

/** The keys and value kinds of the sys_info dict _legacy_save writes (protocol_version, little_endian, type_sizes). */
function sysInfoProblem(value: SymbolicValue | undefined): string | undefined {
  if (value?.kind !== "dict" || value.truncated === true) return "the sys info pickle is not a dict";
  const seen = new Set<string>();
  for (const [k, v] of value.entries) {
    if (k.kind !== "str" || seen.has(k.value)) return "the sys info dict has a key that is not a distinct string";
    seen.add(k.value);
    if (k.value === "protocol_version" && v.kind === "int") continue;
    if (k.value === "little_endian" && v.kind === "bool") continue;
    if (
      k.value === "type_sizes" &&
      v.kind === "dict" &&
      v.truncated !== true &&
      v.entries.every(([tk, tv]) => tk.kind === "str" && ["short", "int", "long"].includes(tk.value) && tv.kind === "int")
    )
      continue;
    return `the sys info entry ${JSON.stringify(k.value.slice(0, 64))} is not one torch writes`;
  }
  return seen.size === 3 ? undefined : "the sys info dict lacks protocol_version, little_endian or type_sizes";
}

/** What is wrong with the magic number, protocol version or sys info pickle's value, if anything. */
function legacyHeaderProblem(part: (typeof LEGACY_PARTS)[number], value: SymbolicValue | undefined): string | undefined {
  switch (part) {
    case "magic number":
      return value?.kind === "int" && value.value === TORCH_LEGACY_MAGIC ? undefined : "the first pickle is not torch's magic number";
    case "protocol version":
      return value?.kind === "int" && value.value === TORCH_LEGACY_PROTOCOL ? undefined : "the protocol version pickle is not 1001";
    case "sys info":
      return sysInfoProblem(value);
    default:
      return undefined;
  }
}

/** FormatInspector for a legacy (pre-zip) torch.save file. */
export function inspectLegacyTorch(source: ByteSource, path: string, ctx: FormatContext): Promise<InspectionNode> {
  const node: InspectionNode = { kind: "pytorch-legacy", path, format: "pytorch-legacy", findings: [], children: [] };
  const refs = new Map<string, StorageRef>();
  let pos = 0;
  let keysStart = 0;
  for (const part of LEGACY_PARTS) {
    keysStart = pos;
    const p = `${path}#${part.replace(/ /g, "-")}`;
    const scanned = scanTorchPickle(source, p, ctx, true, refs, pos);
    node.children.push(scanned.node);
    if (scanned.node.findings.some((f) => f.severity === "malformed")) {
      node.findings.push(legacyFinding(`the ${part} pickle could not be read`, path, pos));
      return Promise.resolve(node);
    }
    // _legacy_load checks the magic number and the protocol version as it reads them and raises
    // before the next pickle; sys_info is read and ignored. Their shapes are checked here in the
    // same order, and a wrong one ends the reading as it ends torch's.
    const wrong = legacyHeaderProblem(part, scanned.value);
    if (wrong !== undefined) {
      node.findings.push(legacyFinding(wrong, path, pos));
      return Promise.resolve(node);
    }
    pos = scanned.end;
  }
  const keys = readLegacyKeys(source, keysStart, pos, ctx.containerLimits.maxEntries);
  if (typeof keys === "string") {
    node.findings.push(legacyFinding(`the storage keys pickle is not a plain list of keys: ${keys}`, path, keysStart));
    return Promise.resolve(node);
  }
  const cursor = new Cursor(source, { start: pos, errorCode: "malformed_container", what: `${path}#storages` });
  let total = 0n;
  try {
    for (const keyValue of keys) {
      const ref = refs.get(keyValue);
      if (!ref) {
        node.findings.push(
          pidFinding(`storage key ${JSON.stringify(keyValue.slice(0, 64))} is listed but no persistent id declares it`, path, cursor.position),
        );
        return Promise.resolve(node);
      }
      const at = cursor.position;
      const numel = cursor.u64leBig(`size of storage ${keyValue}`);
      if (numel !== ref.numel) {
        node.findings.push(
          pidFinding(`storage ${keyValue} holds ${numel.toString()} elements in the file, ${ref.numel.toString()} in its persistent id`, path, at),
        );
        return Promise.resolve(node);
      }
      const bytes = numel * BigInt(ref.elementSize);
      if (bytes > BigInt(cursor.remaining)) {
        node.findings.push(legacyFinding(`storage ${keyValue} declares ${bytes.toString()} bytes but ${cursor.remaining} remain`, path, at));
        return Promise.resolve(node);
      }
      cursor.skip(Number(bytes), `storage ${keyValue}`);
      total += bytes;
    }
  } catch (err) {
    node.findings.push(findingOf(err, path));
    return Promise.resolve(node);
  }
  if (!cursor.atEnd) {
    node.findings.push(legacyFinding(`${cursor.remaining} bytes after the last storage`, path, cursor.position));
    // Say what they are: a pickle hidden there is reported with its imports.
    const trailing = new SliceSource(source, cursor.position, cursor.remaining);
    if (pickleLoadWouldRun(trailing, readHead(trailing))) {
      node.children.push(inspectPickleSource(trailing, `${path}#trailing`, { policy: ctx.policy, limits: ctx.pickleLimits }));
    }
  }
  const listed = new Set(keys);
  if (listed.size !== keys.length) node.findings.push(legacyFinding("a storage key is listed twice", path));
  const unlisted = [...refs.keys()].filter((k) => !listed.has(k));
  if (unlisted.length > 0) node.findings.push(pidFinding(`storages ${unlisted.slice(0, 5).join(", ")} are referenced but not in the keys list`, path));
  node.details = { storages: keys.length, storageBytes: total.toString() };
  return Promise.resolve(node);
}

// ---- tar (torch <= 0.1.x) ----------------------------------------------------------------------

/**
 * The members torch.load reads from a tar checkpoint (torch/serialization.py `_legacy_load`,
 * inner `legacy_load`): tar.extract('storages'), tar.extract('tensors'), tar.extractfile('pickle'),
 * each looked up by exact name (TarFile.getmember); sys_info is written but never read.
 */
export const TORCH_TAR_MEMBERS = ["storages", "tensors", "pickle"] as const;

/** A tar that torch.load would read as a checkpoint: it holds any of storages, tensors, pickle. */
export function isTorchTarLayout(members: readonly ArchiveMember[]): boolean {
  return members.some((m) => (TORCH_TAR_MEMBERS as readonly string[]).includes(m.path));
}

function tarFinding(message: string, location: string, offset?: number): Finding {
  const f: Finding = { code: "malformed_container", severity: "malformed", message: `torch tar checkpoint: ${message}`, location };
  if (offset !== undefined) f.offset = offset;
  return f;
}

/** Thrown by the member readers below where torch's own reading would fail or we cannot follow it. */
class TarCheckpointStop extends Error {
  constructor(readonly finding: Finding) {
    super(finding.message);
  }
}

/**
 * One pickle at `start` as pickle.load(f) reads it from the member file; a malformed one stops
 * the member. `pid` judges persistent ids (storages and tensors are read by a plain pickle.load
 * with no persistent_load: any PERSID there raises UnpicklingError in torch).
 */
function tarPickleAt(
  source: ByteSource,
  location: string,
  ctx: FormatContext,
  start: number,
  into: InspectionNode,
  pid?: (id: SymbolicValue) => string | undefined,
): { value: SymbolicValue | undefined; end: number } {
  const analysis = analyzeTorchPickle(source, location, ctx, start, (id) =>
    pid === undefined ? "persistent id in a pickle torch loads without persistent_load" : pid(id),
  );
  const n = analysis.node;
  const notable = n.findings.some((f) => f.severity !== "innocuous") || (n.imports ?? []).some((r) => r.safety !== "innocuous");
  if (notable || into.children.length < MAX_REPORT_PICKLE_NODES_PER_MEMBER) into.children.push(n);
  else into.details = { ...into.details, omittedPickles: Number(into.details?.omittedPickles ?? 0) + 1 };
  if (analysis.node.findings.some((f) => f.severity === "malformed")) {
    throw new TarCheckpointStop(tarFinding(`the pickle at offset ${start} of ${location.split("#")[0] ?? location} could not be read`, location, start));
  }
  return { value: analysis.values[0], end: analysis.end };
}

function countOf(value: SymbolicValue | undefined, what: string, location: string, max: number): number {
  if (value?.kind !== "int" || value.value < 0n || value.value > BigInt(max)) {
    throw new TarCheckpointStop(tarFinding(`the ${what} count ${value ? describeValue(value) : "?"} is not an int from 0 to ${max}`, location));
  }
  return Number(value.value);
}

/** A (key, ...) tuple of `n` fields, or why not. */
function tupleOf(value: SymbolicValue | undefined, n: number): SymbolicValue[] | undefined {
  return value?.kind === "tuple" && value.truncated !== true && value.items.length === n ? value.items : undefined;
}

/**
 * `storages`: pickle(count); per storage pickle((key, location, StorageClass)), then
 * UntypedStorage._new_with_file: an int64 LE element count and count * element_size raw bytes
 * (skipped, never parsed); then pickle(storage views: (view key, root key, offset, numel) list).
 */
function readTarStorages(source: ByteSource, location: string, ctx: FormatContext, node: InspectionNode, storages: Map<bigint, number>): void {
  const max = ctx.containerLimits.maxEntries;
  let at = tarPickleAt(source, `${location}#count`, ctx, 0, node);
  const count = countOf(at.value, "storage", location, max);
  for (let i = 0; i < count; i++) {
    const where = `${location}#storage-${i}`;
    at = tarPickleAt(source, where, ctx, at.end, node);
    const [key, device, type] = tupleOf(at.value, 3) ?? [];
    const elementSize = type?.kind === "global" && type.module === "torch" ? TORCH_STORAGE_ELEMENT_SIZE[type.name] : undefined;
    if (key?.kind !== "int" || device?.kind !== "str" || !/^[A-Za-z0-9_:.-]{1,64}$/.test(device.value) || elementSize === undefined) {
      throw new TarCheckpointStop(
        pidFinding(`storage ${i} is not a (key, location, torch storage class) tuple: ${at.value ? describeValue(at.value) : "?"}`, where, at.end),
      );
    }
    if (storages.has(key.value)) throw new TarCheckpointStop(pidFinding(`storage key ${key.value.toString()} is declared twice`, where, at.end));
    const cursor = new Cursor(source, { start: at.end, errorCode: "malformed_container", what: where });
    const numel = cursor.u64leBig("storage element count");
    const bytes = numel * BigInt(elementSize);
    if (bytes > BigInt(cursor.remaining)) {
      throw new TarCheckpointStop(
        tarFinding(`storage ${key.value.toString()} declares ${bytes.toString()} bytes but ${cursor.remaining} remain`, where, at.end),
      );
    }
    cursor.skip(Number(bytes), "storage bytes");
    storages.set(key.value, elementSize);
    at = { value: undefined, end: cursor.position };
  }
  const viewsAt = `${location}#views`;
  at = tarPickleAt(source, viewsAt, ctx, at.end, node);
  if (at.value?.kind !== "list" || at.value.truncated === true) throw new TarCheckpointStop(tarFinding("the storage views pickle is not a list", viewsAt));
  for (const view of at.value.items) {
    const fields = tupleOf(view, 4);
    if (fields === undefined || !fields.every((f) => f.kind === "int") || fields[1]?.kind !== "int" || !storages.has(fields[1].value)) {
      throw new TarCheckpointStop(tarFinding(`storage view ${describeValue(view)} is not (key, root key, offset, numel) of a declared storage`, viewsAt));
    }
    const target = fields[0];
    if (target?.kind === "int") storages.set(target.value, storages.get(fields[1].value) ?? 1);
  }
  if (at.end !== source.size)
    throw new TarCheckpointStop(tarFinding(`${source.size - at.end} bytes after the storage views pickle (torch never reads them)`, location, at.end));
}

/**
 * `tensors`: pickle(count); per tensor pickle((key, storage key, TensorClass)), then ndim as an
 * int32 LE plus 4 ignored bytes, ndim int64 sizes, ndim int64 strides, an int64 storage offset.
 */
function readTarTensors(
  source: ByteSource,
  location: string,
  ctx: FormatContext,
  node: InspectionNode,
  storages: ReadonlyMap<bigint, number>,
  tensors: Set<bigint>,
): void {
  let at = tarPickleAt(source, `${location}#count`, ctx, 0, node);
  const count = countOf(at.value, "tensor", location, ctx.containerLimits.maxEntries);
  for (let i = 0; i < count; i++) {
    const where = `${location}#tensor-${i}`;
    at = tarPickleAt(source, where, ctx, at.end, node);
    const [key, storage, type] = tupleOf(at.value, 3) ?? [];
    if (key?.kind !== "int" || storage?.kind !== "int" || type?.kind !== "global" || type.module !== "torch" || !type.name.endsWith("Tensor")) {
      throw new TarCheckpointStop(
        pidFinding(`tensor ${i} is not a (key, storage key, torch tensor class) tuple: ${at.value ? describeValue(at.value) : "?"}`, where, at.end),
      );
    }
    if (!storages.has(storage.value))
      throw new TarCheckpointStop(
        pidFinding(`tensor ${i} names storage ${storage.value.toString()}, which the storages member does not declare`, where, at.end),
      );
    if (storages.has(key.value) || tensors.has(key.value))
      throw new TarCheckpointStop(pidFinding(`tensor key ${key.value.toString()} is declared twice`, where, at.end));
    const cursor = new Cursor(source, { start: at.end, errorCode: "malformed_container", what: where });
    const ndim = cursor.i32le("ndim");
    cursor.skip(4, "ndim high bytes");
    // sizes, strides and the offset: 8 * (2 * ndim + 1) bytes that must be in the member
    if (ndim < 0 || 8 * (2 * ndim + 1) > cursor.remaining) throw new TarCheckpointStop(tarFinding(`tensor ${i} declares ${ndim} dimensions`, where, at.end));
    cursor.skip(8 * (2 * ndim + 1), "tensor sizes, strides and offset");
    tensors.add(key.value);
    at = { value: undefined, end: cursor.position };
  }
  if (at.end !== source.size)
    throw new TarCheckpointStop(tarFinding(`${source.size - at.end} bytes after the last tensor (torch never reads them)`, location, at.end));
}

/**
 * Inspect a tar checkpoint exactly as torch.load reads it: `storages`, then `tensors`, then
 * `pickle`, every pickle in each at the offset pickle.load reaches it, raw bytes skipped by
 * their counts (a back-to-back pickle walker would read them as opcodes and could take a later
 * pickle for string data). A structure torch would fail on ends the inspection there with
 * malformed_container; every other member (sys_info, anything else) is inspected by content.
 */
export async function inspectTorchTar(archive: ArchiveContents, path: string, ctx: FormatContext): Promise<InspectionNode> {
  const node = archive.node;
  node.format = "pytorch-tar";
  const inner = deeper(ctx);
  const byPath = new Map(archive.members.map((m) => [m.path, m]));
  const storages = new Map<bigint, number>();
  const tensors = new Set<bigint>();
  const handled = new Set<string>();
  const read = async (
    name: (typeof TORCH_TAR_MEMBERS)[number],
    reader: (source: ByteSource, location: string, child: InspectionNode) => void,
  ): Promise<boolean> => {
    const member = byPath.get(name);
    const location = memberPath(path, name);
    if (member === undefined || member.isDirectory) {
      node.findings.push(tarFinding(`no regular member ${JSON.stringify(name)} (torch.load fails there)`, location));
      return false;
    }
    handled.add(name);
    const child = await withMember(member, location, (source) => {
      const memberNode: InspectionNode = { kind: "pytorch-tar-member", path: location, format: `pytorch-tar-${name}`, findings: [], children: [] };
      try {
        reader(source, location, memberNode);
      } catch (err) {
        memberNode.findings.push(err instanceof TarCheckpointStop ? err.finding : findingOf(err, location));
      }
      return Promise.resolve(memberNode);
    });
    node.children.push(child);
    return !child.findings.some((f) => f.severity === "malformed");
  };
  const ok =
    (await read("storages", (source, location, child) => {
      readTarStorages(source, location, inner, child, storages);
    })) &&
    (await read("tensors", (source, location, child) => {
      readTarTensors(source, location, inner, child, storages, tensors);
    })) &&
    (await read("pickle", (source, location, child) => {
      // persistent_load: a tuple is (container class, source file, source); anything else is
      // deserialized_objects[int(saved_id)], a storage or tensor key.
      const at = tarPickleAt(source, `${location}#pickle`, inner, 0, child, (id) => {
        if (id.kind === "tuple" && id.truncated !== true && id.items.length === 3 && id.items[0]?.kind === "global") return undefined;
        if (id.kind === "str" && /^[0-9]{1,20}$/.test(id.value) && (storages.has(BigInt(id.value)) || tensors.has(BigInt(id.value)))) return undefined;
        return `persistent id ${describeValue(id)} is neither a container class tuple nor a declared storage or tensor key`;
      });
      if (at.end !== source.size) throw new TarCheckpointStop(tarFinding(`${source.size - at.end} bytes after the object pickle's STOP`, location, at.end));
    }));
  node.details = { ...node.details, storages: storages.size, tensors: tensors.size, complete: ok };
  for (const m of archive.members) {
    if (m.isDirectory || handled.has(m.path)) continue;
    const p = memberPath(path, m.path);
    appendMemberNode(node, await withMember(m, p, (source) => ctx.inspectMember(source, p, inner)), ctx);
  }
  return node;
}
