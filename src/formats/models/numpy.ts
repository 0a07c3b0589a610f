import { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import { GatewayError, isGatewayError } from "../../errors";
import type { Finding, InspectionNode } from "../../inspect/report";
import { MAX_NPY_DIMS } from "../../limits";
import { analyzePickle, makePicklePolicy } from "../../pickle";
import type { FormatContext, FormatInspector } from "../context";
import { dictGet, parsePyLiteral, renderPyLiteral, type PyLiteral } from "./pyLiteral";

/**
 * numpy `.npy` (numpy/lib/format.py): magic `\x93NUMPY`, version major/minor, header length (u16
 * for 1.0, u32 for 2.0/3.0), then a Python dict literal `{'descr': ..., 'fortran_order': bool,
 * 'shape': tuple}` (latin-1 for 1.0/2.0, utf-8 for 3.0), then the data. numpy reads the header with
 * ast.literal_eval; we parse it with our own literal parser (no eval) and check the exact key set
 * and types numpy checks. When the dtype holds an object anywhere, numpy stores the data as one
 * pickle (`pickle.dump(array, protocol=3)`) and `np.load(allow_pickle=True)` runs it: we scan it
 * with the pickle analyzer, and it must end exactly at the end of the file. Otherwise the data is
 * raw: prod(shape) * itemsize must equal the remaining bytes exactly (numpy would silently ignore
 * trailing bytes; a place to hide a payload is refused).
 */

export const NPY_MAGIC = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

export interface NpyDtype {
  /** Bytes per element (the structured itemsize includes padding fields). */
  itemsize: bigint;
  /** True when an object field occurs anywhere: the data section is a pickle. */
  hasObject: boolean;
}

export interface NpyHeader {
  version: string;
  /** Offset of the data section. */
  dataOffset: number;
  headerBytes: number;
  descr: string;
  fortranOrder: boolean;
  shape: bigint[];
  dtype: NpyDtype;
}

function malformed(message: string, details: Record<string, unknown> = {}): never {
  throw new GatewayError("malformed_container", `npy: ${message}`, details);
}

/** Units of datetime64/timedelta64 typestrs ('<M8[ns]', '<m8[10s]'). */
const DATETIME_UNIT = /^\[(\d{0,9})(Y|M|W|D|h|m|s|ms|us|μs|ns|ps|fs|as)\]$/;

/**
 * Size of one simple typestr as `dtype.str` writes it: byte order, kind, size. Only the forms numpy
 * writes are accepted (numpy.dtype accepts many more spellings, e.g. 'b' = int8 but 'b1' = bool).
 */
export function typestrItemsize(s: string): NpyDtype {
  const m = /^([<>|=])([biufcSUVOMm])(\d{0,12})(\[.*\])?$/.exec(s);
  if (m === null) return malformed(`unsupported dtype string ${JSON.stringify(s.slice(0, 64))}`);
  const kind = m[2] as string;
  const digits = m[3] as string;
  const unit = m[4];
  if (unit !== undefined && !(kind === "M" || kind === "m")) malformed(`dtype ${s} has a unit but is not a datetime`);
  const size = digits === "" ? undefined : BigInt(digits);
  const need = (allowed: bigint[]): bigint => {
    if (size === undefined || !allowed.includes(size)) malformed(`dtype ${s}: size not one of ${allowed.join(", ")}`);
    return size;
  };
  switch (kind) {
    case "b":
      return { itemsize: need([1n]), hasObject: false };
    case "i":
    case "u":
      return { itemsize: need([1n, 2n, 4n, 8n]), hasObject: false };
    case "f":
      return { itemsize: need([2n, 4n, 8n, 12n, 16n]), hasObject: false };
    case "c":
      return { itemsize: need([8n, 16n, 24n, 32n]), hasObject: false };
    case "S":
    case "V":
      if (size === undefined) return malformed(`dtype ${s} without a size`);
      return { itemsize: size, hasObject: false };
    case "U":
      if (size === undefined) return malformed(`dtype ${s} without a size`);
      return { itemsize: size * 4n, hasObject: false };
    case "O":
      // '|O' (pointer-sized); the data is a pickle, so its itemsize never sizes anything.
      if (size !== undefined && size !== 8n && size !== 4n) malformed(`dtype ${s}: bad object size`);
      return { itemsize: size ?? 8n, hasObject: true };
    default: {
      // M / m: datetime64 / timedelta64, always 8 bytes, optional unit.
      if (unit !== undefined && !DATETIME_UNIT.test(unit)) malformed(`dtype ${s}: unknown datetime unit`);
      return { itemsize: need([8n]), hasObject: false };
    }
  }
}

function intOf(v: PyLiteral | undefined, what: string): bigint {
  if (v?.kind !== "int") return malformed(`${what} is not an int`);
  if (v.value < 0n) malformed(`${what} is negative`);
  return v.value;
}

/** A dtype shape: an int or a tuple of ints (numpy.dtype((base, shape))). */
function subShape(v: PyLiteral | undefined): bigint {
  if (v?.kind === "int") return intOf(v, "subarray shape");
  if (v?.kind !== "tuple") return malformed("subarray shape is not an int or a tuple");
  if (v.items.length > MAX_NPY_DIMS) malformed(`subarray shape has more than ${MAX_NPY_DIMS} dimensions`);
  return v.items.reduce<bigint>((n, d) => n * intOf(d, "subarray dimension"), 1n);
}

/** numpy/lib/format.py descr_to_dtype, modelled: str, (descr, shape), or a list of fields. */
export function descrToDtype(descr: PyLiteral): NpyDtype {
  if (descr.kind === "str") return typestrItemsize(descr.value);
  if (descr.kind === "tuple") {
    if (descr.items.length !== 2) malformed("subarray descr must be (descr, shape)");
    const base = descrToDtype(descr.items[0] as PyLiteral);
    return { itemsize: base.itemsize * subShape(descr.items[1]), hasObject: base.hasObject };
  }
  if (descr.kind !== "list") return malformed(`descr is a ${descr.kind}`);
  let itemsize = 0n;
  let hasObject = false;
  const names = new Set<string>();
  for (const field of descr.items) {
    if (field.kind !== "tuple" || (field.items.length !== 2 && field.items.length !== 3)) malformed("a structured field must be (name, descr[, shape])");
    const [nameV, fieldDescr, shape] = field.items as [PyLiteral, PyLiteral, PyLiteral | undefined];
    let dt = descrToDtype(fieldDescr);
    if (shape !== undefined) dt = { itemsize: dt.itemsize * subShape(shape), hasObject: dt.hasObject };
    let name: string;
    if (nameV.kind === "str") name = nameV.value;
    else if (nameV.kind === "tuple" && nameV.items.length === 2 && nameV.items.every((x) => x.kind === "str")) {
      name = (nameV.items[1] as { value: string }).value;
    } else return malformed("a structured field name must be a str or (title, name)");
    // Padding: a nameless plain void field only occupies bytes (descr_to_dtype skips it).
    const isPad = name === "" && fieldDescr.kind === "str" && fieldDescr.value.slice(1, 2) === "V";
    if (!isPad) {
      if (name === "") malformed("empty structured field name");
      if (names.has(name)) malformed(`duplicate structured field name ${JSON.stringify(name.slice(0, 64))}`);
      names.add(name);
    }
    itemsize += dt.itemsize;
    hasObject ||= dt.hasObject;
  }
  return { itemsize, hasObject };
}

/**
 * Read and check an .npy header from the start of `source` (throws GatewayError:
 * malformed_container, or limit_exceeded for a header past `maxHeaderBytes`).
 */
export function readNpyHeader(source: ByteSource, maxHeaderBytes: number): NpyHeader {
  const cur = new Cursor(source, { errorCode: "malformed_container", what: "npy" });
  const magic = cur.bytes(6, "magic");
  if (!magic.every((b, i) => b === NPY_MAGIC[i])) malformed("missing \\x93NUMPY magic");
  const major = cur.u8("major version");
  const minor = cur.u8("minor version");
  if (!(major >= 1 && major <= 3) || minor !== 0) malformed(`unsupported format version ${major}.${minor}`);
  const headerBytes = major === 1 ? cur.u16le("header length") : cur.u32le("header length");
  if (headerBytes > maxHeaderBytes) {
    throw new GatewayError("limit_exceeded", `npy: header of ${headerBytes} bytes exceeds the limit of ${maxHeaderBytes}`, { limit: "maxNpyHeaderBytes" });
  }
  const raw = cur.bytes(headerBytes, "header");
  let text: string;
  try {
    text = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(raw);
  } catch {
    return malformed("header is not valid UTF-8");
  }
  const lit = parsePyLiteral(text, { allowLongSuffix: major <= 2 });
  if (lit.kind !== "dict") return malformed("header is not a dict");
  const keys = lit.entries.map(([k]) => (k.kind === "str" ? k.value : "?")).sort();
  if (keys.join(",") !== "descr,fortran_order,shape") malformed(`header keys must be descr, fortran_order, shape; found ${keys.join(", ")}`);
  const shapeV = dictGet(lit, "shape");
  if (shapeV?.kind !== "tuple") return malformed("shape is not a tuple");
  if (shapeV.items.length > MAX_NPY_DIMS) malformed(`shape has more than ${MAX_NPY_DIMS} dimensions`);
  const shape = shapeV.items.map((d) => intOf(d, "shape dimension"));
  const fortran = dictGet(lit, "fortran_order");
  if (fortran?.kind !== "bool") return malformed("fortran_order is not a bool");
  const descrV = dictGet(lit, "descr") as PyLiteral;
  const dtype = descrToDtype(descrV);
  return {
    version: `${major}.${minor}`,
    dataOffset: cur.position,
    headerBytes,
    descr: renderPyLiteral(descrV).slice(0, 1024),
    fortranOrder: fortran.value,
    shape,
    dtype,
  };
}

function finding(err: unknown, location: string): Finding {
  if (isGatewayError(err) && (err.code === "limit_exceeded" || err.code === "malformed_container")) {
    return { code: err.code, severity: "malformed", message: err.message, location };
  }
  throw err;
}

/** `inspectNpy`: one node of kind "npy"; an object array gets the pickle's node as its child. */
export const inspectNpy: FormatInspector = (source: ByteSource, path: string, ctx: FormatContext) => {
  const node: InspectionNode = { kind: "npy", path, format: "npy", findings: [], children: [] };
  let header: NpyHeader;
  try {
    header = readNpyHeader(source, ctx.containerLimits.maxNpyHeaderBytes);
  } catch (err) {
    node.findings.push(finding(err, path));
    return Promise.resolve(node);
  }
  const count = header.shape.reduce((n, d) => n * d, 1n);
  const dataBytes = source.size - header.dataOffset;
  node.details = {
    version: header.version,
    descr: header.descr,
    fortranOrder: header.fortranOrder,
    shape: header.shape.map((d) => d.toString()),
    itemsize: header.dtype.itemsize.toString(),
    dataOffset: header.dataOffset,
    dataBytes,
    objectDtype: header.dtype.hasObject,
  };
  if (!header.dtype.hasObject) {
    const expected = count * header.dtype.itemsize;
    if (expected !== BigInt(dataBytes)) {
      node.findings.push({
        code: "malformed_container",
        severity: "malformed",
        message: `npy: shape x itemsize is ${expected.toString()} bytes but the file holds ${dataBytes} data bytes`,
        location: path,
        offset: header.dataOffset,
      });
    }
    return Promise.resolve(node);
  }
  // Object dtype: the data is a pickle np.load(allow_pickle=True) would run. Scan it.
  const location = `${path}#pickle`;
  const cursor = new Cursor(source, { start: header.dataOffset, errorCode: "malformed_pickle", what: location });
  const analysis = analyzePickle(cursor, { policy: makePicklePolicy(ctx.policy), limits: ctx.pickleLimits, location, single: true });
  node.children.push(analysis.node);
  const broken = analysis.node.findings.some((f) => f.severity === "malformed");
  if (!broken && analysis.end !== source.size) {
    node.findings.push({
      code: "malformed_container",
      severity: "malformed",
      message: `npy: ${source.size - analysis.end} bytes follow the object array's pickle`,
      location: path,
      offset: analysis.end,
    });
  }
  return Promise.resolve(node);
};
