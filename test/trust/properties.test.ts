import fc from "fast-check";
import { isGatewayError } from "../../src/errors";
import { decodeBase64Strict, matchesNameGlob, parseArtifactName, verifyPublish } from "../../src/trust";
import { allowlistOf, DIGEST, NOW, signed, source, testKey, trusted } from "./helpers";

/**
 * Reference matcher: the glob turned into an anchored regular expression, segment by segment
 * (a whole-segment `**` is one or more segments, other star runs stay inside one segment).
 */
function referenceGlob(pattern: string, name: string): boolean {
  const re = pattern
    .split("/")
    .map((segment) =>
      /^\*{2,}$/.test(segment)
        ? "[^/]+(?:/[^/]+)*"
        : segment
            .split(/(\*+)/)
            .map((part) => (part.startsWith("*") ? "[^/]*" : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&")))
            .join(""),
    )
    .join("/");
  return new RegExp(`^${re}$`).test(name);
}

const k = testKey(31);
const allowlist = allowlistOf(source("s", [trusted(k)]));
const valid = signed([k]);

function onlyGatewayErrors(envelope: string | Uint8Array): void {
  try {
    verifyPublish({ envelope, digestHex: DIGEST, allowlist, now: NOW });
  } catch (err) {
    if (!isGatewayError(err)) throw err;
  }
}

describe("properties", () => {
  it("the glob matcher agrees with a regex reference", () => {
    const chars = fc.constantFrom("a", "b", "/", "*", ".");
    fc.assert(
      // Globs only ever see validated names (non-empty segments, never `.` or `..`).
      fc.property(
        fc.string({ unit: chars, maxLength: 8 }),
        fc.array(fc.constantFrom("a", "b", "ab", ".a", "a.b", "..a", "b c"), { minLength: 1, maxLength: 4 }),
        (pattern, segments) => {
          const name = parseArtifactName(segments.join("/"));
          expect(matchesNameGlob(pattern, name)).toBe(referenceGlob(pattern, name));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("strict base64 decodes exactly what Buffer encodes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(Buffer.from(decodeBase64Strict(Buffer.from(bytes).toString("base64"), "x")).equals(Buffer.from(bytes))).toBe(true);
      }),
    );
  });

  it("verification only ever fails with a GatewayError, on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        onlyGatewayErrors(bytes);
      }),
      { numRuns: 500 },
    );
  });

  it("verification only ever fails with a GatewayError, on mutated valid envelopes", () => {
    fc.assert(
      fc.property(fc.nat({ max: valid.length - 1 }), fc.string({ maxLength: 4 }), fc.nat({ max: 4 }), (at, insert, remove) => {
        onlyGatewayErrors(valid.slice(0, at) + insert + valid.slice(at + remove));
      }),
      { numRuns: 1000 },
    );
  });

  it("a single flipped byte inside the payload or signature never verifies", () => {
    const env = JSON.parse(valid) as { payload: string; signatures: { keyid: string; sig: string }[] };
    const payload = Buffer.from(env.payload, "base64");
    const sig = Buffer.from(env.signatures[0]!.sig, "base64");
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 }), (inPayload, pos, xor) => {
        const target = Buffer.from(inPayload ? payload : sig);
        const i = pos % target.length;
        target[i] = (target[i] ?? 0) ^ xor;
        const mutated = inPayload
          ? { ...env, payload: target.toString("base64") }
          : { ...env, signatures: [{ keyid: k.keyId, sig: target.toString("base64") }] };
        expect(() => verifyPublish({ envelope: JSON.stringify(mutated), digestHex: DIGEST, allowlist, now: NOW })).toThrow();
      }),
      { numRuns: 300 },
    );
  });
});
