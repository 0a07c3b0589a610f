import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { BufferSource } from "../../src/bytes/source";
import { isGatewayError } from "../../src/errors";
import { inspectPath } from "../../src/formats/inspectFile";
import { readZipDirectory } from "../../src/formats/containers/zip";
import { ContentPolicySchema } from "../../src/inspect/policy";
import { DEFAULT_CONTAINER_LIMITS } from "../../src/limits";
import { stateDictPickle } from "./torchBuilder";
import { buildZip } from "./zipBuilder";

/**
 * Mutate valid containers (byte flips, truncation, splices) and check that the zip reader only
 * ever fails with a GatewayError and that inspectFile never throws and always decides.
 */

const torchZip = buildZip(
  [
    { name: "archive/data.pkl", data: stateDictPickle([{ name: "w", key: "0", numel: 4 }]) },
    { name: "archive/data/0", data: new Uint8Array(16).fill(1) },
    { name: "archive/version", data: "3\n", method: 8 },
    { name: "archive/extra.txt", data: "some text ".repeat(20), method: 8, descriptor: true },
  ],
  { zip64: true },
);

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("splice" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
);

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(base: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Buffer.from(base);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.kind === "flip") b[at] = (b[at] ?? 0) ^ m.xor;
    else if (m.kind === "truncate") b = b.subarray(0, at);
    else b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
  }
  return b;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "zip-prop-"));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("mutated containers", () => {
  it("the zip reader fails only with GatewayErrors", () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        try {
          readZipDirectory(new BufferSource(mutate(torchZip, ms)), { limits: DEFAULT_CONTAINER_LIMITS });
        } catch (err) {
          if (!isGatewayError(err)) throw err;
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("inspectFile always decides, never throws, on mutated torch zips and fixtures", async () => {
    const bases = [torchZip, readFileSync("test/fixtures/torch/state_dict.pt"), readFileSync("test/fixtures/numpy/arrays_compressed.npz")];
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: bases.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (which, ms) => {
        const path = join(dir, `m${String(n++)}`);
        writeFileSync(path, mutate(bases[which] as Uint8Array, ms));
        const report = await inspectPath(path, { policy: ContentPolicySchema.parse({}) });
        expect(["accept", "reject"]).toContain(report.verdict);
        rmSync(path);
      }),
      { numRuns: 150 },
    );
  });
});
