import type { ByteSource } from "../../bytes/source";
import { GatewayError } from "../../errors";
import type { Finding, InspectionNode } from "../../inspect/report";
import { ONNX_MAX_EXTERNAL_TENSORS, ONNX_MAX_FIELDS, ONNX_MAX_MESSAGE_DEPTH, ONNX_MAX_NODES, ONNX_MAX_STRING_BYTES } from "../../limits";
import type { ArchiveFiles, FormatContext } from "../context";
import { findingOf } from "../members";
import { END_GROUP, I32, I64, LEN, ProtobufWindow, readVarint, START_GROUP, VARINT } from "../protobufWire";

/**
 * ONNX models (onnx/onnx.proto, `syntax = "proto2"`): one serialized `ModelProto`. Read here the
 * way protobuf's C++ parser (`ParseFromString`, what `onnx.load` and onnxruntime's
 * `Model::Load` use) reads it, through positional reads of at most one 64 KiB window: a 2 GB
 * model's `raw_data` and every other field the check does not need are skipped by their length,
 * never read.
 *
 * Protobuf semantics kept (protobuf's wire format, `WireFormat::ParseAndMergePartial`):
 * - fields come in any order; a field number the schema does not know, or a known number with
 *   another wire type, is kept aside as an unknown field (skipped here, groups included);
 * - a singular scalar or string field seen twice: the last one wins;
 * - a singular message field seen twice (`ModelProto.graph`, `AttributeProto.g`, `TensorProto`
 *   in `t`): the occurrences are merged (`MergeFrom`: repeated fields appended). Walking every
 *   occurrence visits exactly the nodes, tensors and subgraphs of the merged message;
 * - repeated fields are appended in order.
 * Nesting beyond protobuf's default recursion limit (100) fails the C++ parse: malformed here too.
 *
 * What can run code or read outside the model when onnxruntime loads it:
 * - a node whose operator domain is not one onnxruntime implements needs a custom operator
 *   library registered on the host (`SessionOptions.register_custom_ops_library`: native code):
 *   `custom_operator`, unless the node calls a function the model itself defines (model-local
 *   functions, which onnxruntime inlines: `Graph::InlineFunction` / `FunctionProto` in
 *   `Model::model_local_functions_`);
 * - external data (`TensorProto.external_data`, `data_location = EXTERNAL`): the loader opens
 *   `location` relative to the model's folder (onnx `load_external_data_for_tensor` ->
 *   checker.cc `resolve_external_data_location`; onnxruntime `ExternalDataInfo::Create` and
 *   `utils::GetExternalDataInfo`) and reads `length` bytes at `offset`. A path out of the folder
 *   reads host files into the weights; onnxruntime's in-memory tag `*\/_ORT_MEM_ADDR_/*` makes
 *   `offset` a raw memory address (CWE-822 in ONNX frontends that honour it from a file).
 */

/** Operator domains onnxruntime implements itself: the ONNX standard, ONNX-ML, training preview, and its contrib ops. */
export const ONNX_BUILTIN_DOMAINS: ReadonlySet<string> = new Set(["", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "com.microsoft"]);

/** onnxruntime's marker for "offset is a memory address" (tensorprotoutils.h kTensorProtoMemoryAddressTag). */
const ORT_MEMORY_ADDRESS_TAG = "*/_ORT_MEM_ADDR_/*";

/** Keys onnxruntime's ExternalDataInfo::Create reads; any other key fails its load ("model format error!"). */
const EXTERNAL_DATA_KEYS: ReadonlySet<string> = new Set(["location", "offset", "length", "checksum"]);

/** A range of the source holding one message's fields. */
interface Span {
  start: number;
  end: number;
}

/** A reference to external data, as read from one TensorProto. */
export interface ExternalReference {
  tensor: string;
  /** Every `location` value written for the tensor (the loaders keep the last; all are checked). */
  locations: string[];
  offset: number;
  length: number | undefined;
  where: string;
}

interface OperatorUse {
  domain: string;
  opType: string;
  overload: string;
  where: string;
}

/** What the walk collects; judged once the whole model is read (functions may follow the graph). */
export interface Collected {
  fields: number;
  nodes: number;
  graphs: number;
  operators: Map<string, { use: OperatorUse; count: number }>;
  opsetDomains: Map<string, string>;
  functions: Set<string>;
  functionDomains: Set<string>;
  externals: ExternalReference[];
  irVersion: number | undefined;
}

function malformed(message: string, offset?: number): GatewayError {
  return new GatewayError("malformed_container", `onnx: ${message}`, offset === undefined ? {} : { offset });
}

const utf8 = new TextDecoder("utf-8");

class Reader {
  private readonly window: ProtobufWindow;
  constructor(
    source: ByteSource,
    private readonly collected: Collected,
  ) {
    this.window = new ProtobufWindow(source);
  }

  /** A varint at `pos` before `end` (protobufWire.ts readVarint); a cut or over-long one is malformed. */
  varint(pos: number, end: number): { value: number; next: number } {
    const v = readVarint(this.window, pos, end);
    if (v === undefined) throw malformed("truncated or over-long varint (protobuf allows 10 bytes)", pos);
    return v;
  }

  /** The bytes of [start, end); the source ending early is malformed. */
  private bytes(start: number, end: number): Uint8Array {
    const out = new Uint8Array(end - start);
    for (let p = start; p < end; p++) {
      const b = this.window.byteAt(p);
      if (b === undefined) throw malformed("source ended early", p);
      out[p - start] = b;
    }
    return out;
  }

  /**
   * Call `visit(field, wire, payload)` for every field of the message in `span`; skip groups
   * (unknown to the schema) as the parser skips unknown fields. `depth` is the message nesting.
   */
  fields(span: Span, depth: number, visit: (field: number, wire: number, payload: Span, value: number) => void): void {
    if (depth > ONNX_MAX_MESSAGE_DEPTH) {
      throw malformed(`messages nested deeper than ${ONNX_MAX_MESSAGE_DEPTH} (protobuf's recursion limit)`, span.start);
    }
    let pos = span.start;
    const groups: number[] = [];
    while (pos < span.end) {
      this.collected.fields += 1;
      if (this.collected.fields > ONNX_MAX_FIELDS)
        throw new GatewayError("limit_exceeded", `onnx: more than ${ONNX_MAX_FIELDS} protobuf fields (ONNX_MAX_FIELDS)`);
      const key = this.varint(pos, span.end);
      const field = Math.floor(key.value / 8);
      const wire = key.value % 8;
      if (field < 1 || field > 0x1fffffff) throw malformed(`invalid field number ${field}`, pos);
      pos = key.next;
      let payload: Span = { start: pos, end: pos };
      let value = 0;
      switch (wire) {
        case VARINT: {
          const v = this.varint(pos, span.end);
          value = v.value;
          pos = v.next;
          break;
        }
        case I64:
          pos += 8;
          break;
        case I32:
          pos += 4;
          break;
        case LEN: {
          const n = this.varint(pos, span.end);
          // protobuf reads a length as a non-negative int32 (CodedInputStream::ReadVarintSizeAsInt).
          if (n.value > 0x7fffffff) throw malformed(`field ${field} declares ${n.value} bytes, more than protobuf reads`, pos);
          payload = { start: n.next, end: n.next + n.value };
          pos = payload.end;
          break;
        }
        case START_GROUP:
          if (depth + groups.length >= ONNX_MAX_MESSAGE_DEPTH) throw malformed("groups nested deeper than protobuf's recursion limit", pos);
          groups.push(field);
          continue;
        case END_GROUP:
          if (groups.pop() !== field) throw malformed(`unmatched end of group ${field}`, pos);
          continue;
        default:
          throw malformed(`invalid wire type ${wire}`, pos);
      }
      if (pos > span.end) throw malformed(`field ${field} runs past the end of its message`, payload.start);
      if (groups.length === 0) visit(field, wire, payload, value);
    }
    if (groups.length > 0) throw malformed("unclosed group", pos);
  }

  text(payload: Span, what: string): string {
    if (payload.end - payload.start > ONNX_MAX_STRING_BYTES) {
      throw new GatewayError("limit_exceeded", `onnx: ${what} longer than ${ONNX_MAX_STRING_BYTES} bytes (ONNX_MAX_STRING_BYTES)`, { offset: payload.start });
    }
    return utf8.decode(this.bytes(payload.start, payload.end));
  }
}

/** Field numbers of onnx.proto used below (wire type LEN unless said). */
const MODEL = { irVersion: 1, graph: 7, opsetImport: 8, trainingInfo: 20, functions: 25 } as const;
const GRAPH = { node: 1, initializer: 5, sparseInitializer: 15 } as const;
const NODE = { opType: 4, attribute: 5, domain: 7, overload: 8 } as const;
const ATTRIBUTE = { t: 5, g: 6, tensors: 10, graphs: 11, sparseTensor: 22, sparseTensors: 23 } as const;
const TENSOR = { name: 8, externalData: 13, dataLocation: 14 } as const;
const SPARSE = { values: 1, indices: 2 } as const;
const FUNCTION = { name: 1, node: 7, opsetImport: 9, domain: 10, attributeProto: 11, overload: 13 } as const;
const TRAINING = { initialization: 1, algorithm: 2 } as const;
const EXTERNAL_LOCATION = 1;

function functionId(domain: string, name: string, overload: string): string {
  return JSON.stringify([domain, name, overload]);
}

class OnnxWalk {
  readonly reader: Reader;
  constructor(
    source: ByteSource,
    readonly collected: Collected,
  ) {
    this.reader = new Reader(source, collected);
  }

  model(span: Span): void {
    // Occurrences of one singular message field are merged: node indices continue across them.
    const mainGraph = { nodes: 0 };
    this.reader.fields(span, 0, (field, wire, payload, value) => {
      if (field === MODEL.irVersion && wire === VARINT) this.collected.irVersion = value;
      if (wire !== LEN) return;
      if (field === MODEL.graph) this.graph(payload, 1, "graph", mainGraph);
      else if (field === MODEL.opsetImport) this.opset(payload, 1);
      else if (field === MODEL.functions) this.function(payload, 1);
      else if (field === MODEL.trainingInfo) {
        this.reader.fields(payload, 1, (f, w, p) => {
          if (w === LEN && (f === TRAINING.initialization || f === TRAINING.algorithm))
            this.graph(p, 2, `training_info.${f === 1 ? "initialization" : "algorithm"}`);
        });
      }
    });
  }

  opset(span: Span, depth: number): void {
    let domain = "";
    this.reader.fields(span, depth, (field, wire, payload) => {
      if (field === 1 && wire === LEN) domain = this.reader.text(payload, "opset_import domain");
    });
    if (!this.collected.opsetDomains.has(domain)) this.collected.opsetDomains.set(domain, `opset_import '${domain}'`);
  }

  graph(span: Span, depth: number, where: string, merged: { nodes: number } = { nodes: 0 }): void {
    this.collected.graphs += 1;
    this.reader.fields(span, depth, (field, wire, payload) => {
      if (wire !== LEN) return;
      if (field === GRAPH.node) this.node(payload, depth + 1, `${where}.node[${merged.nodes++}]`);
      else if (field === GRAPH.initializer) this.tensor(payload, depth + 1, `${where}.initializer`);
      else if (field === GRAPH.sparseInitializer) this.sparseTensor(payload, depth + 1, `${where}.sparse_initializer`);
    });
  }

  function(span: Span, depth: number): void {
    let name = "";
    let domain = "";
    let overload = "";
    const nodes: Span[] = [];
    const attributes: Span[] = [];
    this.reader.fields(span, depth, (field, wire, payload) => {
      if (wire !== LEN) return;
      if (field === FUNCTION.name) name = this.reader.text(payload, "function name");
      else if (field === FUNCTION.domain) domain = this.reader.text(payload, "function domain");
      else if (field === FUNCTION.overload) overload = this.reader.text(payload, "function overload");
      else if (field === FUNCTION.node) nodes.push(payload);
      else if (field === FUNCTION.attributeProto) attributes.push(payload);
      else if (field === FUNCTION.opsetImport) this.opset(payload, depth + 1);
    });
    this.collected.functions.add(functionId(domain, name, overload));
    this.collected.functionDomains.add(domain);
    const where = `functions['${domain}:${name}']`;
    nodes.forEach((n, i) => {
      this.node(n, depth + 1, `${where}.node[${i}]`);
    });
    for (const a of attributes) this.attribute(a, depth + 1, `${where}.attribute`);
  }

  node(span: Span, depth: number, where: string): void {
    this.collected.nodes += 1;
    if (this.collected.nodes > ONNX_MAX_NODES) throw new GatewayError("limit_exceeded", `onnx: more than ${ONNX_MAX_NODES} nodes (ONNX_MAX_NODES)`);
    let opType = "";
    let domain = "";
    let overload = "";
    this.reader.fields(span, depth, (field, wire, payload) => {
      if (wire !== LEN) return;
      if (field === NODE.opType) opType = this.reader.text(payload, "op_type");
      else if (field === NODE.domain) domain = this.reader.text(payload, "node domain");
      else if (field === NODE.overload) overload = this.reader.text(payload, "node overload");
      else if (field === NODE.attribute) this.attribute(payload, depth + 1, where);
    });
    if (ONNX_BUILTIN_DOMAINS.has(domain)) return;
    const id = functionId(domain, opType, overload);
    const seen = this.collected.operators.get(id);
    if (seen !== undefined) seen.count += 1;
    else this.collected.operators.set(id, { use: { domain, opType, overload, where }, count: 1 });
  }

  /**
   * Every tensor, graph and sparse tensor an attribute holds, whatever its `type` says: onnx's
   * external_data_helper follows `g`/`graphs` by type, but the fields are there for any reader.
   */
  attribute(span: Span, depth: number, where: string): void {
    let graphs = 0;
    this.reader.fields(span, depth, (field, wire, payload) => {
      if (wire !== LEN) return;
      if (field === ATTRIBUTE.g || field === ATTRIBUTE.graphs) this.graph(payload, depth + 1, `${where}.subgraph[${graphs++}]`);
      else if (field === ATTRIBUTE.t || field === ATTRIBUTE.tensors) this.tensor(payload, depth + 1, `${where}.attribute_tensor`);
      else if (field === ATTRIBUTE.sparseTensor || field === ATTRIBUTE.sparseTensors) this.sparseTensor(payload, depth + 1, `${where}.attribute_tensor`);
    });
  }

  sparseTensor(span: Span, depth: number, where: string): void {
    this.reader.fields(span, depth, (field, wire, payload) => {
      if (wire === LEN && (field === SPARSE.values || field === SPARSE.indices)) this.tensor(payload, depth + 1, where);
    });
  }

  tensor(span: Span, depth: number, where: string): void {
    let name = "";
    // Set inside the field callback (an object, so the flow analysis sees it can change).
    const location = { external: false };
    const entries: Span[] = [];
    this.reader.fields(span, depth, (field, wire, payload, value) => {
      if (field === TENSOR.name && wire === LEN) name = this.reader.text(payload, "tensor name");
      else if (field === TENSOR.externalData && wire === LEN) entries.push(payload);
      // proto2 enum: an unknown number is kept aside, the field keeps its value; EXTERNAL is 1.
      else if (field === TENSOR.dataLocation && wire === VARINT && (value === 0 || value === 1)) location.external = value === 1;
    });
    // Entries are checked whenever present, even with data_location DEFAULT (fail closed).
    if (!location.external && entries.length === 0) return;
    if (this.collected.externals.length >= ONNX_MAX_EXTERNAL_TENSORS) {
      throw new GatewayError("limit_exceeded", `onnx: more than ${ONNX_MAX_EXTERNAL_TENSORS} tensors with external data (ONNX_MAX_EXTERNAL_TENSORS)`);
    }
    const values = new Map<string, string[]>();
    for (const entry of entries) {
      let key: string | undefined;
      let value: string | undefined;
      this.reader.fields(entry, depth + 1, (field, wire, payload) => {
        if (wire !== LEN) return;
        if (field === EXTERNAL_LOCATION) key = this.reader.text(payload, "external_data key");
        else if (field === 2) value = this.reader.text(payload, "external_data value");
      });
      // onnxruntime: "Need a key / a value for the external data info".
      if (key === undefined || value === undefined) throw malformed(`tensor '${name}' has an external_data entry without a key or a value`, entry.start);
      if (!EXTERNAL_DATA_KEYS.has(key))
        throw malformed(`tensor '${name}' has external_data key ${JSON.stringify(key.slice(0, 64))} onnxruntime refuses`, entry.start);
      values.set(key, [...(values.get(key) ?? []), value]);
    }
    const locations = values.get("location") ?? [];
    if (locations.length === 0) throw malformed(`tensor '${name}' has external data without a location`, span.start);
    this.collected.externals.push({
      tensor: name,
      locations,
      offset: decimalEntry(values.get("offset"), name, "offset") ?? 0,
      length: decimalEntry(values.get("length"), name, "length"),
      where: `${where}['${name}']`,
    });
  }
}

/**
 * One offset or length: a decimal integer (onnx: int(); onnxruntime: strtoll with the whole string
 * consumed). Written more than once with different values, the two loaders could read different
 * bytes: malformed.
 */
function decimalEntry(values: readonly string[] | undefined, tensor: string, key: string): number | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const distinct = new Set(values);
  if (distinct.size > 1) throw malformed(`tensor '${tensor}' has ${distinct.size} different external_data ${key} values`);
  const text = values[0] ?? "";
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(Number(text)))
    throw malformed(`tensor '${tensor}' has external_data ${key} ${JSON.stringify(text.slice(0, 32))}, not a non-negative integer`);
  return Number(text);
}

/**
 * Why a `location` is not a plain relative path inside the model's folder, or undefined. onnx
 * (checker.cc resolve_external_data_location) refuses absolute paths and any ".." after
 * lexical normalisation; onnxruntime joins it to the model's folder. Stricter here: backslashes
 * (a separator on Windows), drive prefixes, NUL and control characters, and onnxruntime's
 * memory-address tag are refused too.
 */
export function locationProblem(location: string): string | undefined {
  if (location === ORT_MEMORY_ADDRESS_TAG) return "is onnxruntime's in-memory tag (offset read as a memory address)";
  if (location.length === 0) return "is empty";
  if (location.includes("\0")) return "contains NUL";
  if (location.includes("\\")) return "contains a backslash";
  if (location.startsWith("/")) return "is absolute";
  if (/^[A-Za-z]:/.test(location)) return "starts with a drive prefix";
  for (const ch of location) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f) return "contains a control character";
  }
  if (location.split("/").some((segment) => segment === "..")) return "has a '..' segment";
  return undefined;
}

/** The location relative to the model's folder, lexically normalised ("./a//b" -> "a/b"), as onnx's lexically_normal does. */
function normalisedLocation(location: string): string {
  return location
    .split("/")
    .filter((s) => s !== "" && s !== ".")
    .join("/");
}

function externalFindings(collected: Collected, path: string, siblings: ArchiveFiles | undefined): { findings: Finding[]; files: string[] } {
  const findings: Finding[] = [];
  const files = new Set<string>();
  const folder = siblings === undefined ? "" : siblings.memberPath.split("/").slice(0, -1).join("/");
  for (const ref of collected.externals) {
    const location = `${path}#${ref.where}`;
    const bad = ref.locations.map((l) => ({ l, why: locationProblem(l) })).find((x) => x.why !== undefined);
    if (bad !== undefined) {
      findings.push({
        code: "path_traversal",
        severity: "dangerous",
        message: `tensor '${ref.tensor}' external data location ${JSON.stringify(bad.l.slice(0, 200))} ${bad.why ?? ""}: the loader would read outside the model's folder`,
        location,
      });
      continue;
    }
    for (const raw of new Set(ref.locations)) {
      const relative = normalisedLocation(raw);
      if (siblings === undefined) {
        findings.push({
          code: "malformed_container",
          severity: "malformed",
          message: `tensor '${ref.tensor}' keeps its data in ${JSON.stringify(raw.slice(0, 200))}, a file not uploaded with the model (a single .onnx file carries no other file; upload the model folder as a zip or tar)`,
          location,
        });
        continue;
      }
      const memberName = folder === "" ? relative : `${folder}/${relative}`;
      const size = siblings.files.get(memberName);
      if (size === undefined) {
        findings.push({
          code: "malformed_container",
          severity: "malformed",
          message: `tensor '${ref.tensor}' keeps its data in ${JSON.stringify(raw.slice(0, 200))}, which is not a file of the archive next to the model`,
          location,
        });
        continue;
      }
      files.add(memberName);
      // onnx _validate_external_data_file_bounds: offset <= size, offset + length <= size.
      const end = ref.offset + (ref.length ?? 0);
      if (ref.offset > size || end > size) {
        findings.push({
          code: "malformed_container",
          severity: "malformed",
          message: `tensor '${ref.tensor}' reads [${ref.offset}, ${end}) of ${memberName}, which has ${size} bytes`,
          location,
        });
      }
    }
  }
  return { findings, files: [...files].sort() };
}

function emptyCollected(): Collected {
  return {
    fields: 0,
    nodes: 0,
    graphs: 0,
    operators: new Map(),
    opsetDomains: new Map(),
    functions: new Set(),
    functionDomains: new Set(),
    externals: [],
    irVersion: undefined,
  };
}

/** A node calling an operator onnxruntime does not implement and the model does not define. */
function customOperatorFinding(ctx: FormatContext, what: string, location: string, details: Record<string, unknown>): Finding {
  return ctx.policy.allowCustomOperators === true
    ? { code: "custom_operator", severity: "innocuous", message: `${what} (allowed by the source's policy: allowCustomOperators)`, location, details }
    : { code: "custom_operator", severity: "suspicious", message: `${what}; rejected unless the source's policy sets allowCustomOperators`, location, details };
}

/**
 * Read a whole model and collect what the checks need; throws a GatewayError (malformed_container,
 * limit_exceeded) on a model protobuf's parser refuses or a bound. The fuzz target (bench/fuzzTargets.ts).
 */
export function readOnnxModel(source: ByteSource): Collected {
  const collected = emptyCollected();
  new OnnxWalk(source, collected).model({ start: 0, end: source.size });
  return collected;
}

/** Inspect one ONNX model (sniffed by protobuf.ts). Never throws on hostile bytes: a parse error is the node's finding. */
export function inspectOnnx(source: ByteSource, path: string, ctx: FormatContext): Promise<InspectionNode> {
  const node: InspectionNode = { kind: "onnx", path, format: "onnx", findings: [], children: [] };
  let collected: Collected;
  try {
    collected = readOnnxModel(source);
  } catch (err) {
    node.findings.push(findingOf(err, path));
    return Promise.resolve(node);
  }
  for (const { use, count } of collected.operators.values()) {
    if (collected.functions.has(functionId(use.domain, use.opType, use.overload))) continue;
    const what = `${count} node(s) call operator '${use.opType}' of domain '${use.domain}', which onnxruntime does not implement and the model does not define: loading it needs a custom operator library (native code) on the host`;
    node.findings.push(customOperatorFinding(ctx, what, `${path}#${use.where}`, { domain: use.domain, opType: use.opType }));
  }
  for (const [domain, where] of collected.opsetDomains) {
    if (ONNX_BUILTIN_DOMAINS.has(domain) || collected.functionDomains.has(domain)) continue;
    const what = `the model imports operator set domain '${domain}', which onnxruntime does not implement and no model function defines`;
    node.findings.push(customOperatorFinding(ctx, what, `${path}#${where}`, { domain }));
  }
  const archiveFiles = ctx.archiveFiles?.reportPath === path ? ctx.archiveFiles : undefined;
  const external = externalFindings(collected, path, archiveFiles);
  node.findings.push(...external.findings);
  node.details = {
    irVersion: collected.irVersion,
    graphs: collected.graphs,
    nodes: collected.nodes,
    functions: collected.functions.size,
    opsetDomains: [...collected.opsetDomains.keys()].sort(),
    externalTensors: collected.externals.length,
    ...(external.files.length > 0 ? { externalDataFiles: external.files } : {}),
  };
  return Promise.resolve(node);
}
