/**
 * The symbolic values the machine keeps on its stack and memo. They are rich enough for container
 * parsers to read small structures (a joblib NumpyArrayWrapper's state dict, a torch persistent id
 * tuple) and cheap enough for a 100 MB pickle: containers retain at most a bounded number of items
 * (`truncated` is set when some were dropped), long strings keep only a prefix.
 */
export type SymbolicValue =
  | { kind: "none" }
  | { kind: "bool"; value: boolean }
  | { kind: "int"; value: bigint }
  | { kind: "float"; value: number }
  | { kind: "str"; value: string; truncated?: boolean }
  | { kind: "bytes"; length: number; value?: Uint8Array }
  | { kind: "tuple" | "list" | "set" | "frozenset"; items: SymbolicValue[]; truncated?: boolean }
  | { kind: "dict"; entries: [SymbolicValue, SymbolicValue][]; truncated?: boolean }
  | { kind: "global"; module: string; name: string }
  | { kind: "object"; callable: SymbolicValue; args: SymbolicValue; state?: SymbolicValue }
  | { kind: "persistent"; id: SymbolicValue }
  | { kind: "buffer" }
  | { kind: "unknown" };

export type SequenceValue = Extract<SymbolicValue, { items: SymbolicValue[] }>;
export type DictValue = Extract<SymbolicValue, { kind: "dict" }>;
export type ObjectValue = Extract<SymbolicValue, { kind: "object" }>;

export const NONE: SymbolicValue = Object.freeze({ kind: "none" });
export const TRUE: SymbolicValue = Object.freeze({ kind: "bool", value: true });
export const FALSE: SymbolicValue = Object.freeze({ kind: "bool", value: false });
export const UNKNOWN: SymbolicValue = Object.freeze({ kind: "unknown" });
export const BUFFER: SymbolicValue = Object.freeze({ kind: "buffer" });
/** Tuples are immutable in Python and in the machine: one shared empty tuple. */
export const EMPTY_TUPLE: SymbolicValue = Object.freeze({ kind: "tuple", items: Object.freeze([]) as unknown as SymbolicValue[] });

const SMALL_INTS: SymbolicValue[] = [];
for (let i = 0; i < 256; i++) SMALL_INTS.push(Object.freeze({ kind: "int", value: BigInt(i) }));

/** An int that fits a double: its bigint is made only when someone reads it (BigInt() is slow on the hot path). */
class NumberInt {
  readonly kind = "int" as const;
  constructor(private readonly n: number) {}
  get value(): bigint {
    return BigInt(this.n);
  }
  toJSON(): { kind: "int"; value: string } {
    return { kind: "int", value: this.n.toString() };
  }
}

/** An int value; small non-negative ints are shared so the hot path does not allocate. */
export function intValue(n: number): SymbolicValue {
  if (n >= 0 && n < 256) return SMALL_INTS[n] as SymbolicValue;
  return new NumberInt(n);
}

/** A short human rendering of a value for messages (bounded length, never raw bytes). */
export function describeValue(v: SymbolicValue, depth = 0): string {
  if (depth > 3) return "…";
  switch (v.kind) {
    case "none":
      return "None";
    case "bool":
      return v.value ? "True" : "False";
    case "int":
      return v.value.toString();
    case "float":
      return String(v.value);
    case "str":
      return JSON.stringify(v.value.length > 64 ? `${v.value.slice(0, 64)}…` : v.value) + (v.truncated === true ? "…" : "");
    case "bytes":
      return `<${v.length.toString()} bytes>`;
    case "tuple":
    case "list":
    case "set":
    case "frozenset": {
      const inner = v.items.slice(0, 8).map((x) => describeValue(x, depth + 1));
      if (v.items.length > 8 || v.truncated === true) inner.push("…");
      return v.kind === "list" ? `[${inner.join(", ")}]` : v.kind === "tuple" ? `(${inner.join(", ")})` : `${v.kind}{${inner.join(", ")}}`;
    }
    case "dict": {
      const inner = v.entries.slice(0, 8).map(([k, x]) => `${describeValue(k, depth + 1)}: ${describeValue(x, depth + 1)}`);
      if (v.entries.length > 8 || v.truncated === true) inner.push("…");
      return `{${inner.join(", ")}}`;
    }
    case "global":
      return `${v.module}.${v.name}`;
    case "object":
      return `${describeValue(v.callable, depth + 1)}(…)`;
    case "persistent":
      return `persistent(${describeValue(v.id, depth + 1)})`;
    case "buffer":
      return "<buffer>";
    case "unknown":
      return "<unknown>";
  }
}

/** The "module.name" a callable resolves to, when it is an import; undefined otherwise. */
export function globalName(v: SymbolicValue): string | undefined {
  return v.kind === "global" ? `${v.module}.${v.name}` : undefined;
}
