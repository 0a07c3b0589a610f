import fc from "fast-check";
import { isCrash, seedsFor, TARGETS, type Execute } from "../../bench/fuzzTargets";

/**
 * The CI fuzz pass: a bounded, fixed-seed fast-check run over every fuzz target (the same ones
 * `npm run fuzz` drives with coverage guidance). Inputs are random bytes and fixture/builder
 * seeds with random byte patches, splices and truncations. Any thrown value that is not a
 * GatewayError, or a run over the time budget, fails the test with the shrunk input.
 */
const SEED = 20261123;
const RUNS = 600;
const BUDGET_MS = 2_000;

/** A seed with random patches (byte writes), an optional truncation and an optional inserted chunk. */
function mutatedSeed(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .record({
      seed: fc.constantFrom(...seeds),
      patches: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      insert: fc.option(fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 16 })), { nil: undefined }),
    })
    .map(({ seed, patches, cut, insert }) => {
      let out = Uint8Array.from(seed);
      for (const [at, value] of patches) if (out.length > 0) out[at % out.length] = value;
      if (insert !== undefined) {
        const at = out.length === 0 ? 0 : insert[0] % out.length;
        out = Uint8Array.from([...out.subarray(0, at), ...insert[1], ...out.subarray(at)]);
      }
      if (cut !== undefined && out.length > 0) out = out.subarray(0, cut % out.length);
      return out;
    });
}

describe("fuzz properties: parsers only ever return or throw GatewayError", () => {
  for (const target of TARGETS) {
    it(target.name, async () => {
      const loaded = await target.load();
      if ("missing" in loaded) throw new Error(`fuzz target ${target.name} is missing: ${loaded.missing}`);
      const run: Execute = loaded;
      const seeds = seedsFor(target, 64 * 1024);
      expect(seeds.length).toBeGreaterThan(0);
      // Every seed as is first: fixtures, builders and saved crashers (test/fixtures/fuzz-regressions).
      for (const seed of seeds) {
        try {
          await run(seed);
        } catch (err) {
          if (isCrash(err)) throw err;
        }
      }
      let executed = 0;
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 1024 }), mutatedSeed(seeds), mutatedSeed(seeds)), async (input) => {
          const started = performance.now();
          try {
            await run(input);
          } catch (err) {
            if (isCrash(err)) throw err;
          }
          executed += 1;
          const ms = performance.now() - started;
          if (ms > BUDGET_MS) throw new Error(`took ${ms.toFixed(0)} ms (budget ${BUDGET_MS.toString()} ms)`);
        }),
        { seed: SEED, numRuns: target.name === "inspect" ? RUNS / 3 : RUNS, endOnFailure: false },
      );
      run.dispose?.();
      expect(executed).toBeGreaterThan(0);
    });
  }
});
