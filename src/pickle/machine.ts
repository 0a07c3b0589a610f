import { GatewayError } from "../errors";
import {
  MAX_LAZY_STRING_INDEX,
  MAX_MEMO_SHARED,
  MAX_MEMO_VALUES_KEPT,
  MAX_RETAINED_HARD,
  MAX_RETAINED_ITEMS,
  MAX_RETAINED_TOTAL,
  type PickleLimits,
} from "../limits";
import { PickleReader } from "./pickleReader";
import { isNumpyDtypeObject } from "./numpyDtype";
import { opcodeName } from "./opcodes";
import { BUFFER, EMPTY_TUPLE, FALSE, NONE, TRUE, UNKNOWN, intValue, type DictValue, type ObjectValue, type SymbolicValue } from "./values";

/**
 * The symbolic pickle machine: CPython's unpickler with every import and call replaced by a
 * symbol. It keeps the stack, the marks and the memo exactly as the unpickler does (same
 * underflow, mark and memo rules, MEMOIZE storing the object on top of the stack), so it knows
 * for every STACK_GLOBAL which string constants it consumes, wherever they came from.
 *
 * Memory stays bounded. Small containers (up to SMALL_CONTAINER items: shapes, persistent ids,
 * reduce arguments, state dicts) are kept whole until the stream has retained MAX_RETAINED_HARD
 * items. Larger containers keep at most MAX_RETAINED_ITEMS items each, and only while the stream
 * has retained fewer than MAX_RETAINED_TOTAL; past that they are marked `truncated`, and the memo
 * keeps a placeholder instead of a large container. Values the machine drops can only be data:
 * every import and call is reported as it happens, and memoized strings, which STACK_GLOBAL may
 * consume, are always recoverable (bounded by maxDecodedStringBytes).
 */

/** Containers up to this size are kept whole until MAX_RETAINED_HARD. */
export const SMALL_CONTAINER = 16;
/** What a persistent id memoized past MAX_MEMO_VALUES_KEPT is GET as (the event fired when it was read). */
const PERSISTENT_PLACEHOLDER: SymbolicValue = Object.freeze({ kind: "persistent", id: UNKNOWN });

/** Memo slot of a string kept as the offset of its opcode. */
const LAZY: SymbolicValue = Object.freeze({ kind: "unknown" });

/** What the analyzer hears from the machine. */
export interface MachineEvents {
  import(module: string, name: string, opcode: number, offset: number): void;
  unresolvedGlobal(module: SymbolicValue, name: SymbolicValue, offset: number): void;
  extension(code: number, opcode: number, offset: number): void;
  call(opcode: number, callable: SymbolicValue, offset: number): void;
  /** APPEND/SETITEM/ADDITEMS/BUILD applied directly to an imported object: mutation of module state. */
  mutateGlobal(opcode: number, target: SymbolicValue, offset: number): void;
  persistent(id: SymbolicValue, offset: number): void;
  /** After BUILD; `end` is the offset just after the opcode. */
  build(target: SymbolicValue, end: number): void;
  /** SETITEM/SETITEMS on a dict the analyzer froze (the fields dict of a checked numpy dtype, which numpy keeps by reference). */
  mutateFrozen(opcode: number, offset: number): void;
}

/**
 * The messages of the limits, shared with the value-light scanner (valueLightScanner.ts), which reports the
 * limits it reaches itself and must produce the machine's finding word for word.
 */
export const limitMessage = {
  ops: (max: number): string => `more than ${max.toString()} opcodes in one pickle (maxOpsPerStream)`,
  marks: (max: number): string => `MARK nesting deeper than ${max.toString()} (maxMarkDepth)`,
  stack: (max: number): string => `stack deeper than ${max.toString()} (maxStackDepth)`,
  memo: (max: number): string => `more than ${max.toString()} memo entries (maxMemoEntries)`,
  decoded: (max: number): string => `decoded strings exceed ${max.toString()} bytes (maxDecodedStringBytes)`,
  memoIndex: (index: number, opsBefore: number): string =>
    `memo index ${index.toString()} is beyond the ${opsBefore.toString()} opcodes before it: no pickler writes it, and CPython's unpickler would size its memo table by it (memo index rule)`,
};

export class LimitError extends GatewayError {
  constructor(message: string, offset: number) {
    super("limit_exceeded", `${message} at offset ${offset.toString()}`, { offset });
  }
}

function malformed(message: string, offset: number): never {
  throw new GatewayError("malformed_pickle", `${message} at offset ${offset.toString()}`, { offset });
}

export class PickleMachine {
  private stack: SymbolicValue[] = [];
  private marks: number[] = [];
  /** Stack length at the innermost MARK: items below it belong to an outer frame. */
  private fence = 0;
  /** The memo, indexed like CPython's (dense in practice); memoCount is len(memo). */
  private memo: (SymbolicValue | undefined)[] = [];
  private memoCount = 0;
  /**
   * Memoized strings are kept as the offset of the opcode that wrote them (memo slot = LAZY) and
   * decoded again from the source on their first GET: a data pickle memoizes millions of strings
   * that are never fetched, and keeping them as objects dominated the analysis time (GC).
   */
  private lazyOffsets = new Float64Array(1024);
  private lastStr: SymbolicValue | undefined = undefined;
  private lastStrOffset = 0;
  private side: PickleReader | undefined = undefined;
  private reader: PickleReader | undefined = undefined;
  private retainedItems = 0;
  /** Memo stores of this stream that kept their value (MAX_MEMO_VALUES_KEPT). */
  private memoValuesKept = 0;
  /** Past MAX_MEMO_VALUES_KEPT: one memo value per import, and per object callable (MAX_MEMO_SHARED). */
  private memoShared = new Map<string, SymbolicValue>();
  /** Decoded string/bytes argument bytes of the whole analysis (maxDecodedStringBytes). */
  decodedBytes = 0;
  /**
   * Opcodes of the earlier pickles of the sequence, set by the analyzer (the memo index rule spans
   * a sequence: a Pickler reused for several dump() calls numbers a later pickle's memo on).
   */
  opsBefore = 0;
  /** Protocol declared by the last PROTO (0 when none): decides the Python 2 name fixes. */
  protocol = 0;
  ops = 0;
  /**
   * numpy dtype objects referenced again (memo GET, DUP) before a BUILD set their state: numpy
   * writes a dtype's BUILD right after the dtype, so a later BUILD would change a dtype that an
   * array, scalar or structured dtype already uses (the analyzer rejects it: unsafe_dtype).
   */
  readonly dtypesReferencedBeforeBuild = new WeakSet();
  /** Dicts that must not change any more (see `freeze`); undefined until one is frozen, so data pickles pay nothing. */
  private frozenDicts: WeakSet<object> | undefined = undefined;

  constructor(
    private readonly limits: PickleLimits,
    private readonly events: MachineEvents,
    private readonly deadline: number,
  ) {}

  /**
   * Run one pickle from the reader's position to its STOP and return the value STOP pops.
   * Throws GatewayError malformed_pickle / limit_exceeded where the stream breaks.
   * The hot opcodes (what protocols 2 to 5 write for data) are handled inline; the rest in `rare`.
   */
  run(reader: PickleReader): SymbolicValue {
    this.reader = reader;
    // Case labels are opcode bytes as literals (named in comments, see opcodes.ts): V8 compiles a
    // switch over literals to a jump table, over `OP.X` property loads to a chain of compares.
    const stack = this.stack;
    const limits = this.limits;
    const maxOps = limits.maxOpsPerStream;
    const maxStack = limits.maxStackDepth;
    const ev = this.events;
    for (;;) {
      const op = reader.next();
      const offset = reader.offset;
      if (++this.ops > maxOps) throw new LimitError(limitMessage.ops(maxOps), offset);
      if ((this.ops & 0xffff) === 0 && Date.now() > this.deadline) {
        throw new LimitError(`analysis exceeded its time budget of ${limits.timeBudgetMs.toString()} ms (timeBudgetMs)`, offset);
      }
      switch (op) {
        case 0x28 /* MARK */:
          if (this.marks.length >= limits.maxMarkDepth) throw new LimitError(limitMessage.marks(limits.maxMarkDepth), offset);
          this.marks.push(stack.length);
          this.fence = stack.length;
          break;
        case 0x2e /* STOP */: {
          const v = this.pop(offset);
          // A frame that extends past STOP: the C unpickler stops at STOP, Python's _Unframer has
          // already consumed the whole frame; the next pickle would start at different offsets.
          if (reader.frameEnd > reader.pos) malformed("FRAME extends past STOP", offset);
          return v;
        }
        case 0x4a /* BININT */:
        case 0x4b /* BININT1 */:
        case 0x4d /* BININT2 */:
          stack.push(intValue(reader.num));
          break;
        case 0x47 /* BINFLOAT */:
          stack.push({ kind: "float", value: reader.float });
          break;
        case 0x4e /* NONE */:
          stack.push(NONE);
          break;
        case 0x88 /* NEWTRUE */:
          stack.push(TRUE);
          break;
        case 0x89 /* NEWFALSE */:
          stack.push(FALSE);
          break;
        case 0x54 /* BINSTRING */:
        case 0x55 /* SHORT_BINSTRING */:
        case 0x58 /* BINUNICODE */:
        case 0x8c /* SHORT_BINUNICODE */:
        case 0x8d /* BINUNICODE8 */:
          this.decoded(reader.str.length, offset);
          {
            const v: SymbolicValue = reader.truncated ? { kind: "str", value: reader.str, truncated: true } : { kind: "str", value: reader.str };
            this.lastStr = v;
            this.lastStrOffset = offset;
            stack.push(v);
          }
          break;
        case 0x42 /* BINBYTES */:
        case 0x43 /* SHORT_BINBYTES */:
        case 0x8e /* BINBYTES8 */:
        case 0x96 /* BYTEARRAY8 */: {
          const bytes = reader.bytes;
          if (!reader.truncated && bytes !== undefined) {
            this.decoded(bytes.length, offset);
            stack.push({ kind: "bytes", length: reader.num, value: bytes });
          } else stack.push({ kind: "bytes", length: reader.num });
          break;
        }
        case 0x68 /* BINGET */:
        case 0x6a /* LONG_BINGET */:
        case 0x67 /* GET */: {
          let v = this.memo[reader.num];
          if (v === undefined) malformed(`memo value not found at index ${reader.num.toString()}`, offset);
          if (v === LAZY) v = this.materialize(reader.num);
          else if (v.kind === "object" && v.state === undefined) this.noteUnbuiltReference(v);
          stack.push(v);
          break;
        }
        case 0x71 /* BINPUT */:
        case 0x72 /* LONG_BINPUT */:
        case 0x70 /* PUT */:
          this.memoPut(reader.num, this.top(offset), offset);
          break;
        case 0x94 /* MEMOIZE */:
          // CPython: memo[len(memo)] = stack[-1] — the object on top, whatever opcode came before.
          this.memoPut(this.memoCount, this.top(offset), offset);
          break;
        case 0x7d /* EMPTY_DICT */:
          stack.push({ kind: "dict", entries: [], truncated: false });
          break;
        case 0x5d /* EMPTY_LIST */:
          stack.push({ kind: "list", items: [], truncated: false });
          break;
        case 0x29 /* EMPTY_TUPLE */:
          stack.push(EMPTY_TUPLE);
          break;
        case 0x73 /* SETITEM */: {
          const v = this.pop(offset);
          const k = this.pop(offset);
          const d = this.top(offset);
          if (d.kind === "dict") {
            if (this.frozenDicts?.has(d) === true) ev.mutateFrozen(op, offset);
            this.retainEntry(d, k, v);
          } else if (d.kind === "global") ev.mutateGlobal(op, d, offset);
          else if (d.kind === "unknown" && this.frozenDicts !== undefined) ev.mutateFrozen(op, offset); // a memo placeholder may stand for a frozen dict
          break;
        }
        case 0x75 /* SETITEMS */: {
          const mark = this.popMarkIndex(offset);
          if ((stack.length - mark) % 2 !== 0) malformed("odd number of items for SETITEMS", offset);
          const d = this.belowMark(mark, offset);
          if (d.kind === "dict") {
            if (this.frozenDicts?.has(d) === true) ev.mutateFrozen(op, offset);
            const pairs = (stack.length - mark) / 2;
            if (d.entries.length === 0 && pairs <= SMALL_CONTAINER && this.retainedItems < MAX_RETAINED_HARD) {
              // The common case (CPython writes EMPTY_DICT, MARK, pairs, SETITEMS): one exact-size array.
              const entries = new Array<[SymbolicValue, SymbolicValue]>(pairs);
              for (let k = 0; k < pairs; k++) entries[k] = [stack[mark + 2 * k] as SymbolicValue, stack[mark + 2 * k + 1] as SymbolicValue];
              d.entries = entries;
              this.retainedItems += pairs;
            } else for (let k = mark; k < stack.length; k += 2) this.retainEntry(d, stack[k] as SymbolicValue, stack[k + 1] as SymbolicValue);
          } else if (d.kind === "global") ev.mutateGlobal(op, d, offset);
          else if (d.kind === "unknown" && this.frozenDicts !== undefined) ev.mutateFrozen(op, offset);
          stack.length = mark;
          break;
        }
        case 0x61 /* APPEND */: {
          const v = this.pop(offset);
          const list = this.top(offset);
          if (list.kind === "list") this.retain(list.items, v, list);
          else if (list.kind === "global") ev.mutateGlobal(op, list, offset);
          break;
        }
        case 0x65 /* APPENDS */: {
          const mark = this.popMarkIndex(offset);
          const list = this.belowMark(mark, offset);
          if (list.kind === "list") for (let k = mark; k < stack.length; k++) this.retain(list.items, stack[k] as SymbolicValue, list);
          else if (list.kind === "global") ev.mutateGlobal(op, list, offset);
          stack.length = mark;
          break;
        }
        case 0x74 /* TUPLE */:
          stack.push(this.sequence("tuple", this.popMark(offset)));
          break;
        case 0x85 /* TUPLE1 */: {
          const a = this.pop(offset);
          stack.push({ kind: "tuple", items: [a], truncated: false });
          break;
        }
        case 0x86 /* TUPLE2 */: {
          const b = this.pop(offset);
          const a = this.pop(offset);
          stack.push({ kind: "tuple", items: [a, b], truncated: false });
          break;
        }
        case 0x87 /* TUPLE3 */: {
          const c = this.pop(offset);
          const b = this.pop(offset);
          const a = this.pop(offset);
          stack.push({ kind: "tuple", items: [a, b, c], truncated: false });
          break;
        }
        case 0x52 /* REDUCE */:
        case 0x81 /* NEWOBJ */: {
          const args = this.pop(offset);
          const callable = this.pop(offset);
          ev.call(op, callable, offset);
          stack.push({ kind: "object", callable, args });
          break;
        }
        case 0x62 /* BUILD */: {
          const state = this.pop(offset);
          const target = this.top(offset);
          if (target.kind === "object") {
            target.state = state;
            ev.call(op, target.callable, offset);
          } else if (target.kind === "global") ev.mutateGlobal(op, target, offset);
          ev.build(target, reader.pos);
          break;
        }
        case 0x63 /* GLOBAL */:
          this.decoded(reader.str.length + reader.str2.length, offset);
          ev.import(reader.str, reader.str2, op, offset);
          stack.push({ kind: "global", module: reader.str, name: reader.str2 });
          break;
        case 0x93 /* STACK_GLOBAL */: {
          const name = this.pop(offset);
          const module = this.pop(offset);
          if (module.kind === "str" && name.kind === "str" && module.truncated !== true && name.truncated !== true) {
            ev.import(module.value, name.value, op, offset);
            stack.push({ kind: "global", module: module.value, name: name.value });
          } else {
            ev.unresolvedGlobal(module, name, offset);
            stack.push(UNKNOWN);
          }
          break;
        }
        case 0x30 /* POP */:
          if (stack.length > this.fence) stack.pop();
          else if (this.marks.length > 0) this.popMarkIndex(offset);
          else malformed("POP on an empty stack", offset);
          break;
        case 0x32 /* DUP */: {
          const v = this.top(offset);
          if (v.kind === "object" && v.state === undefined) this.noteUnbuiltReference(v);
          stack.push(v);
          break;
        }
        case 0x95 /* FRAME */:
          break;
        default:
          this.rare(op, reader, offset);
      }
      if (stack.length > maxStack) throw new LimitError(limitMessage.stack(maxStack), offset);
    }
  }

  /** Opcodes that real data pickles rarely use (protocol 0/1 text forms, objects, sets, buffers). */
  private rare(op: number, reader: PickleReader, offset: number): void {
    const stack = this.stack;
    const ev = this.events;
    switch (op) {
      case 0x31 /* POP_MARK */:
        this.popMark(offset);
        break;
      case 0x46 /* FLOAT */:
        stack.push({ kind: "float", value: reader.float });
        break;
      case 0x49 /* INT */:
        if (reader.str === "bool") stack.push(reader.num === 1 ? TRUE : FALSE);
        else stack.push(reader.small ? intValue(reader.num) : { kind: "int", value: reader.big ?? 0n });
        break;
      case 0x4c /* LONG */:
      case 0x8a /* LONG1 */:
      case 0x8b /* LONG4 */:
        stack.push(reader.big === undefined ? UNKNOWN : { kind: "int", value: reader.big });
        break;
      case 0x53 /* STRING */:
      case 0x56 /* UNICODE */:
        this.decoded(reader.str.length, offset);
        stack.push(reader.truncated ? { kind: "str", value: reader.str, truncated: true } : { kind: "str", value: reader.str });
        break;
      case 0x50 /* PERSID */: {
        this.decoded(reader.str.length, offset);
        const id: SymbolicValue = { kind: "str", value: reader.str };
        ev.persistent(id, offset);
        stack.push({ kind: "persistent", id });
        break;
      }
      case 0x51 /* BINPERSID */: {
        const id = this.pop(offset);
        ev.persistent(id, offset);
        stack.push({ kind: "persistent", id });
        break;
      }
      case 0x69 /* INST */: {
        this.decoded(reader.str.length + reader.str2.length, offset);
        ev.import(reader.str, reader.str2, op, offset);
        const callable: SymbolicValue = { kind: "global", module: reader.str, name: reader.str2 };
        const args = this.popMark(offset);
        ev.call(op, callable, offset);
        stack.push({ kind: "object", callable, args: this.sequence("tuple", args) });
        break;
      }
      case 0x6f /* OBJ */: {
        const items = this.popMark(offset);
        const callable = items[0];
        if (callable === undefined) malformed("OBJ without a class after its MARK", offset);
        ev.call(op, callable, offset);
        stack.push({ kind: "object", callable, args: this.sequence("tuple", items.slice(1)) });
        break;
      }
      case 0x92 /* NEWOBJ_EX */: {
        this.pop(offset); // kwargs
        const args = this.pop(offset);
        const callable = this.pop(offset);
        ev.call(op, callable, offset);
        stack.push({ kind: "object", callable, args });
        break;
      }
      case 0x82 /* EXT1 */:
      case 0x83 /* EXT2 */:
      case 0x84 /* EXT4 */:
        ev.extension(reader.num, op, offset);
        stack.push(UNKNOWN);
        break;
      case 0x64 /* DICT */: {
        const items = this.popMark(offset);
        if (items.length % 2 !== 0) malformed("odd number of items for DICT", offset);
        const d: DictValue = { kind: "dict", entries: [], truncated: false };
        for (let k = 0; k < items.length; k += 2) this.retainEntry(d, items[k] as SymbolicValue, items[k + 1] as SymbolicValue);
        stack.push(d);
        break;
      }
      case 0x6c /* LIST */:
        stack.push(this.sequence("list", this.popMark(offset)));
        break;
      case 0x8f /* EMPTY_SET */:
        stack.push({ kind: "set", items: [], truncated: false });
        break;
      case 0x90 /* ADDITEMS */: {
        const mark = this.popMarkIndex(offset);
        const s = this.belowMark(mark, offset);
        if (s.kind === "set") for (let k = mark; k < stack.length; k++) this.retain(s.items, stack[k] as SymbolicValue, s);
        else if (s.kind === "global") ev.mutateGlobal(op, s, offset);
        stack.length = mark;
        break;
      }
      case 0x91 /* FROZENSET */:
        stack.push(this.sequence("frozenset", this.popMark(offset)));
        break;
      case 0x80 /* PROTO */:
        this.protocol = reader.num;
        break;
      case 0x97 /* NEXT_BUFFER */:
        stack.push(BUFFER);
        break;
      case 0x98 /* READONLY_BUFFER */:
        this.top(offset);
        break;
      default:
        malformed(`unhandled opcode ${opcodeName(op)}`, offset);
    }
  }

  /**
   * numpy's dtype.__setstate__ keeps the fields dict of its state by reference: a SETITEM on it
   * after the BUILD changes the fields of a checked dtype (a plain field turned into an object
   * field under flags that say "no objects"). The analyzer freezes it once the state is checked.
   * Past the retention budget the memo keeps dicts as unknown placeholders (`lightweight`), so once
   * a dict is frozen a SETITEM(S) on an unknown value counts as a change too (CPython's pickler
   * never sets items on a dict fetched from the memo).
   */
  freeze(d: DictValue): void {
    (this.frozenDicts ??= new WeakSet()).add(d);
  }

  private noteUnbuiltReference(v: ObjectValue): void {
    if (isNumpyDtypeObject(v)) this.dtypesReferencedBeforeBuild.add(v);
  }

  private decoded(bytes: number, offset: number): void {
    this.decodedBytes += bytes;
    if (this.decodedBytes > this.limits.maxDecodedStringBytes) {
      throw new LimitError(limitMessage.decoded(this.limits.maxDecodedStringBytes), offset);
    }
  }

  /** Forget the stack, marks and memo: a new pickle of a sequence starts from nothing. */
  reset(): void {
    this.stack.length = 0;
    this.marks.length = 0;
    this.fence = 0;
    this.memo = [];
    this.memoCount = 0;
    this.lastStr = undefined;
    this.retainedItems = 0;
    this.memoValuesKept = 0;
    this.memoShared.clear();
    this.protocol = 0;
    this.ops = 0;
  }

  private pop(offset: number): SymbolicValue {
    if (this.stack.length <= this.fence) malformed("unpickling stack underflow", offset);
    return this.stack.pop() as SymbolicValue;
  }

  private top(offset: number): SymbolicValue {
    if (this.stack.length <= this.fence) malformed("unpickling stack underflow", offset);
    return this.stack[this.stack.length - 1] as SymbolicValue;
  }

  /** The object just below a popped mark (the list of APPENDS, the dict of SETITEMS), in the enclosing frame. */
  private belowMark(mark: number, offset: number): SymbolicValue {
    if (mark <= this.fence) malformed("unpickling stack underflow", offset);
    return this.stack[mark - 1] as SymbolicValue;
  }

  /** Remove the innermost MARK and return the stack index it pointed at (items since it are still on the stack). */
  private popMarkIndex(offset: number): number {
    const mark = this.marks.pop();
    if (mark === undefined) malformed("could not find MARK", offset);
    this.fence = this.marks.length > 0 ? (this.marks[this.marks.length - 1] as number) : 0;
    return mark;
  }

  /** Items pushed since the innermost MARK, which is removed. */
  private popMark(offset: number): SymbolicValue[] {
    return this.stack.splice(this.popMarkIndex(offset));
  }

  private memoPut(index: number, v: SymbolicValue, offset: number): void {
    // The memo index rule (README "Memo index rule"): _pickle.c _Unpickler_MemoPut resizes its
    // table to (index + 1) * 2 pointers, so LONG_BINPUT 0xffffffff asks for 64 GiB. A pickler's
    // index counts objects memoized before (len(memo), 1-based in Python 2's cPickle), each pushed
    // by an opcode of this sequence: it never exceeds the opcodes before the PUT.
    const opsBefore = this.opsBefore + this.ops - 1;
    if (index > opsBefore) throw new LimitError(limitMessage.memoIndex(index, opsBefore), offset);
    const memo = this.memo;
    if (memo[index] === undefined) {
      if (this.memoCount >= this.limits.maxMemoEntries) {
        throw new LimitError(limitMessage.memo(this.limits.maxMemoEntries), offset);
      }
      this.memoCount++;
    }
    // Lazy for indices below MAX_LAZY_STRING_INDEX: the memo index rule above bounds the index by the
    // opcodes read, so the offsets array (8 bytes per index) grows with the input, never past 128 MiB.
    if (v === this.lastStr && index < MAX_LAZY_STRING_INDEX) {
      if (index >= this.lazyOffsets.length) {
        let size = this.lazyOffsets.length * 2;
        while (size <= index) size *= 2;
        const grown = new Float64Array(Math.min(MAX_LAZY_STRING_INDEX, size));
        grown.set(this.lazyOffsets);
        this.lazyOffsets = grown;
      }
      this.lazyOffsets[index] = this.lastStrOffset;
      memo[index] = LAZY;
      return;
    }
    if (this.memoValuesKept >= MAX_MEMO_VALUES_KEPT) {
      memo[index] = this.memoPlaceholder(v);
      return;
    }
    this.memoValuesKept++;
    memo[index] = this.retainedItems < MAX_RETAINED_TOTAL ? v : lightweight(v);
  }

  /**
   * What the memo keeps past MAX_MEMO_VALUES_KEPT, with no allocation per entry: what the events
   * depend on, shared. Constants stay; a string that is not kept as an offset (an index past
   * MAX_LAZY_STRING_INDEX, a string fetched and memoized again) becomes unknown, which fails closed:
   * STACK_GLOBAL on it is an unresolved_global (no pickler writes either); an import is
   * stored as the first value of that module and name (calls, BUILD and mutations name it), an
   * object as one placeholder per callable (BUILD counts a call of it), a persistent id as one
   * placeholder (its event fired when it was read); any other value becomes unknown, as containers
   * do past the retention budget (`lightweight`): CPython's pickler memoizes no scalars, and a
   * container GET from past the budget is only data. Past MAX_MEMO_SHARED distinct imports or
   * callables, unknown too: every import was classified when it was read.
   */
  private memoPlaceholder(v: SymbolicValue): SymbolicValue {
    switch (v.kind) {
      case "none":
      case "bool":
      case "unknown":
      case "buffer":
        return v;
      case "persistent":
        return PERSISTENT_PLACEHOLDER;
      case "global":
        return this.shared(`g\n${v.module}\n${v.name}`, v);
      case "object": {
        const c = v.callable;
        const key = c.kind === "global" ? `o\n${c.module}\n${c.name}` : `o\n${c.kind}`;
        return this.memoShared.get(key) ?? this.shared(key, { kind: "object", callable: c, args: UNKNOWN });
      }
      default:
        return v === EMPTY_TUPLE ? v : UNKNOWN;
    }
  }

  /** The memo's shared value for `key`, made `v` on first use; unknown past MAX_MEMO_SHARED keys. */
  private shared(key: string, v: SymbolicValue): SymbolicValue {
    const known = this.memoShared.get(key);
    if (known !== undefined) return known;
    if (this.memoShared.size >= MAX_MEMO_SHARED) return UNKNOWN;
    this.memoShared.set(key, v);
    return v;
  }

  /** Decode a lazily memoized string again from its opcode (validated when it was first read). */
  private materialize(index: number): SymbolicValue {
    const main = this.reader;
    if (main === undefined) return UNKNOWN;
    this.side ??= new PickleReader(main.source, 0, main.end, this.limits.maxRetainedArgumentBytes, 256);
    const side = this.side;
    side.frameEnd = -1;
    side.seek(this.lazyOffsets[index] as number);
    side.next();
    const v: SymbolicValue = side.truncated ? { kind: "str", value: side.str, truncated: true } : { kind: "str", value: side.str };
    this.memo[index] = v;
    return v;
  }

  private sequence(kind: "tuple" | "list" | "frozenset", items: SymbolicValue[]): SymbolicValue {
    if (items.length === 0 && kind === "tuple") return EMPTY_TUPLE;
    if (items.length <= SMALL_CONTAINER && this.retainedItems < MAX_RETAINED_HARD) {
      this.retainedItems += items.length;
      return { kind, items, truncated: false };
    }
    const room = Math.min(MAX_RETAINED_ITEMS, MAX_RETAINED_TOTAL - this.retainedItems);
    if (items.length <= room) {
      this.retainedItems += items.length;
      return { kind, items, truncated: false };
    }
    const kept = room > 0 ? items.slice(0, room) : [];
    this.retainedItems += kept.length;
    return { kind, items: kept, truncated: true };
  }

  /** Whether a container that holds `size` items may keep one more. */
  private mayRetain(size: number): boolean {
    const total = this.retainedItems;
    return size < SMALL_CONTAINER ? total < MAX_RETAINED_HARD : size < MAX_RETAINED_ITEMS && total < MAX_RETAINED_TOTAL;
  }

  private retain(items: SymbolicValue[], v: SymbolicValue, owner: { truncated?: boolean }): void {
    if (this.mayRetain(items.length)) {
      items.push(v);
      this.retainedItems++;
    } else owner.truncated = true;
  }

  private retainEntry(d: DictValue, k: SymbolicValue, v: SymbolicValue): void {
    if (this.mayRetain(d.entries.length)) {
      d.entries.push([k, v]);
      this.retainedItems++;
    } else d.truncated = true;
  }
}

/**
 * What the memo keeps once the large-container budget is spent: strings, globals, scalars and
 * objects as they are (STACK_GLOBAL, calls and container parsers need them: a joblib dtype is
 * memoized and fetched again for every array), small tuples whole, other containers as unknown.
 */
function lightweight(v: SymbolicValue): SymbolicValue {
  switch (v.kind) {
    case "tuple":
      return v.items.length <= SMALL_CONTAINER ? v : UNKNOWN;
    case "list":
    case "set":
    case "frozenset":
    case "dict":
      return UNKNOWN;
    default:
      return v;
  }
}
