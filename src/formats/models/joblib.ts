import type { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import { GatewayError } from "../../errors";
import type { Finding, InspectionNode } from "../../inspect/report";
import type { PickleLimits } from "../../limits";
import { MAX_JOBLIB_ARRAY_NODES, MAX_JOBLIB_ARRAYS, MAX_JOBLIB_POLYGLOT_SCAN_OPS } from "../../limits";
import { analyzePickle, type BuildEvent } from "../../pickle/analyzer";
import { PickleReader } from "../../pickle/pickleReader";
import { checkNumpyDtype } from "../../pickle/numpyDtype";
import { OP, opcodeInfo, opcodeName } from "../../pickle/opcodes";
import type { PicklePolicy } from "../../pickle/policy";
import { describeValue, type SymbolicValue } from "../../pickle/values";

/**
 * joblib dumps, read exactly as joblib.load reads them (joblib/numpy_pickle.py, 1.x).
 *
 * joblib's NumpyPickler replaces every ndarray by a NumpyArrayWrapper object and writes the
 * array's raw bytes into the file right after the wrapper's BUILD opcode. NumpyUnpickler.
 * load_build then calls NumpyArrayWrapper.read_array, which reads from the file handle:
 * - object dtype (`dtype.hasobject`): one nested `pickle.load` from the same file;
 * - otherwise, when numpy_array_alignment_bytes is not None (joblib >= 1.2 on seekable files):
 *   one padding-length byte p, then p padding bytes; then prod(shape) * itemsize raw bytes.
 * and the unpickler goes on with the next opcode after them. The wrapper's fields come from the
 * BUILD state dict only (NEWOBJ does not run __init__).
 *
 * Everything that decides how many bytes are read is taken from the symbolic values the pickle
 * machine built; anything we cannot size the one way joblib sizes it is rejected, never guessed.
 *
 * Loader disagreement: the same file loaded with plain pickle.load (or any loader without
 * joblib's BUILD hook) reads the bytes joblib skips as opcodes. `checkSkippedRegion` walks those
 * bytes as pickle.load would and flags (polyglot, dangerous) any region whose opcodes could
 * import, call or mutate before the walk hits an invalid opcode or a STOP; nested pickles of
 * object arrays must not use MEMOIZE, whose memo index depends on which loader reads them.
 */

/** The wrapper classes whose BUILD makes NumpyUnpickler read inline array bytes. */
const WRAPPER_CLASSES: ReadonlySet<string> = new Set([
  "joblib.numpy_pickle.NumpyArrayWrapper",
  // scikit-learn < 0.23 vendored joblib; its NumpyUnpickler reads the same layout.
  "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
]);

const WRAPPER_FIELDS: ReadonlySet<string> = new Set(["subclass", "shape", "order", "dtype", "allow_mmap", "numpy_array_alignment_bytes"]);

export interface DtypeInfo {
  /** The type string as pickled ("f8", "U10", "V24"), with the byte order of the state. */
  descr: string;
  itemsize: number;
  hasObject: boolean;
}

export interface ArrayWrapperInfo {
  subclass: string;
  shape: bigint[];
  order: "C" | "F";
  dtype: DtypeInfo;
  allowMmap: boolean;
  /** undefined when the field is absent (joblib <= 1.1) or None: no padding byte. */
  alignment: number | undefined;
}

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw new GatewayError("malformed_container", `joblib array wrapper: ${message}`, details);
}

function unsupported(message: string): never {
  throw new GatewayError("unsupported_format", `joblib array wrapper: ${message}`);
}

const RECONSTRUCTORS: ReadonlySet<string> = new Set(["copyreg._reconstructor", "copy_reg._reconstructor"]);
const OBJECT_CLASSES: ReadonlySet<string> = new Set(["builtins.object", "__builtin__.object"]);

/**
 * The callables whose BUILD the joblib hook acts on (the wrapper classes, and copyreg's
 * reconstructor that protocols 0-1 use to make them): analyzePickle's `onBuildFor`. Streams with
 * no such BUILD can then run on the value-light scanner; the others go to the full machine.
 */
export function isJoblibHookedCallable(module: string, name: string): boolean {
  const dotted = `${module}.${name}`;
  return WRAPPER_CLASSES.has(dotted) || RECONSTRUCTORS.has(dotted);
}

function isWrapperClass(v: SymbolicValue | undefined): boolean {
  return v?.kind === "global" && WRAPPER_CLASSES.has(`${v.module}.${v.name}`);
}

/**
 * Protocols 0-1 write the wrapper as `copyreg._reconstructor(NumpyArrayWrapper, object, None)`,
 * which is `object.__new__(cls)`: like NEWOBJ, no __init__, attributes from BUILD only.
 */
function isReconstructedWrapper(v: SymbolicValue): boolean {
  if (v.kind !== "object" || v.callable.kind !== "global" || !RECONSTRUCTORS.has(`${v.callable.module}.${v.callable.name}`)) return false;
  const args = v.args;
  if (args.kind !== "tuple" || args.items.length !== 3 || isTruncated(args)) return false;
  const [cls, base, state] = args.items;
  return isWrapperClass(cls) && base?.kind === "global" && OBJECT_CLASSES.has(`${base.module}.${base.name}`) && state?.kind === "none";
}

export function isArrayWrapper(v: SymbolicValue): boolean {
  return (v.kind === "object" && isWrapperClass(v.callable)) || isReconstructedWrapper(v);
}

function isTruncated(v: SymbolicValue): boolean {
  return "truncated" in v && v.truncated === true;
}

function str(v: SymbolicValue | undefined, what: string): string {
  if (v?.kind !== "str" || isTruncated(v)) bad(`${what} is ${v === undefined ? "missing" : describeValue(v)}, not a string`);
  return v.value;
}

function int(v: SymbolicValue | undefined, what: string): bigint {
  if (v?.kind !== "int") bad(`${what} is ${v === undefined ? "missing" : describeValue(v)}, not an int`);
  return v.value;
}

function bool(v: SymbolicValue | undefined, what: string): boolean {
  if (v?.kind === "bool") return v.value;
  // Protocols 0/1 spell False/True as INT 00/01; numpy and joblib accept any truthy value, we only 0/1.
  if (v?.kind === "int" && (v.value === 0n || v.value === 1n)) return v.value === 1n;
  bad(`${what} is ${v === undefined ? "missing" : describeValue(v)}, not a bool`);
}

function items(v: SymbolicValue | undefined, kind: "tuple", what: string): SymbolicValue[] {
  if (v?.kind !== kind || isTruncated(v)) bad(`${what} is ${v === undefined ? "missing" : describeValue(v)}, not a complete ${kind}`);
  return v.items;
}

/** Entries of a dict with string keys, rejecting duplicates (Python keeps the last; we refuse). */
function stringDict(v: SymbolicValue | undefined, what: string): Map<string, SymbolicValue> {
  if (v?.kind !== "dict" || isTruncated(v)) bad(`${what} is ${v === undefined ? "missing" : describeValue(v)}, not a complete dict`);
  const out = new Map<string, SymbolicValue>();
  for (const [k, value] of v.entries) {
    const key = str(k, `a key of ${what}`);
    if (out.has(key)) bad(`${what} sets ${JSON.stringify(key)} twice`);
    out.set(key, value);
  }
  return out;
}

/**
 * Size a pickled numpy dtype with the one dtype check (src/pickle/numpyDtype.ts): the state must
 * be exactly what numpy writes for its type string, so `hasobject` (numpy believes the state's
 * flags) and the item size are what every reader of the file sees. joblib-specific limits on top:
 * the dtype must be numpy.dtype(...) itself, and not zero-size (read_array cannot read it).
 */
export function dtypeInfo(v: SymbolicValue): DtypeInfo {
  if (v.kind !== "object" || v.callable.kind !== "global" || v.callable.module !== "numpy" || v.callable.name !== "dtype") {
    unsupported(`dtype ${describeValue(v)} is not numpy.dtype(...)`);
  }
  const dtype = checkNumpyDtype(v);
  if (dtype.itemsize === 0) unsupported(`zero-size dtype ${dtype.typeString} (joblib cannot read it)`);
  return { descr: `${dtype.byteOrder === "|" ? "" : dtype.byteOrder}${dtype.typeString}`, itemsize: dtype.itemsize, hasObject: dtype.hasObject };
}

/** The wrapper's fields, from its BUILD state only: exactly the attributes read_array uses. */
export function readArrayWrapper(target: SymbolicValue): ArrayWrapperInfo {
  if (target.kind !== "object") bad("not an object");
  // NEWOBJ with () does not run __init__; a wrapper made by a call could set attributes from
  // its arguments that the state does not show.
  const args = target.args;
  if (!isReconstructedWrapper(target) && (args.kind !== "tuple" || args.items.length !== 0 || isTruncated(args))) {
    bad(`wrapper created with arguments ${describeValue(args)}: joblib writes NEWOBJ with () or copyreg._reconstructor(cls, object, None)`);
  }
  const state = stringDict(target.state, "wrapper state");
  for (const key of state.keys()) {
    if (!WRAPPER_FIELDS.has(key)) bad(`unexpected wrapper field ${JSON.stringify(key)}`);
  }
  const subclass = state.get("subclass");
  if (subclass?.kind !== "global") bad(`subclass is ${subclass === undefined ? "missing" : describeValue(subclass)}, not a class`);
  const shape = items(state.get("shape"), "tuple", "shape").map((d, i) => {
    const dim = int(d, `shape[${i}]`);
    if (dim < 0n) bad(`negative dimension ${dim.toString()}`);
    return dim;
  });
  const order = str(state.get("order"), "order");
  if (order !== "C" && order !== "F") bad(`order ${JSON.stringify(order)} is neither "C" nor "F"`);
  const dtypeValue = state.get("dtype");
  if (dtypeValue === undefined) bad("dtype is missing");
  const dtype = dtypeInfo(dtypeValue);
  const allowMmap = state.has("allow_mmap") ? bool(state.get("allow_mmap"), "allow_mmap") : false;
  if (allowMmap && dtype.hasObject) bad("allow_mmap on an object array");
  let alignment: number | undefined;
  const a = state.get("numpy_array_alignment_bytes");
  if (a !== undefined && a.kind !== "none") {
    const value = int(a, "numpy_array_alignment_bytes");
    // The padding length is written as one byte and is at most the alignment.
    if (value < 1n || value > 255n) bad(`numpy_array_alignment_bytes ${value.toString()} outside 1..255`);
    alignment = Number(value);
  }
  return { subclass: `${subclass.module}.${subclass.name}`, shape, order, dtype, allowMmap, alignment };
}

/** Opcodes whose effect under pickle.load is more than pushing data or memo bookkeeping. */
const EFFECT_OPCODES: ReadonlySet<number> = new Set<number>([
  OP.GLOBAL,
  OP.STACK_GLOBAL,
  OP.INST,
  OP.OBJ,
  OP.REDUCE,
  OP.NEWOBJ,
  OP.NEWOBJ_EX,
  OP.BUILD,
  OP.EXT1,
  OP.EXT2,
  OP.EXT4,
  OP.PERSID,
  OP.BINPERSID,
  OP.APPEND,
  OP.APPENDS,
  OP.SETITEM,
  OP.SETITEMS,
  OP.ADDITEMS,
]);

/**
 * Walk [start, end) as pickle.load would if it did not know joblib: opcode after opcode until
 * one is invalid (pickle.load raises there) or is STOP (it returns). Returns a reason when the
 * walk reaches an opcode with an effect, or runs off the end of the region into the bytes after
 * it (it would go on in a different state than our analysis), or is too long to follow.
 */
export function checkSkippedRegion(source: ByteSource, start: number, end: number, reuse?: PickleReader): string | undefined {
  if (start >= end) return undefined;
  // Fast path, the common case (joblib >= 1.2's padding-length byte, most float data): the first
  // byte is no opcode, pickle.load raises right there.
  const first = new Uint8Array(1);
  source.readAt(first, start);
  if (opcodeInfo(first[0] as number) === undefined) return undefined;
  // The walk may read past the region (an argument that runs on): the reader ends with the source.
  const reader = reuse ?? new PickleReader(source, start, source.size, 64);
  reader.seek(start);
  reader.frameEnd = -1;
  for (let ops = 0; ; ops++) {
    if (reader.pos >= end) return `its bytes parse as ${ops.toString()} pickle opcodes up to the end of the region, and pickle.load would go on past it`;
    if (ops >= MAX_JOBLIB_POLYGLOT_SCAN_OPS) return `its bytes parse as more than ${MAX_JOBLIB_POLYGLOT_SCAN_OPS.toString()} pickle opcodes`;
    let op: number;
    try {
      op = reader.next();
    } catch {
      return undefined;
    }
    if (op === OP.STOP) return reader.pos <= end ? undefined : "a STOP opcode crosses the end of the region";
    if (EFFECT_OPCODES.has(op)) return `pickle.load would run ${opcodeName(op)} at offset ${reader.offset.toString()}`;
  }
}

/** Opcodes of [start, end) when it is one well-formed pickle (for the MEMOIZE check). */
function usesMemoize(source: ByteSource, start: number, end: number): boolean {
  const reader = new PickleReader(source, start, end, 64);
  while (reader.pos < end) {
    let op: number;
    try {
      op = reader.next();
    } catch {
      return false;
    }
    if (op === OP.MEMOIZE) return true;
    if (op === OP.STOP) return false;
  }
  return false;
}

export interface JoblibArrayRecord {
  index: number;
  /** Offset just after the wrapper's BUILD. */
  offset: number;
  dtype: string;
  shape: string[];
  order: "C" | "F";
  subclass: string;
  /** Padding bytes joblib skips (the length byte included); 0 without alignment. */
  paddingBytes: number;
  /** Raw array bytes skipped, or the nested pickle's length for object arrays. */
  dataBytes: number;
  objectArray: boolean;
}

export interface JoblibReader {
  onBuild: (event: BuildEvent, cursor: Cursor) => void;
  arrays: JoblibArrayRecord[];
  /** One node per array (kind "array"), nested pickles as their children; raw arrays past MAX_JOBLIB_ARRAY_NODES are only counted. */
  nodes: InspectionNode[];
  /** Raw arrays read but not given a node. */
  unlisted: { arrays: number };
  /** Loader-disagreement findings (polyglot). */
  findings: Finding[];
}

/**
 * The onBuild hook that makes analyzePickle read a joblib dump as NumpyUnpickler does: after a
 * wrapper's BUILD, skip exactly the bytes read_array reads (or analyze the nested pickle of an
 * object array) and leave the cursor where joblib's unpickler goes on.
 */
export function createJoblibReader(options: {
  policy: PicklePolicy;
  limits?: Partial<PickleLimits>;
  location: string;
  maxArrays?: number;
  maxArrayNodes?: number;
}): JoblibReader {
  const arrays: JoblibArrayRecord[] = [];
  const nodes: InspectionNode[] = [];
  const findings: Finding[] = [];
  const unlisted = { arrays: 0 };
  let listedRaw = 0;
  const maxArrays = options.maxArrays ?? MAX_JOBLIB_ARRAYS;
  const maxArrayNodes = options.maxArrayNodes ?? MAX_JOBLIB_ARRAY_NODES;
  const built = new WeakSet();
  // One reader for every region walk of this file (a reader holds a window of up to 1 MiB).
  let walker: PickleReader | undefined;

  const onBuild = (event: BuildEvent, cursor: Cursor): void => {
    if (!isArrayWrapper(event.target)) return;
    // A second BUILD on the same wrapper (fetched from the memo) merges its state into the
    // attributes in Python, while the machine keeps the last state only: the two could size the
    // array differently. joblib never writes it.
    if (built.has(event.target)) bad(`the same array wrapper is built twice (offset ${event.offset.toString()})`, { offset: event.offset });
    built.add(event.target);
    if (arrays.length >= maxArrays) {
      throw new GatewayError(
        "limit_exceeded",
        `more than ${maxArrays.toString()} joblib arrays in one file (MAX_JOBLIB_ARRAYS) at offset ${event.offset.toString()}`,
        { offset: event.offset },
      );
    }
    const info = readArrayWrapper(event.target);
    const index = arrays.length;
    const location = `${options.location}#array[${index.toString()}]`;
    const start = cursor.position;
    const record: JoblibArrayRecord = {
      index,
      offset: start,
      dtype: info.dtype.descr,
      shape: info.shape.map((d) => d.toString()),
      order: info.order,
      subclass: info.subclass,
      paddingBytes: 0,
      dataBytes: 0,
      objectArray: info.dtype.hasObject,
    };
    const node: InspectionNode = { kind: "array", path: location, format: "joblib-array", findings: [], details: {}, children: [] };
    arrays.push(record);
    // Object arrays always get a node: it carries their nested pickle's findings and imports.
    if (info.dtype.hasObject) nodes.push(node);
    else if (listedRaw < maxArrayNodes) {
      nodes.push(node);
      listedRaw++;
    } else unlisted.arrays++;

    if (info.dtype.hasObject) {
      // read_array: `pickle.load(unpickler.file_handle)`, a plain unpickler (no joblib hook).
      const nested = analyzePickle(cursor, { policy: options.policy, location, single: true, ...(options.limits ? { limits: options.limits } : {}) });
      node.children.push(nested.node);
      record.dataBytes = nested.end - start;
      node.details = { ...record };
      if (nested.node.findings.some((f) => f.severity === "malformed")) {
        throw new GatewayError(
          "malformed_pickle",
          `the nested pickle of object array ${index.toString()} at offset ${start.toString()} is malformed: joblib's reader cannot be followed past it`,
          { offset: start },
        );
      }
      if (usesMemoize(cursor.source, start, nested.end)) {
        findings.push({
          code: "polyglot",
          severity: "dangerous",
          message: `the nested pickle of object array ${index.toString()} uses MEMOIZE: its memo indices depend on whether joblib.load or pickle.load reads it (joblib writes it with protocol 2)`,
          location,
          offset: start,
        });
      }
      cursor.seek(nested.end);
      return;
    }

    if (info.alignment !== undefined) {
      // write_array: padding = align - ((pos + 1) % align), one length byte, then 0xff bytes.
      const expected = info.alignment - ((start + 1) % info.alignment);
      const p = cursor.u8("joblib padding length");
      if (p !== expected)
        bad(`padding length ${p.toString()} at offset ${start.toString()}, joblib writes ${expected.toString()} for alignment ${info.alignment.toString()}`, {
          offset: start,
        });
      const padding = cursor.bytes(p, "joblib padding");
      if (padding.some((b) => b !== 0xff)) bad(`padding at offset ${(start + 1).toString()} is not 0xff bytes`, { offset: start + 1 });
      record.paddingBytes = 1 + p;
    }
    const count = info.shape.reduce((a, b) => a * b, 1n);
    const bytes = count * BigInt(info.dtype.itemsize);
    if (bytes > BigInt(cursor.remaining)) {
      bad(
        `array ${index.toString()} of shape (${record.shape.join(", ")}) and dtype ${record.dtype} needs ${bytes.toString()} bytes at offset ${cursor.position.toString()}, ${cursor.remaining.toString()} remain`,
        {
          offset: cursor.position,
        },
      );
    }
    record.dataBytes = Number(bytes);
    cursor.skip(record.dataBytes, "joblib array data");
    node.details = { ...record };
    walker ??= new PickleReader(cursor.source, 0, cursor.source.size, 64);
    const reason = checkSkippedRegion(cursor.source, start, cursor.position, walker);
    if (reason !== undefined) {
      findings.push({
        code: "polyglot",
        severity: "dangerous",
        message: `array ${index.toString()}: joblib reads bytes ${start.toString()}..${cursor.position.toString()} as raw data, but ${reason}`,
        location,
        offset: start,
      });
    }
  };

  return { onBuild, arrays, nodes, findings, unlisted };
}
