import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { BufferSource } from "../../src/bytes/source";
import { GatewayError } from "../../src/errors";
import type { FormatContext } from "../../src/formats/context";
import { inspectNpy, readNpyHeader } from "../../src/formats/models/numpy";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import type { Finding, InspectionNode } from "../../src/inspect/report";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, MAX_NPY_DIMS, type ContainerLimits } from "../../src/limits";

const FIXTURES = join(__dirname, "..", "fixtures", "numpy");

function ctxWith(limits: Partial<ContainerLimits> = {}): FormatContext {
  return {
    policy: { ...DEFAULT_CONTENT_POLICY },
    containerLimits: { ...DEFAULT_CONTAINER_LIMITS, ...limits },
    pickleLimits: DEFAULT_PICKLE_LIMITS,
    depth: 0,
    tempDir: "/nonexistent",
    budget: { uncompressedBytes: 0 },
    inspectMember: () => Promise.reject(new Error("not used")),
    inspectArchive: () => Promise.reject(new Error("not used")),
  };
}

/** magic, version, header length, header literal padded to 64 bytes with spaces and "\n", data. */
function buildNpy(header: string, data: Uint8Array, major = 1, options: { pad?: boolean } = {}): Uint8Array {
  const lenBytes = major === 1 ? 2 : 4;
  const pre = 6 + 2 + lenBytes;
  let text = header;
  if (options.pad !== false) {
    const total = pre + text.length + 1;
    text = text + " ".repeat((64 - (total % 64)) % 64) + "\n";
  }
  const h = Buffer.from(text, major === 3 ? "utf8" : "latin1");
  const out = Buffer.alloc(pre + h.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  if (major === 1) out.writeUInt16LE(h.length, 8);
  else out.writeUInt32LE(h.length, 8);
  h.copy(out, pre);
  out.set(data, pre + h.length);
  return new Uint8Array(out);
}

const hdr = (descr: string, shape: string, fortran = "False"): string => `{'descr': ${descr}, 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

function all(node: InspectionNode): Finding[] {
  return [...node.findings, ...node.children.flatMap(all)];
}
function codes(node: InspectionNode): string[] {
  return all(node)
    .filter((f) => f.severity !== "innocuous")
    .map((f) => f.code);
}
async function inspectBytes(bytes: Uint8Array, limits: Partial<ContainerLimits> = {}): Promise<InspectionNode> {
  return inspectNpy(new BufferSource(bytes), "a.npy", ctxWith(limits));
}

// Protocol 2 pickle of [1, 2]: PROTO 2, EMPTY_LIST, MARK, BININT1 1, BININT1 2, APPENDS, STOP.
const BENIGN_PICKLE = Uint8Array.from([0x80, 0x02, 0x5d, 0x28, 0x4b, 0x01, 0x4b, 0x02, 0x65, 0x2e]);
// Protocol 0: GLOBAL os system, MARK, STRING 'id', TUPLE, REDUCE, STOP.
const EVIL_PICKLE = new Uint8Array(Buffer.from("cos\nsystem\n(S'id'\ntR.", "latin1"));

describe("readNpyHeader", () => {
  it("reads v1, v2 and v3 headers", () => {
    for (const major of [1, 2, 3]) {
      const h = readNpyHeader(new BufferSource(buildNpy(hdr("'<f4'", "(2, 3)"), new Uint8Array(24), major)), 65536);
      expect(h.version).toBe(`${major}.0`);
      expect(h.shape).toEqual([2n, 3n]);
      expect(h.dtype).toEqual({ itemsize: 4n, hasObject: false });
      expect(h.dataOffset % 64).toBe(0);
    }
  });

  it.each([
    ["'<f8'", 8n, false],
    ["'|b1'", 1n, false],
    ["'<c16'", 16n, false],
    ["'<U10'", 40n, false],
    ["'|S7'", 7n, false],
    ["'|V12'", 12n, false],
    ["'<M8[ns]'", 8n, false],
    ["'<m8'", 8n, false],
    ["'|O'", 8n, true],
    ["[('a', '<i4'), ('b', '<f8', (2, 3))]", 52n, false],
    ["[('a', '<i4'), ('', '|V4'), ('b', '|O')]", 16n, true],
    ["[(('title', 'x'), '<i2')]", 2n, false],
    ["[('a', [('b', '<u2'), ('c', '|O')])]", 10n, true],
    ["('<f4', (4,))", 16n, false],
    ["('<f4', 3)", 12n, false],
  ])("sizes descr %s", (descr, itemsize, hasObject) => {
    const h = readNpyHeader(new BufferSource(buildNpy(hdr(descr, "()"), new Uint8Array(0))), 65536);
    expect(h.dtype).toEqual({ itemsize, hasObject });
  });

  it.each([
    ["'float32'"],
    ["'<f3'"],
    ["'b'"],
    ["'<i'"],
    ["'<U'"],
    ["'<f4[ns]'"],
    ["'<M8[zz]'"],
    ["[('a', '<i4'), ('a', '<f8')]"],
    ["[('', '<i4')]"],
    ["[('a',)]"],
    ["[(1, '<i4')]"],
    ["('<f4', -1)"],
    ["3"],
  ])("rejects descr %s", (descr) => {
    expect(() => readNpyHeader(new BufferSource(buildNpy(hdr(descr, "()"), new Uint8Array(0))), 65536)).toThrow(GatewayError);
  });
});

describe("inspectNpy", () => {
  it("accepts a plain array whose size matches shape x itemsize, with no pickle", async () => {
    const node = await inspectBytes(buildNpy(hdr("'<f4'", "(2, 3)"), new Uint8Array(24)));
    expect(codes(node)).toEqual([]);
    expect(node.format).toBe("npy");
    expect(node.children).toEqual([]);
    expect(node.details).toMatchObject({ version: "1.0", shape: ["2", "3"], itemsize: "4", dataBytes: 24, objectDtype: false });
  });

  it("accepts 0-d, empty and fortran arrays, and Python 2 long ints", async () => {
    expect(codes(await inspectBytes(buildNpy(hdr("'<i8'", "()"), new Uint8Array(8))))).toEqual([]);
    expect(codes(await inspectBytes(buildNpy(hdr("'<i8'", "(0, 5)"), new Uint8Array(0))))).toEqual([]);
    expect(codes(await inspectBytes(buildNpy(hdr("'>f8'", "(2,)", "True"), new Uint8Array(16))))).toEqual([]);
    expect(codes(await inspectBytes(buildNpy(hdr("'<i8'", "(2L,)"), new Uint8Array(16))))).toEqual([]);
    expect(codes(await inspectBytes(buildNpy(hdr("'<i8'", "(2L,)"), new Uint8Array(16), 3)))).toEqual(["malformed_container"]);
  });

  it.each([
    ["truncated data", buildNpy(hdr("'<f4'", "(2, 3)"), new Uint8Array(20))],
    ["trailing data", buildNpy(hdr("'<f4'", "(2, 3)"), new Uint8Array(28))],
    ["a shape that is an int in parentheses", buildNpy(hdr("'<f4'", "(6)"), new Uint8Array(24))],
    ["a negative dimension", buildNpy(hdr("'<f4'", "(-1,)"), new Uint8Array(0))],
    ["a list shape", buildNpy(hdr("'<f4'", "[6]"), new Uint8Array(24))],
    ["a missing key", buildNpy("{'descr': '<f4', 'shape': (1,)}", new Uint8Array(4))],
    ["an extra key", buildNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", new Uint8Array(4))],
    ["a duplicate key", buildNpy("{'descr': '<f4', 'descr': '|O', 'fortran_order': False, 'shape': (1,)}", new Uint8Array(4))],
    ["a non-bool fortran_order", buildNpy(hdr("'<f4'", "(1,)", "0"), new Uint8Array(4))],
    ["code in the header", buildNpy("__import__('os').system('id')", new Uint8Array(0))],
    ["a header that is not a dict", buildNpy("[1]", new Uint8Array(0))],
    [
      "a bad version",
      (() => {
        const b = buildNpy(hdr("'<f4'", "(1,)"), new Uint8Array(4));
        b[6] = 4;
        return b;
      })(),
    ],
    [
      "a bad minor version",
      (() => {
        const b = buildNpy(hdr("'<f4'", "(1,)"), new Uint8Array(4));
        b[7] = 1;
        return b;
      })(),
    ],
    [
      "bad magic",
      (() => {
        const b = buildNpy(hdr("'<f4'", "(1,)"), new Uint8Array(4));
        b[1] = 0x6e;
        return b;
      })(),
    ],
    ["a header length past the file", buildNpy(hdr("'<f4'", "(1,)"), new Uint8Array(0)).subarray(0, 40)],
    [
      "invalid UTF-8 in a v3 header",
      (() => {
        const b = buildNpy(hdr("'<f4'", "(1,)"), new Uint8Array(4), 3);
        b[14] = 0xff;
        return b;
      })(),
    ],
  ])("rejects %s as malformed_container", async (_name, bytes) => {
    expect(codes(await inspectBytes(bytes))).toEqual(["malformed_container"]);
  });

  it("bounds dimensions: at the limit and one past it", async () => {
    const shape = (n: number): string => `(${"1, ".repeat(n)})`;
    expect(codes(await inspectBytes(buildNpy(hdr("'<f4'", shape(MAX_NPY_DIMS)), new Uint8Array(4))))).toEqual([]);
    expect(codes(await inspectBytes(buildNpy(hdr("'<f4'", shape(MAX_NPY_DIMS + 1)), new Uint8Array(4))))).toEqual(["malformed_container"]);
  });

  it("uses exact big-integer arithmetic for huge shapes", async () => {
    const node = await inspectBytes(buildNpy(hdr("'<f8'", "(4294967296, 4294967296)"), new Uint8Array(8)));
    expect(codes(node)).toEqual(["malformed_container"]);
  });

  it("scans an object array's pickle: benign passes, os.system is dangerous", async () => {
    const benign = await inspectBytes(buildNpy(hdr("'|O'", "(2,)"), BENIGN_PICKLE));
    expect(codes(benign)).toEqual([]);
    expect(benign.children.map((c) => c.kind)).toEqual(["pickle"]);
    const evil = await inspectBytes(buildNpy(hdr("'|O'", "(1,)"), EVIL_PICKLE));
    expect(codes(evil)).toContain("dangerous_global");
    const inStruct = await inspectBytes(buildNpy(hdr("[('a', '<i4'), ('b', '|O')]", "(1,)"), EVIL_PICKLE));
    expect(codes(inStruct)).toContain("dangerous_global");
  });

  it("requires the object pickle to end exactly at the end of the file", async () => {
    const trailing = new Uint8Array([...BENIGN_PICKLE, ...EVIL_PICKLE]);
    expect(codes(await inspectBytes(buildNpy(hdr("'|O'", "(2,)"), trailing)))).toEqual(["malformed_container"]);
    const truncated = await inspectBytes(buildNpy(hdr("'|O'", "(2,)"), BENIGN_PICKLE.subarray(0, 6)));
    expect(codes(truncated).length).toBeGreaterThan(0);
  });

  it("bounds the header length: at the limit and one past it", async () => {
    const bytes = buildNpy(hdr("'<f4'", "(1,)"), new Uint8Array(4)); // header of 118 bytes
    const headerBytes = bytes.length - 4 - 10;
    expect(codes(await inspectBytes(bytes, { maxNpyHeaderBytes: headerBytes }))).toEqual([]);
    expect(codes(await inspectBytes(bytes, { maxNpyHeaderBytes: headerBytes - 1 }))).toEqual(["limit_exceeded"]);
  });

  it("never crashes on mutated files", async () => {
    const good = buildNpy(hdr("[('a', '<i4'), ('b', '|O')]", "(2,)"), BENIGN_PICKLE);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), async (edits) => {
        const bytes = good.slice();
        for (const [at, b] of edits) bytes[at] = b;
        const node = await inspectBytes(bytes);
        expect(node.kind).toBe("npy");
      }),
      { numRuns: 500 },
    );
  });
});

describe("inspectNpy on real numpy files", () => {
  it.each([
    ["v1_f32.npy", []],
    ["v2_f32.npy", []],
    ["v3_unicode_field.npy", []],
    ["fortran.npy", []],
    ["structured.npy", []],
    ["scalar_0d.npy", []],
    ["object_benign.npy", []],
    ["object_malicious.npy", ["dangerous_global"]],
    ["object_in_struct_malicious.npy", ["dangerous_global"]],
    ["truncated.npy", ["malformed_container"]],
    ["trailing.npy", ["malformed_container"]],
    ["header_code.npy", ["malformed_container"]],
    ["v2_long_header.npy", ["limit_exceeded"]],
  ])("%s", async (file, expected) => {
    const node = await inspectBytes(new Uint8Array(readFileSync(join(FIXTURES, file))));
    const found = codes(node);
    if (expected.length === 0) expect(found).toEqual([]);
    else for (const code of expected) expect(found).toContain(code);
  });
});
