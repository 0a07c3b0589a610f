import type { ByteSource } from "../bytes/source";
import { MAX_PROTOBUF_SNIFF_FIELDS } from "../limits";
import { END_GROUP, I32, I64, LEN, ProtobufWindow, readVarint, START_GROUP, VARINT } from "./protobufWire";

/**
 * ONNX and TensorFlow SavedModel files have no magic number: each is one serialized protobuf
 * message (onnx.proto `ModelProto`, saved_model.proto `SavedModel`). A protobuf parser
 * (`onnx.load` -> `ModelProto.ParseFromString`, onnxruntime's `InferenceSession`, TensorFlow's
 * `ReadBinaryProto`) accepts the fields of a message in any order, repeated, and with unknown field
 * numbers kept aside, so detection must not rely on a fixed prefix (`ir_version` first is only what
 * the official serializer writes). This reads the top-level fields the way the wire format
 * defines them (key varint, then a varint, 8 bytes, a length-delimited payload or 4 bytes) up to
 * the end of the source, and names the message by its field numbers and wire types.
 *
 * Detection only names content; it proves nothing. ONNX is inspected by models/onnx.ts; SavedModel is
 * `unsupported_format`.
 */

/** Nested groups protobuf's runtimes parse before giving up (their default recursion limit). */
const PROTOBUF_MAX_GROUP_DEPTH = 100;

/** onnx/onnx.proto `ModelProto`: field number -> wire type (ints are varints, strings and messages LEN). */
const ONNX_MODEL_FIELDS: ReadonlyMap<number, number> = new Map([
  [1, VARINT], // ir_version
  [2, LEN], // producer_name
  [3, LEN], // producer_version
  [4, LEN], // domain
  [5, VARINT], // model_version
  [6, LEN], // doc_string
  [7, LEN], // graph
  [8, LEN], // opset_import
  [14, LEN], // metadata_props
  [20, LEN], // training_info
  [25, LEN], // functions
  [26, LEN], // configuration
]);

/** tensorflow/core/protobuf/saved_model.proto `SavedModel`: saved_model_schema_version, meta_graphs. */
const SAVED_MODEL_FIELDS: ReadonlyMap<number, number> = new Map([
  [1, VARINT],
  [2, LEN],
]);

/** tensorflow/core/protobuf/meta_graph.proto `MetaGraphDef`: fields 1..7 are all messages. */
const META_GRAPH_FIELDS: ReadonlyMap<number, number> = new Map([1, 2, 3, 4, 5, 6, 7].map((n) => [n, LEN]));

interface WireField {
  field: number;
  wire: number;
  /** Payload range of a LEN field. */
  start: number;
  end: number;
}

type Walk = { ok: true; fields: WireField[]; truncated: boolean } | { ok: false };

/**
 * The fields of the message in [start, end): every key valid, every payload inside the range,
 * the last one ending exactly at `end`. A group (wire type 3 ... the matching 4) is skipped
 * field by field, as protobuf parsers skip an unknown group, up to PROTOBUF_MAX_GROUP_DEPTH (the
 * python and C++ runtimes' default recursion limit, 100); it is recorded as one field of wire
 * type 3. Wire types 6 and 7, an unmatched end-group or an unclosed group refute the message. At
 * most `maxFields` keys are read (MAX_PROTOBUF_SNIFF_FIELDS); a longer valid prefix is reported
 * as truncated.
 */
function walkFields(source: ByteSource, start: number, end: number, maxFields: number): Walk {
  const window = new ProtobufWindow(source);
  const fields: WireField[] = [];
  const groups: number[] = [];
  let keys = 0;
  let pos = start;
  while (pos < end) {
    if (keys >= maxFields) return { ok: true, fields, truncated: true };
    keys += 1;
    const key = readVarint(window, pos, end);
    if (key === undefined) return { ok: false };
    const field = Math.floor(key.value / 8);
    const wire = key.value % 8;
    if (field < 1 || field > 0x1fffffff) return { ok: false };
    const fieldStart = pos;
    pos = key.next;
    let payloadStart = pos;
    switch (wire) {
      case VARINT: {
        const v = readVarint(window, pos, end);
        if (v === undefined) return { ok: false };
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
        const n = readVarint(window, pos, end);
        if (n === undefined) return { ok: false };
        payloadStart = n.next;
        pos = n.next + n.value;
        break;
      }
      case START_GROUP:
        if (groups.length >= PROTOBUF_MAX_GROUP_DEPTH) return { ok: false };
        if (groups.length === 0) fields.push({ field, wire, start: fieldStart, end: fieldStart });
        groups.push(field);
        continue;
      case END_GROUP:
        if (groups.pop() !== field) return { ok: false };
        continue;
      default:
        return { ok: false };
    }
    if (pos > end) return { ok: false };
    if (groups.length === 0) fields.push({ field, wire, start: payloadStart, end: pos });
  }
  return groups.length === 0 ? { ok: true, fields, truncated: false } : { ok: false };
}

/** Whether every field whose number `schema` knows has that field's wire type (unknown numbers pass, as in protobuf). */
function typedAsIn(fields: readonly WireField[], schema: ReadonlyMap<number, number>, allowUnknown: boolean): boolean {
  return fields.every((f) => {
    const wire = schema.get(f.field);
    return wire === undefined ? allowUnknown : wire === f.wire;
  });
}

function isSavedModel(source: ByteSource, fields: readonly WireField[]): boolean {
  if (!typedAsIn(fields, SAVED_MODEL_FIELDS, false)) return false;
  const metaGraph = fields.find((f) => f.field === 2);
  if (metaGraph === undefined) return false;
  const inner = walkFields(source, metaGraph.start, metaGraph.end, MAX_PROTOBUF_SNIFF_FIELDS);
  return inner.ok && inner.fields.length > 0 && typedAsIn(inner.fields, META_GRAPH_FIELDS, false);
}

/**
 * "onnx" when the whole source is a protobuf message whose ModelProto fields have ModelProto's
 * wire types and which has `ir_version` (1) or `graph` (7), in any order; "tensorflow-savedmodel"
 * when it is a SavedModel (only fields 1 and 2, the first MetaGraphDef readable as one);
 * undefined otherwise. A message with more than MAX_PROTOBUF_SNIFF_FIELDS fields whose first ones
 * all fit ModelProto is named ONNX: fail closed.
 */
export function protobufModelFormat(source: ByteSource): "onnx" | "tensorflow-savedmodel" | undefined {
  if (source.size === 0) return undefined;
  const walk = walkFields(source, 0, source.size, MAX_PROTOBUF_SNIFF_FIELDS);
  if (!walk.ok) return undefined;
  const { fields } = walk;
  if (!walk.truncated && isSavedModel(source, fields)) return "tensorflow-savedmodel";
  if (!typedAsIn(fields, ONNX_MODEL_FIELDS, true)) return undefined;
  if (!fields.some((f) => f.field === 1 || f.field === 7)) return undefined;
  return "onnx";
}
