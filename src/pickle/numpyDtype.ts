import { GatewayError } from "../errors";
import { MAX_NUMPY_DTYPE_DEPTH } from "../limits";
import {
  NUMPY_ALIGNED_STRUCT,
  NUMPY_DATETIME_UNITS,
  NUMPY_FIXED_DTYPES,
  NUMPY_FLEXIBLE_DTYPES,
  NUMPY_FROM_FIELDS,
  NUMPY_STRUCT_BASE_FLAGS,
} from "./numpyDtypeTable";
import { describeValue, type DictValue, type ObjectValue, type SymbolicValue } from "./values";

/**
 * The one check of a pickled numpy dtype, used wherever a pickle is analyzed (the analyzer runs it
 * on every BUILD of a dtype; joblib sizes its arrays with it).
 *
 * numpy pickles a dtype as `numpy.dtype(<type string>, False, True)` and a BUILD whose state is
 * `(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])`
 * (descriptor.c, arraydescr_reduce). arraydescr_setstate takes that state as written: `flags`
 * verbatim for versions 3 and 4 (so NPY_ITEM_HASOBJECT / NPY_LIST_PICKLE are what the file says),
 * `elsize` and `alignment` for flexible types, `names` and `fields` as given, without checking
 * them against the type or each other. An `O8` dtype whose state drops the object flags makes
 * ndarray.__setstate__, multiarray.scalar and _frombuffer copy file bytes into object slots:
 * pointers chosen by the file. So the state must be exactly the one numpy writes for its type
 * string (src/pickle/numpyDtypeTable.ts, generated from the real numpy), and for structured and
 * subarray dtypes exactly what numpy derives from their members; anything else is `unsafe_dtype`.
 */

/** What a checked dtype is, as numpy would see it after its BUILD. */
export interface NumpyDtype {
  /** The type string of the numpy.dtype(...) call ("f8", "O8", "U10", "V24"). */
  typeString: string;
  /** The state's byte order, or "|" when the dtype has no state. */
  byteOrder: string;
  itemsize: number;
  /** dtype.alignment. */
  alignment: number;
  /** The flags byte (unsigned). */
  flags: number;
  /** dtype.hasobject: NPY_ITEM_HASOBJECT. */
  hasObject: boolean;
}

/** numpy's NPY_ITEM_HASOBJECT flag bit (dtype.hasobject reads it). */
const NPY_ITEM_HASOBJECT = 0x01;
/** numpy stores elsize in a C int. */
const MAX_ELSIZE = 0x7fffffff;

/** Whether a global names numpy's dtype class, an alias of it, or one of its subclasses (numpy.dtypes, numpy >= 1.25). */
export function isNumpyDtypeClass(module: string, name: string): boolean {
  // Any module's `dtype` (or dotted `np.dtype`) may be numpy's class re-exported (find_class
  // resolves `module.name` by getattr): treated as the dtype class, fail closed.
  if (name === "dtype" || name.endsWith(".dtype")) return true;
  if (module !== "numpy" && !module.startsWith("numpy.")) return false;
  return module === "numpy.dtypes" || name.endsWith("DType");
}

const RECONSTRUCTORS: ReadonlySet<string> = new Set(["copyreg._reconstructor", "copy_reg._reconstructor"]);

/** Whether the callables that make an object can make a dtype whose state a BUILD then sets. */
export function isDtypeMakingCallable(module: string, name: string): boolean {
  return isNumpyDtypeClass(module, name) || RECONSTRUCTORS.has(`${module}.${name}`);
}

function isDtypeClassValue(v: SymbolicValue | undefined): boolean {
  return v?.kind === "global" && isNumpyDtypeClass(v.module, v.name);
}

/**
 * Whether BUILD on this object runs numpy.dtype.__setstate__: an object made by calling a dtype
 * class, or by copyreg._reconstructor(cls, base, state) with a dtype class as cls or base
 * (`base.__new__(cls, state)` makes a dtype that numpy then lets BUILD set).
 */
export function isNumpyDtypeObject(v: SymbolicValue): v is ObjectValue {
  if (v.kind !== "object" || v.callable.kind !== "global") return false;
  if (isNumpyDtypeClass(v.callable.module, v.callable.name)) return true;
  if (!RECONSTRUCTORS.has(`${v.callable.module}.${v.callable.name}`)) return false;
  const args = v.args;
  // Arguments the machine could not keep: cannot be shown not to name a dtype class.
  if (args.kind !== "tuple" || args.truncated === true) return true;
  return isDtypeClassValue(args.items[0]) || isDtypeClassValue(args.items[1]);
}

/** The fields dict of a dtype's BUILD state, when it has one (numpy keeps it by reference: the analyzer freezes it). */
export function dtypeFieldsDict(v: ObjectValue): DictValue | undefined {
  const state = v.state;
  const fields = state?.kind === "tuple" ? state.items[4] : undefined;
  return fields?.kind === "dict" ? fields : undefined;
}

function unsafe(what: string, message: string): never {
  throw new GatewayError("unsafe_dtype", `${what}: ${message}`);
}

function isTruncated(v: SymbolicValue): boolean {
  return "truncated" in v && v.truncated === true;
}

function show(v: SymbolicValue | undefined): string {
  return v === undefined ? "missing" : describeValue(v);
}

function intOf(v: SymbolicValue | undefined): bigint | undefined {
  return v?.kind === "int" ? v.value : undefined;
}

/** Python truth of the align/copy arguments as numpy writes them: False/True, or INT 00/01 under protocols 0-1. */
function boolOf(v: SymbolicValue | undefined): boolean | undefined {
  if (v?.kind === "bool") return v.value;
  if (v?.kind === "int" && (v.value === 0n || v.value === 1n)) return v.value === 1n;
  return undefined;
}

/** numpy writes the flags char as a C int: bytes >= 0x80 as negative numbers. */
function signedFlags(flags: number): bigint {
  return BigInt(flags >= 0x80 ? flags - 0x100 : flags);
}

/** The parsed type string: a fixed type, or a flexible kind with its unit count. */
type TypeString = { kind: "fixed"; typeString: string } | { kind: "flexible"; typeString: string; flexKind: "S" | "U" | "V"; count: number };

function parseTypeString(typeString: string, what: string): TypeString {
  if (NUMPY_FIXED_DTYPES[typeString] !== undefined) return { kind: "fixed", typeString };
  const m = /^([SUV])(\d{1,10})$/.exec(typeString);
  if (m === null) unsafe(what, `type string ${JSON.stringify(typeString)} is not one numpy writes`);
  const count = Number(m[2]);
  const row = NUMPY_FLEXIBLE_DTYPES[m[1] as string];
  if (row === undefined || count * row.unit > MAX_ELSIZE) unsafe(what, `type string ${JSON.stringify(typeString)} is not one numpy writes`);
  return { kind: "flexible", typeString, flexKind: m[1] as "S" | "U" | "V", count };
}

const CACHE = new WeakMap<object, { state: SymbolicValue | undefined; dtype: NumpyDtype }>();

/**
 * Check one dtype value and describe it. Throws GatewayError `unsafe_dtype` naming the field that
 * differs from what numpy writes. A dtype with no state (no BUILD yet) is what numpy makes from
 * its arguments. Memo-shared dtypes are checked once per state (fields referring to dtypes with
 * many fields would otherwise cost exponential time).
 */
export function checkNumpyDtype(v: SymbolicValue, depth = 0): NumpyDtype {
  if (depth > MAX_NUMPY_DTYPE_DEPTH) unsafe("numpy.dtype", `dtypes nested deeper than ${MAX_NUMPY_DTYPE_DEPTH.toString()} levels (MAX_NUMPY_DTYPE_DEPTH)`);
  if (v.kind !== "object") unsafe("numpy.dtype", `${show(v)} is not a numpy.dtype(...) object`);
  const cached = CACHE.get(v);
  if (cached !== undefined && cached.state === v.state) return cached.dtype;
  const dtype = computeDtype(v, depth);
  CACHE.set(v, { state: v.state, dtype });
  return dtype;
}

function computeDtype(v: ObjectValue, depth: number): NumpyDtype {
  const callable = v.callable;
  if (callable.kind !== "global" || callable.module !== "numpy" || callable.name !== "dtype") {
    unsafe("numpy.dtype", `made by ${show(callable)}: numpy pickles every dtype as numpy.dtype(<type string>, False, True)`);
  }
  const args = v.args;
  if (args.kind !== "tuple" || isTruncated(args) || args.items.length !== 3)
    unsafe("numpy.dtype", `arguments ${show(args)}: numpy writes (<type string>, False, True)`);
  const [ts, align, copy] = args.items;
  // A void dtype of a scalar type other than numpy.void (numpy.record: recarrays) is written with
  // the class instead of a type string; its size is the state's elsize (arraydescr_reduce).
  const isRecord = ts?.kind === "global" && ts.module === "numpy" && ts.name === "record";
  if (!isRecord && (ts?.kind !== "str" || ts.truncated === true)) unsafe("numpy.dtype", `type string ${show(ts)} is not a string`);
  const typeName = ts.kind === "str" ? ts.value : "numpy.record";
  const what = `numpy.dtype(${isRecord ? typeName : JSON.stringify(typeName)})`;
  if (boolOf(align) !== false) unsafe(what, `align argument ${show(align)}: numpy writes False (alignment is in the state)`);
  // copy=False returns numpy's shared builtin dtype; numpy writes True (a private copy BUILD may set).
  if (boolOf(copy) !== true) unsafe(what, `copy argument ${show(copy)}: numpy writes True`);
  const state = v.state;
  const type: TypeString = isRecord
    ? { kind: "flexible", typeString: typeName, flexKind: "V", count: recordSize(state, what) }
    : parseTypeString(typeName, what);
  if (state === undefined) return defaultDtype(type);
  if (state.kind !== "tuple" || isTruncated(state)) unsafe(what, `state ${show(state)} is not a complete tuple`);
  const s = state.items;
  if (s.length !== 8 && s.length !== 9) unsafe(what, `state has ${s.length.toString()} items: numpy writes 8 (version 3) or 9 (version 4, with metadata)`);
  const version = intOf(s[0]);
  const wantVersion = s.length === 9 ? 4n : 3n;
  if (version !== wantVersion) unsafe(what, `state version ${show(s[0])} with ${s.length.toString()} items: numpy writes version ${wantVersion.toString()}`);
  const [, byteOrderValue, subarray, names, fields, elsizeValue, alignmentValue, flagsValue] = s;
  if (byteOrderValue?.kind !== "str" || byteOrderValue.truncated === true) unsafe(what, `byte order ${show(byteOrderValue)} is not a string`);
  const byteOrder = byteOrderValue.value;
  const isDatetime = type.kind === "fixed" && NUMPY_FIXED_DTYPES[type.typeString]?.version === 4;
  if (isDatetime !== (s.length === 9 && s[8]?.kind === "tuple")) {
    if (isDatetime) unsafe(what, `metadata ${show(s[8])}: numpy writes version 4 with ({...}, (unit, num, 1, 1)) for datetimes`);
    else unsafe(what, `metadata ${show(s[8])}: numpy writes a dict`);
  }
  if (s.length === 9) checkMetadata(s[8], isDatetime, what);

  let expected: { byteOrders: readonly string[]; elsize: number; alignment: number; flags: number; itemsize: number; dtypeAlignment: number };
  const structure = subarray?.kind !== "none" ? "subarray" : names?.kind !== "none" || fields?.kind !== "none" ? "fields" : "plain";
  if (type.kind === "fixed") {
    const row = NUMPY_FIXED_DTYPES[type.typeString];
    if (row === undefined) unsafe(what, "unknown type string");
    if (structure !== "plain")
      unsafe(what, `${structure} ${show(structure === "subarray" ? subarray : fields)} on a ${type.typeString} dtype: numpy writes None`);
    expected = { byteOrders: row.byteOrders, elsize: -1, alignment: -1, flags: row.flags, itemsize: row.itemsize, dtypeAlignment: row.alignment };
  } else {
    const row = NUMPY_FLEXIBLE_DTYPES[type.flexKind];
    if (row === undefined) unsafe(what, "unknown type string");
    const itemsize = type.count * row.unit;
    if (structure !== "plain" && type.flexKind !== "V") unsafe(what, `${structure} on a ${type.typeString} dtype: numpy writes None`);
    if (structure === "subarray") {
      if (names?.kind !== "none" || fields?.kind !== "none") unsafe(what, "names/fields together with a subarray: numpy writes None");
      const base = checkSubarray(subarray, itemsize, what, depth);
      expected = { byteOrders: ["|"], elsize: itemsize, alignment: base.alignment, flags: base.flags, itemsize, dtypeAlignment: base.alignment };
    } else if (structure === "fields") {
      if (typeof flagsValue === "undefined" || flagsValue.kind !== "int") unsafe(what, `flags ${show(flagsValue)} is not an int`);
      // Whether numpy made it with align=True shows only in the flags; the alignment must then match the fields.
      const aligned = (Number(BigInt.asUintN(8, flagsValue.value)) & NUMPY_ALIGNED_STRUCT) !== 0;
      const struct = checkFields(names, fields, itemsize, aligned, what, depth);
      expected = { byteOrders: ["|"], elsize: itemsize, alignment: struct.alignment, flags: struct.flags, itemsize, dtypeAlignment: struct.alignment };
    } else {
      expected = { byteOrders: row.byteOrders, elsize: itemsize, alignment: row.alignment, flags: row.flags, itemsize, dtypeAlignment: row.alignment };
    }
  }
  if (!expected.byteOrders.includes(byteOrder))
    unsafe(what, `byte order ${JSON.stringify(byteOrder)}: numpy writes ${expected.byteOrders.map((b) => JSON.stringify(b)).join(" or ")}`);
  const elsize = intOf(elsizeValue);
  if (elsize !== BigInt(expected.elsize)) unsafe(what, `elsize (itemsize) ${show(elsizeValue)}: numpy writes ${expected.elsize.toString()}`);
  const alignment = intOf(alignmentValue);
  if (alignment !== BigInt(expected.alignment)) unsafe(what, `alignment ${show(alignmentValue)}: numpy writes ${expected.alignment.toString()}`);
  const flags = intOf(flagsValue);
  // numpy 1 writes the flags char signed (-112 for 0x90), numpy 2 unsigned (PyLong_FromUnsignedLongLong): the same byte.
  if (flags !== signedFlags(expected.flags) && flags !== BigInt(expected.flags)) {
    unsafe(
      what,
      `flags ${show(flagsValue)}: numpy writes ${signedFlags(expected.flags).toString()}${(expected.flags & NPY_ITEM_HASOBJECT) !== 0 ? " (the object flags: NPY_ITEM_HASOBJECT, NPY_LIST_PICKLE...)" : ""}`,
    );
  }
  return {
    typeString: type.typeString,
    byteOrder,
    itemsize: expected.itemsize,
    alignment: expected.dtypeAlignment,
    flags: expected.flags,
    hasObject: (expected.flags & NPY_ITEM_HASOBJECT) !== 0,
  };
}

/** The item size of a numpy.record dtype: the elsize of its state (0 without one, as numpy.dtype(numpy.record) is). */
function recordSize(state: SymbolicValue | undefined, what: string): number {
  if (state === undefined) return 0;
  const elsize = state.kind === "tuple" ? intOf(state.items[5]) : undefined;
  if (elsize === undefined || elsize < 0n || elsize > BigInt(MAX_ELSIZE))
    unsafe(what, `elsize (itemsize) ${show(state.kind === "tuple" ? state.items[5] : state)} is not one numpy writes`);
  return Number(elsize);
}

function defaultDtype(type: TypeString): NumpyDtype {
  if (type.kind === "fixed") {
    const row = NUMPY_FIXED_DTYPES[type.typeString];
    if (row === undefined) unsafe("numpy.dtype", "unknown type string");
    return {
      typeString: type.typeString,
      byteOrder: "|",
      itemsize: row.itemsize,
      alignment: row.alignment,
      flags: row.flags,
      hasObject: (row.flags & NPY_ITEM_HASOBJECT) !== 0,
    };
  }
  const row = NUMPY_FLEXIBLE_DTYPES[type.flexKind];
  if (row === undefined) unsafe("numpy.dtype", "unknown type string");
  return {
    typeString: type.typeString,
    byteOrder: "|",
    itemsize: type.count * row.unit,
    alignment: row.alignment,
    flags: row.flags,
    hasObject: (row.flags & NPY_ITEM_HASOBJECT) !== 0,
  };
}

/** Version 4 metadata: a dict, or for datetimes ({...}, (unit bytes, num, 1, 1)) (convert_datetime_metadata_tuple_to_datetime_metadata). */
function checkMetadata(v: SymbolicValue | undefined, isDatetime: boolean, what: string): void {
  if (!isDatetime) {
    if (v?.kind !== "dict") unsafe(what, `metadata ${show(v)}: numpy writes a dict`);
    return;
  }
  if (v?.kind !== "tuple" || isTruncated(v) || v.items.length !== 2 || v.items[0]?.kind !== "dict")
    unsafe(what, `datetime metadata ${show(v)}: numpy writes ({...}, (unit, num, 1, 1))`);
  const meta = v.items[1];
  if (meta?.kind !== "tuple" || isTruncated(meta) || meta.items.length !== 4) unsafe(what, `datetime unit ${show(meta)}: numpy writes (unit, num, 1, 1)`);
  const [unit, num, den, events] = meta.items;
  const unitName = bytesText(unit);
  if (unitName === undefined || !NUMPY_DATETIME_UNITS.includes(unitName)) unsafe(what, `datetime unit ${show(unit)} is not one numpy writes`);
  const n = intOf(num);
  if (n === undefined || n < 1n || n > 0x7fffffffn) unsafe(what, `datetime multiplier ${show(num)}: numpy writes 1..2^31-1`);
  if (intOf(den) !== 1n || intOf(events) !== 1n) unsafe(what, `datetime unit tuple ${show(meta)}: numpy writes 1 in its last two items`);
}

/**
 * The text of a bytes value as numpy's pickles carry it: BINBYTES under protocol 3+, or
 * `_codecs.encode(<latin-1 text>, "latin1")` (how protocols 0-2 write bytes), or a Python 2 str.
 */
function bytesText(v: SymbolicValue | undefined): string | undefined {
  if (v?.kind === "bytes") return v.value === undefined ? undefined : Buffer.from(v.value).toString("latin1");
  if (v?.kind === "str") return v.truncated === true ? undefined : v.value;
  if (v?.kind === "object" && v.callable.kind === "global" && v.callable.module === "_codecs" && v.callable.name === "encode" && v.state === undefined) {
    const args = v.args;
    if (args.kind !== "tuple" || isTruncated(args) || args.items.length !== 2) return undefined;
    const [text, encoding] = args.items;
    if (text?.kind === "str" && text.truncated !== true && encoding?.kind === "str" && encoding.value === "latin1") return text.value;
  }
  return undefined;
}

function checkSubarray(subarray: SymbolicValue | undefined, itemsize: number, what: string, depth: number): NumpyDtype {
  if (subarray?.kind !== "tuple" || isTruncated(subarray) || subarray.items.length !== 2)
    unsafe(what, `subarray ${show(subarray)}: numpy writes (base dtype, shape)`);
  const [baseValue, shape] = subarray.items;
  if (baseValue === undefined) unsafe(what, "subarray without a base dtype");
  const base = checkNumpyDtype(baseValue, depth + 1);
  if (shape?.kind !== "tuple" || isTruncated(shape) || shape.items.length === 0)
    unsafe(what, `subarray shape ${show(shape)}: numpy writes a non-empty tuple of ints`);
  let count = 1n;
  for (const d of shape.items) {
    const n = intOf(d);
    if (n === undefined || n < 0n) unsafe(what, `subarray shape ${show(shape)}: numpy writes a tuple of ints >= 0`);
    count *= n;
    if (count > BigInt(MAX_ELSIZE)) unsafe(what, `subarray shape ${show(shape)} exceeds numpy's item size`);
  }
  if (count * BigInt(base.itemsize) !== BigInt(itemsize)) {
    unsafe(
      what,
      `subarray of ${count.toString()} x ${base.itemsize.toString()}-byte items in a ${itemsize.toString()}-byte dtype: numpy writes V${(count * BigInt(base.itemsize)).toString()}`,
    );
  }
  return base;
}

interface FieldSpan {
  start: number;
  end: number;
  hasObject: boolean;
}

/**
 * A structured dtype: names a tuple of distinct strings; fields {name: (dtype, offset[, title])}
 * plus {title: the same tuple} for titled fields; every field inside the item. numpy derives the
 * flags (NPY_NEEDS_PYAPI | OR of the fields' NPY_FROM_FIELDS bits | NPY_ALIGNED_STRUCT) and the
 * alignment (1, or the largest field alignment when aligned) and never lets object fields
 * overlap other fields (_validate_object_field_overlap): raw bytes of an overlapping field would
 * be an object pointer.
 */
function checkFields(
  names: SymbolicValue | undefined,
  fields: SymbolicValue | undefined,
  itemsize: number,
  aligned: boolean,
  what: string,
  depth: number,
): { flags: number; alignment: number } {
  if (names?.kind !== "tuple" || isTruncated(names)) unsafe(what, `names ${show(names)}: numpy writes a tuple of field names`);
  if (fields?.kind !== "dict" || isTruncated(fields)) unsafe(what, `fields ${show(fields)}: numpy writes a complete dict`);
  const entries = new Map<string, SymbolicValue>();
  for (const [k, value] of fields.entries) {
    if (k.kind !== "str" || k.truncated === true) unsafe(what, `field key ${show(k)} is not a string`);
    if (entries.has(k.value)) unsafe(what, `fields set ${JSON.stringify(k.value)} twice`);
    entries.set(k.value, value);
  }
  let flags = NUMPY_STRUCT_BASE_FLAGS | (aligned ? NUMPY_ALIGNED_STRUCT : 0);
  let alignment = 1;
  const seen = new Set<string>();
  const titles = new Set<string>();
  const spans: FieldSpan[] = [];
  for (const nameValue of names.items) {
    if (nameValue.kind !== "str" || nameValue.truncated === true) unsafe(what, `field name ${show(nameValue)} is not a string`);
    const name = nameValue.value;
    if (seen.has(name)) unsafe(what, `field name ${JSON.stringify(name)} appears twice in names`);
    seen.add(name);
    const field = entries.get(name);
    if (field?.kind !== "tuple" || isTruncated(field) || (field.items.length !== 2 && field.items.length !== 3))
      unsafe(what, `field ${JSON.stringify(name)} is ${show(field)}: numpy writes (dtype, offset[, title])`);
    const [fieldDtypeValue, offsetValue, title] = field.items;
    if (fieldDtypeValue === undefined) unsafe(what, `field ${JSON.stringify(name)} without a dtype`);
    const fd = checkNumpyDtype(fieldDtypeValue, depth + 1);
    const offset = intOf(offsetValue);
    if (offset === undefined || offset < 0n || offset + BigInt(fd.itemsize) > BigInt(itemsize)) {
      unsafe(
        what,
        `field ${JSON.stringify(name)} at offset ${show(offsetValue)} of ${fd.itemsize.toString()} bytes lies outside the ${itemsize.toString()}-byte item`,
      );
    }
    if (aligned && offset % BigInt(fd.alignment) !== 0n)
      unsafe(what, `field ${JSON.stringify(name)} at offset ${offset.toString()} is not aligned to ${fd.alignment.toString()} in an aligned struct`);
    if (title !== undefined) {
      if (title.kind !== "str" || title.truncated === true) unsafe(what, `title of field ${JSON.stringify(name)} is ${show(title)}: numpy writes a string`);
      if (seen.has(title.value) || titles.has(title.value) || entries.get(title.value) !== field) {
        unsafe(
          what,
          `title ${JSON.stringify(title.value)} of field ${JSON.stringify(name)}: numpy writes fields[title] as the same (dtype, offset, title) tuple`,
        );
      }
      titles.add(title.value);
    }
    flags |= fd.flags & NUMPY_FROM_FIELDS;
    if (aligned) alignment = Math.max(alignment, fd.alignment);
    spans.push({ start: Number(offset), end: Number(offset) + fd.itemsize, hasObject: fd.hasObject });
  }
  if (entries.size !== seen.size + titles.size)
    unsafe(what, `fields has ${entries.size.toString()} entries, names and titles ${(seen.size + titles.size).toString()}`);
  for (const t of titles) if (seen.has(t)) unsafe(what, `title ${JSON.stringify(t)} is also a field name`);
  if (aligned && itemsize % alignment !== 0)
    unsafe(what, `aligned struct of ${itemsize.toString()} bytes is not a multiple of its alignment ${alignment.toString()}`);
  // Overlap sweep: fields by offset, merged while they overlap; a cluster of more than one field
  // that holds an object field means an object pointer shares bytes with another field.
  spans.sort((a, b) => a.start - b.start);
  let clusterEnd = -1;
  let clusterObject = false;
  for (const span of spans) {
    if (span.start < clusterEnd && span.end > span.start) {
      if (clusterObject || span.hasObject) unsafe(what, "an object field overlaps another field: numpy never writes overlapping object fields");
      clusterEnd = Math.max(clusterEnd, span.end);
    } else if (span.end > span.start) {
      clusterEnd = span.end;
      clusterObject = span.hasObject;
    }
  }
  return { flags, alignment };
}
