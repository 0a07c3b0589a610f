import { Cursor } from "../bytes/cursor";
import type { ByteSource } from "../bytes/source";
import { DEFAULT_CONTENT_POLICY, type ContentPolicy } from "../inspect/policy";
import type { InspectionNode } from "../inspect/report";
import type { PickleLimits } from "../limits";
import { analyzePickle } from "./analyzer";
import { OP } from "./opcodes";
import { makePicklePolicy } from "./policy";

/** Inspect a file (or member) that is a pickle, or a sequence of pickles, to its last byte. */
export function inspectPickleSource(
  source: ByteSource,
  path: string,
  opts: { policy: ContentPolicy; limits?: Partial<PickleLimits>; extraAllowGlobals?: string[] },
): InspectionNode {
  const policy = makePicklePolicy(opts.policy, opts.extraAllowGlobals);
  const cursor = new Cursor(source, { errorCode: "malformed_pickle", what: "pickle" });
  const analysis = analyzePickle(
    cursor,
    opts.limits === undefined ? { policy, location: path, valueFree: true } : { policy, location: path, limits: opts.limits, valueFree: true },
  );
  return analysis.node;
}

/** Opcodes a pickle can start with: PROTO, or any opcode that pushes a value onto an empty stack (pickle.load does not require PROTO first). */
const FIRST_OPCODES: ReadonlySet<number> = new Set<number>([
  OP.PROTO,
  OP.MARK,
  OP.EMPTY_LIST,
  OP.EMPTY_DICT,
  OP.EMPTY_TUPLE,
  OP.NONE,
  OP.INT,
  OP.LONG,
  OP.FLOAT,
  OP.STRING,
  OP.UNICODE,
  OP.GLOBAL,
  OP.BININT,
  OP.BININT1,
  OP.BININT2,
  OP.BINSTRING,
  OP.SHORT_BINSTRING,
  OP.BINUNICODE,
  OP.BINFLOAT,
  OP.PERSID,
  // Protocol 2+ opcodes need no PROTO before them: pickle.load runs a stream that starts with
  // them (a SHORT_BINBYTES of printable length keeps a whole pickle in ASCII text).
  OP.SHORT_BINBYTES,
  OP.BINBYTES,
  OP.BINBYTES8,
  OP.BYTEARRAY8,
  OP.SHORT_BINUNICODE,
  OP.BINUNICODE8,
  OP.EMPTY_SET,
  OP.NEWTRUE,
  OP.NEWFALSE,
  OP.LONG1,
  OP.LONG4,
  OP.FRAME,
  OP.EXT1,
  OP.EXT2,
  OP.EXT4,
]);

/** Bounds of the sniff: it must stay cheap next to a real inspection. */
const SNIFF_LIMITS: Partial<PickleLimits> = { maxOpsPerStream: 1_000_000, timeBudgetMs: 5_000 };

/**
 * Whether the source starts with a well-formed pickle: the first opcode is
 * plausible and the first pickle parses to its STOP without malformed findings (bounded: reaching the sniff's op budget counts
 * as a pickle, and the real inspection then reads the rest).
 */
export function startsWithWellFormedPickle(source: ByteSource): boolean {
  if (source.size < 2) return false;
  const first = new Uint8Array(2);
  if (source.readAt(first, 0) < 2) return false;
  const op = first[0] as number;
  if (!FIRST_OPCODES.has(op)) return false;
  if (op === OP.PROTO && (first[1] as number) > 5) return false;
  const cursor = new Cursor(source, { errorCode: "malformed_pickle", what: "pickle" });
  const { node } = analyzePickle(cursor, { policy: makePicklePolicy(DEFAULT_CONTENT_POLICY), location: "", single: true, limits: SNIFF_LIMITS });
  return !node.findings.some((f) => f.severity === "malformed" && f.code !== "limit_exceeded");
}
