import { Cursor } from "../../src/bytes/cursor";
import { GatewayError } from "../../src/errors";
import { disassemble, type DisassembledOp } from "../../src/pickle/pickleReader";
import { OPCODES } from "../../src/pickle/opcodes";
import { buildPickle, concat, framed, type PickleOp } from "./builders";

function dis(bytes: Uint8Array): DisassembledOp[] {
  return disassemble(Cursor.ofBytes(bytes, { errorCode: "malformed_pickle" }));
}

function errorOf(bytes: Uint8Array): { code: string; offset: unknown } | undefined {
  try {
    dis(bytes);
  } catch (err) {
    if (err instanceof GatewayError) return { code: err.code, offset: err.details?.offset };
    throw err;
  }
  return undefined;
}

const enc = new TextEncoder();

describe("opcode table", () => {
  it("has every opcode of protocols 0 to 5 exactly once", () => {
    expect(OPCODES).toHaveLength(68);
    expect(new Set(OPCODES.map((o) => o.code)).size).toBe(68);
    expect(Math.max(...OPCODES.map((o) => o.protocol))).toBe(5);
  });
});

describe("disassembler: every opcode with its decoded argument", () => {
  const cases: [PickleOp, unknown][] = [
    [["MARK"], null],
    [["POP"], null],
    [["POP_MARK"], null],
    [["DUP"], null],
    [["FLOAT", "1.5"], 1.5],
    [["INT", 42], 42],
    [["INT", true], true],
    [["INT", false], false],
    [["INT", "-12345678901234567890"], -12345678901234567890n],
    [["BININT", -2], -2],
    [["BININT1", 200], 200],
    [["LONG", 12345678901234567890n], 12345678901234567890n],
    [["BININT2", 65535], 65535],
    [["NONE"], null],
    [["PERSID", "storage0"], "storage0"],
    [["BINPERSID"], null],
    [["REDUCE"], null],
    [["STRING", "'a\\x41\\n\\'b'"], "aA\n'b"],
    [["BINSTRING", "py2str"], "py2str"],
    [["SHORT_BINSTRING", "s"], "s"],
    [["UNICODE", "snow \\u2603 \\U0001F600"], "snow \u2603 \u{1F600}"],
    [["BINUNICODE", "h\u00e9llo"], "h\u00e9llo"],
    [["APPEND"], null],
    [["BUILD"], null],
    [
      ["GLOBAL", "collections", "OrderedDict"],
      ["collections", "OrderedDict"],
    ],
    [["DICT"], null],
    [["EMPTY_DICT"], null],
    [["APPENDS"], null],
    [["GET", 3], 3],
    [["BINGET", 4], 4],
    [
      ["INST", "m", "C"],
      ["m", "C"],
    ],
    [["LONG_BINGET", 70000], 70000],
    [["LIST"], null],
    [["EMPTY_LIST"], null],
    [["OBJ"], null],
    [["PUT", 5], 5],
    [["BINPUT", 6], 6],
    [["LONG_BINPUT", 0xfffffffe], 0xfffffffe],
    [["SETITEM"], null],
    [["TUPLE"], null],
    [["EMPTY_TUPLE"], null],
    [["SETITEMS"], null],
    [["BINFLOAT", -0.25], -0.25],
    [["PROTO", 5], 5],
    [["NEWOBJ"], null],
    [["EXT1", 1], 1],
    [["EXT2", 513], 513],
    [["EXT4", 70000], 70000],
    [["TUPLE1"], null],
    [["TUPLE2"], null],
    [["TUPLE3"], null],
    [["NEWTRUE"], null],
    [["NEWFALSE"], null],
    [["LONG1", -129n], -129n],
    [["LONG4", 2n ** 70n], 2n ** 70n],
    [["BINBYTES", new Uint8Array([1, 2, 3])], { length: 3, truncated: false }],
    [["SHORT_BINBYTES", new Uint8Array([9])], { length: 1, truncated: false }],
    [["SHORT_BINUNICODE", "x"], "x"],
    [["BINUNICODE8", "long"], "long"],
    [["BINBYTES8", new Uint8Array(10)], { length: 10, truncated: false }],
    [["EMPTY_SET"], null],
    [["ADDITEMS"], null],
    [["FROZENSET"], null],
    [["NEWOBJ_EX"], null],
    [["STACK_GLOBAL"], null],
    [["MEMOIZE"], null],
    [["BYTEARRAY8", new Uint8Array(2)], { length: 2, truncated: false }],
    [["NEXT_BUFFER"], null],
    [["READONLY_BUFFER"], null],
  ];
  it.each(cases.map(([op, arg]) => [Array.isArray(op) ? op[0] : "raw", op, arg] as const))("%s decodes its argument", (_name, op, arg) => {
    const ops = dis(buildPickle([op, ["STOP"]]));
    expect(ops[0]?.arg).toEqual(arg);
    expect(ops[1]).toEqual({ offset: buildPickle([op]).length, name: "STOP", arg: null });
  });

  it("covers every opcode of the table (FRAME and STOP separately)", () => {
    const names = new Set(cases.map(([op]) => (Array.isArray(op) ? op[0] : "")));
    expect(OPCODES.filter((o) => !names.has(o.name as never)).map((o) => o.name)).toEqual(["STOP", "FRAME"]);
  });

  it("reports offsets and stops at the first STOP", () => {
    const bytes = buildPickle([["PROTO", 4], ...framed([["NONE"], ["STOP"]]), ["NONE"]]);
    expect(dis(bytes).map((o) => [o.offset, o.name])).toEqual([
      [0, "PROTO"],
      [2, "FRAME"],
      [11, "NONE"],
      [12, "STOP"],
    ]);
  });

  it("keeps only a prefix of a long argument and skips the rest by length", () => {
    const long = "x".repeat(100);
    const ops = disassemble(Cursor.ofBytes(buildPickle([["BINUNICODE", long], ["STOP"]])), { maxRetained: 10 });
    expect(ops[0]?.arg).toEqual({ length: 100, truncated: true, text: "xxxxxxxxxx" });
    expect(ops[1]?.name).toBe("STOP");
  });
});

describe("disassembler: malformed streams", () => {
  it.each<[string, Uint8Array, number]>([
    ["empty input", new Uint8Array(0), 0],
    ["no STOP", buildPickle([["PROTO", 2], ["NONE"]]), 3],
    ["unknown opcode", buildPickle([["PROTO", 2], { raw: "\xff" }, ["STOP"]]), 2],
    ["PROTO above 5", buildPickle([["PROTO", 6], ["NONE"], ["STOP"]]), 0],
    ["truncated BININT", buildPickle([{ raw: "J\x01\x02" }]), 0],
    ["truncated FRAME header", buildPickle([["PROTO", 4], { raw: "\x95\x01\x00" }]), 2],
    ["BINUNICODE length beyond the end", buildPickle([{ raw: "X\xff\x00\x00\x00abc" }]), 0],
    ["BINBYTES8 length of 2^52", buildPickle([{ raw: "\x8e\x00\x00\x00\x00\x00\x00\x10\x00" }]), 0],
    ["BINBYTES8 length beyond 2^53", buildPickle([{ raw: "\x8e\x00\x00\x00\x00\x00\x00\x00\x01" }]), 0],
    ["negative BINSTRING length", buildPickle([{ raw: "T\xff\xff\xff\xff" }]), 0],
    ["negative LONG4 length", buildPickle([{ raw: "\x8b\xff\xff\xff\xff" }]), 0],
    ["INT that is not a number", buildPickle([{ raw: "Iabc\n." }]), 0],
    ["INT in C's base-0 hex form without digits", buildPickle([{ raw: "I0x\n." }]), 0],
    ["LONG that is not a number", buildPickle([{ raw: "L12x\n." }]), 0],
    ["FLOAT that is not a number", buildPickle([{ raw: "Fnope\n." }]), 0],
    ["GET with a negative index", buildPickle([{ raw: "g-1\n." }]), 0],
    ["STRING without quotes", buildPickle([{ raw: "Sabc\n." }]), 0],
    ["STRING with a bad \\x escape", buildPickle([{ raw: "S'\\xZZ'\n." }]), 0],
    ["UNICODE with a truncated \\u escape", buildPickle([{ raw: "V\\u12\n." }]), 0],
    ["GLOBAL that is not UTF-8", buildPickle([{ raw: "cmod\xff\nname\n." }]), 0],
    ["GLOBAL without its second line", buildPickle([{ raw: "cmodule\nname" }]), 0],
    ["PERSID that is not ASCII", buildPickle([{ raw: "P\xe9\n." }]), 0],
    ["BINUNICODE that is not UTF-8", buildPickle([["BINUNICODE", new Uint8Array([0xc3, 0x28])], ["STOP"]]), 0],
  ])("%s is malformed_pickle at its offset", (_name, bytes, offset) => {
    expect(errorOf(bytes)).toEqual({ code: "malformed_pickle", offset });
  });

  it("GLOBAL lines longer than the retained-argument bound are malformed, not allocated", () => {
    const bytes = buildPickle([["GLOBAL", "m".repeat(50), "n"], ["STOP"]]);
    expect(() => disassemble(Cursor.ofBytes(bytes), { maxRetained: 20 })).toThrow(GatewayError);
  });
});

describe("framing (CPython's _Unframer rules)", () => {
  it("accepts frames that end on opcode boundaries, and ops outside frames (large bytes)", () => {
    const bytes = buildPickle([["PROTO", 4], ...framed([["EMPTY_LIST"], ["MEMOIZE"]]), ["BINBYTES8", new Uint8Array(4)], ...framed([["APPEND"], ["STOP"]])]);
    expect(dis(bytes).map((o) => o.name)).toEqual(["PROTO", "FRAME", "EMPTY_LIST", "MEMOIZE", "BINBYTES8", "FRAME", "APPEND", "STOP"]);
  });

  it("rejects an opcode that straddles the end of its frame", () => {
    // The frame covers the opcode byte of SHORT_BINUNICODE but not its argument.
    const body = buildPickle([["SHORT_BINUNICODE", "os"]]);
    const bytes = concat(
      buildPickle([
        ["PROTO", 4],
        ["FRAME", 2],
      ]),
      body,
      buildPickle([["STOP"]]),
    );
    expect(errorOf(bytes)).toEqual({ code: "malformed_pickle", offset: 11 });
  });

  it("rejects a FRAME that starts before the previous frame ends", () => {
    const inner = buildPickle([["FRAME", 2], ["NONE"], ["STOP"]]);
    const bytes = concat(
      buildPickle([
        ["PROTO", 4],
        ["FRAME", inner.length + 1],
      ]),
      inner,
      buildPickle([["STOP"]]),
    );
    expect(errorOf(bytes)).toEqual({ code: "malformed_pickle", offset: 11 });
  });

  it("rejects a frame longer than the bytes that remain (a lying frame)", () => {
    const bytes = buildPickle([["PROTO", 4], ["FRAME", 1000], ["NONE"], ["STOP"]]);
    expect(errorOf(bytes)).toEqual({ code: "malformed_pickle", offset: 2 });
  });

  it("accepts a zero-length frame", () => {
    expect(dis(buildPickle([["PROTO", 4], ["FRAME", 0], ["NONE"], ["STOP"]])).map((o) => o.name)).toEqual(
      ["PROTO", "FRAME", "FRAME", "NONE", "STOP"].filter((_, i) => i !== 2),
    );
  });

  it("PROTO in mid-stream is read like CPython (accepted, protocol changes)", () => {
    expect(dis(buildPickle([["PROTO", 2], ["NONE"], ["POP"], ["PROTO", 4], ["NONE"], ["STOP"]])).map((o) => o.name)).toContain("STOP");
  });
});

describe("protocol 0 text arguments", () => {
  it("decodes STRING escapes like codecs.escape_decode, keeping unknown escapes", () => {
    const ops = dis(buildPickle([{ raw: "S'a\\q\\101\\\\'\n." }]));
    expect(ops[0]?.arg).toBe("a\\qA\\");
  });
  it("decodes UNICODE raw-unicode-escape, where an escaped backslash is not an escape", () => {
    const ops = dis(concat(enc.encode("V\\\\u0041\n"), enc.encode(".")));
    expect(ops[0]?.arg).toBe("\\\\u0041");
  });
  it("reads long UNICODE lines across the read window", () => {
    const long = "a".repeat(3 * 1024 * 1024);
    const ops = dis(concat(enc.encode(`V${long}\n`), enc.encode(".")));
    expect(ops[0]?.arg).toEqual({ length: long.length, truncated: true, text: "a".repeat(64 * 1024) });
  });
});
