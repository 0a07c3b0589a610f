import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { BufferSource } from "../../src/bytes/source";
import { Cursor } from "../../src/bytes/cursor";
import { GatewayError } from "../../src/errors";
import { DEFAULT_CONTENT_POLICY } from "../../src/inspect/policy";
import { disassemble, inspectPickleSource, startsWithWellFormedPickle } from "../../src/pickle";
import { analyzeBytes } from "./builders";

const DIR = join(__dirname, "..", "fixtures", "pickle-unit");
const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith(".pkl"))
  .map((f) => new Uint8Array(readFileSync(join(DIR, f))));

/** Bytes biased towards pickle opcodes so that random inputs get past the first byte. */
const OPCODE_BYTES = [0x80, 0x95, 0x94, 0x93, 0x8c, 0x28, 0x2e, 0x4b, 0x58, 0x63, 0x52, 0x62, 0x71, 0x68, 0x65, 0x75, 0x7d, 0x5d, 0x29, 0x4e, 0x0a, 0x00, 0xff];
const pickleish = fc.array(fc.oneof(fc.constantFrom(...OPCODE_BYTES), fc.integer({ min: 0, max: 255 })), { maxLength: 300 }).map((a) => Uint8Array.from(a));

function mutate(base: Uint8Array, edits: { at: number; value: number; kind: number }[]): Uint8Array {
  let out = Array.from(base);
  for (const e of edits) {
    const at = e.at % (out.length + 1);
    if (e.kind === 0) out[at] = e.value;
    else if (e.kind === 1) out.splice(at, 0, e.value);
    else if (e.kind === 2) out.splice(at, 1);
    else out = out.slice(0, at);
  }
  return Uint8Array.from(out);
}

function checkNeverThrows(bytes: Uint8Array): void {
  const a = analyzeBytes(bytes, { limits: { timeBudgetMs: 5_000 } });
  expect(Array.isArray(a.node.findings)).toBe(true);
  expect(a.end).toBeLessThanOrEqual(bytes.length);
  for (const f of a.node.findings) expect(typeof f.code).toBe("string");
  expect(typeof startsWithWellFormedPickle(new BufferSource(bytes))).toBe("boolean");
  expect(inspectPickleSource(new BufferSource(bytes), "p", { policy: DEFAULT_CONTENT_POLICY }).kind).toBe("pickle");
  try {
    disassemble(Cursor.ofBytes(bytes, { errorCode: "malformed_pickle" }));
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
  }
}

describe("property: hostile bytes never crash, hang or throw", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        checkNeverThrows(b);
      }),
      { numRuns: 400 },
    );
  });

  it("opcode-biased random bytes", () => {
    fc.assert(
      fc.property(pickleish, (b) => {
        checkNeverThrows(b);
      }),
      { numRuns: 600 },
    );
  });

  it("mutated real pickles (byte flips, insertions, deletions, truncations)", () => {
    const edit = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), kind: fc.integer({ min: 0, max: 3 }) });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: fixtures.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 4 }), (i, edits) => {
        checkNeverThrows(mutate(fixtures[i] as Uint8Array, edits));
      }),
      { numRuns: 600 },
    );
  });

  it("a malicious payload stays rejected under any appended suffix", () => {
    const evil = new Uint8Array(readFileSync(join(DIR, "os-system-p2.pkl")));
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (suffix) => {
        const bytes = new Uint8Array(evil.length + suffix.length);
        bytes.set(evil);
        bytes.set(suffix, evil.length);
        const a = analyzeBytes(bytes);
        expect(a.node.findings.some((f) => f.code === "dangerous_global")).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});
