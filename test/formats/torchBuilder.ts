/**
 * Byte builders for torch checkpoints: a tiny pickle op writer, torch's data.pkl with storage
 * persistent ids, and the legacy (pre-zip) five-pickle layout with its raw storages.
 */

const utf8 = new TextEncoder();

export type Ops = number[];

export const op = {
  proto: (n: number): Ops => [0x80, n],
  global: (module: string, name: string): Ops => [0x63, ...utf8.encode(`${module}\n${name}\n`)],
  str: (s: string): Ops => {
    const b = utf8.encode(s);
    return [0x58, b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b];
  },
  int: (n: number): Ops => [0x4a, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff],
  long1: (n: bigint): Ops => {
    const bytes: number[] = [];
    let v = n;
    while (v > 0n) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    }
    if ((bytes[bytes.length - 1] ?? 0) & 0x80) bytes.push(0);
    return [0x8a, bytes.length, ...bytes];
  },
  mark: [0x28],
  tuple: [0x74],
  tuple1: [0x85],
  emptyTuple: [0x29],
  emptyList: [0x5d],
  emptyDict: [0x7d],
  appends: [0x65],
  setitems: [0x75],
  reduce: [0x52],
  binpersid: [0x51],
  none: [0x4e],
  newfalse: [0x89],
  stop: [0x2e],
};

export interface TensorSpec {
  name: string;
  storageType?: string;
  key: string;
  numel: number;
  location?: string;
  /** Replace the whole persistent id tuple with these ops (malformed ids). */
  rawPid?: Ops;
}

function pid(t: TensorSpec, legacy: boolean): Ops {
  if (t.rawPid) return t.rawPid;
  return [
    ...op.mark,
    ...op.str("storage"),
    ...op.global("torch", t.storageType ?? "FloatStorage"),
    ...op.str(t.key),
    ...op.str(t.location ?? "cpu"),
    ...op.int(t.numel),
    ...(legacy ? op.none : []),
    ...op.tuple,
  ];
}

/** torch.save's data.pkl for a state_dict of 1-D tensors (OrderedDict of _rebuild_tensor_v2 calls). */
export function stateDictPickle(tensors: TensorSpec[], legacy = false, extra: Ops = []): Uint8Array {
  const ops: Ops = [...op.proto(2), ...op.global("collections", "OrderedDict"), ...op.emptyTuple, ...op.reduce, ...op.mark];
  for (const t of tensors) {
    ops.push(
      ...op.str(t.name),
      ...op.global("torch._utils", "_rebuild_tensor_v2"),
      ...op.mark,
      ...pid(t, legacy),
      ...op.binpersid,
      ...op.int(0),
      ...op.int(t.numel),
      ...op.tuple1,
      ...op.int(1),
      ...op.tuple1,
      ...op.newfalse,
      ...op.global("collections", "OrderedDict"),
      ...op.emptyTuple,
      ...op.reduce,
      ...op.tuple,
      ...op.reduce,
    );
  }
  ops.push(...op.setitems, ...extra, ...op.stop);
  return Uint8Array.from(ops);
}

/** A pickle calling os.system: the payload of the attack fixtures. */
export function osSystemPickle(): Uint8Array {
  return Uint8Array.from([...op.proto(2), ...op.global("os", "system"), ...op.str("echo hi"), ...op.tuple1, ...op.reduce, ...op.stop]);
}

export function listPickle(items: string[]): Uint8Array {
  return Uint8Array.from([...op.proto(2), ...op.emptyList, ...op.mark, ...items.flatMap((s) => op.str(s)), ...op.appends, ...op.stop]);
}

export interface LegacyOptions {
  tensors: TensorSpec[];
  /** Keys in the keys pickle (default: every tensor's key). */
  keys?: string[];
  /** Element counts written before each storage (default: each tensor's numel). */
  writtenNumel?: number[];
  trailing?: Uint8Array;
  magic?: bigint;
}

/** A legacy torch.save file: magic, protocol, sys_info, data, keys pickles, then the storages. */
export function buildLegacyTorch(o: LegacyOptions): Uint8Array {
  const parts: Uint8Array[] = [
    Uint8Array.from([...op.proto(2), ...op.long1(o.magic ?? 0x1950a86a20f9469cfc6cn), ...op.stop]),
    Uint8Array.from([...op.proto(2), ...op.int(1001), ...op.stop]),
    // sys_info as _legacy_save writes it: protocol_version, little_endian, type_sizes
    Uint8Array.from([
      ...op.proto(2),
      ...op.emptyDict,
      ...op.mark,
      ...op.str("protocol_version"),
      ...op.int(1001),
      ...op.str("little_endian"),
      0x88,
      ...op.str("type_sizes"),
      ...op.emptyDict,
      ...op.mark,
      ...op.str("short"),
      ...op.int(2),
      ...op.str("int"),
      ...op.int(4),
      ...op.str("long"),
      ...op.int(8),
      ...op.setitems,
      ...op.setitems,
      ...op.stop,
    ]),
    stateDictPickle(o.tensors, true),
  ];
  const keys = o.keys ?? o.tensors.map((t) => t.key);
  parts.push(listPickle(keys));
  keys.forEach((key, i) => {
    const t = o.tensors.find((x) => x.key === key);
    const numel = o.writtenNumel?.[i] ?? t?.numel ?? 0;
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(BigInt(numel));
    parts.push(header, new Uint8Array(numel * 4).fill(1));
  });
  if (o.trailing) parts.push(o.trailing);
  return Buffer.concat(parts);
}
