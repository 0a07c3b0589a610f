import { MAX_ARTIFACT_NAME_LENGTH } from "../../src/limits";
import {
  artifactNameProblem,
  isValidArtifactName,
  matchesNameGlob,
  namePatternProblem,
  parseAllowlist,
  parseArtifactName,
  recheckTrust,
  verifyPublish,
} from "../../src/trust";
import { allowlistOf, codeOf, DIGEST, NOW, rawEnvelope, signed, source, statementJson, testKey, trusted } from "./helpers";

describe("the artifact name rule (src/trust/artifactName.ts)", () => {
  it.each([
    "model.pkl",
    "team-a/x/y",
    "team-a/model v2.safetensors",
    "model:v1",
    "50%.pt",
    "a/b.c/.d",
    "a/.hidden",
    "café/modèle.pt", // NFC (precomposed)
    "模型/权重.safetensors",
    "emoji/😀.pt",
    "n".repeat(MAX_ARTIFACT_NAME_LENGTH),
  ])("accepts %j", (name) => {
    expect(artifactNameProblem(name)).toBeUndefined();
    expect(parseArtifactName(name)).toBe(name);
  });

  it.each<[string, string]>([
    ["empty", ""],
    ["one past the length limit", "n".repeat(MAX_ARTIFACT_NAME_LENGTH + 1)],
    // path structure
    ["a '..' segment", "team-a/../prod/model.pkl"],
    ["a leading '..' segment", "../prod/model.pkl"],
    ["a trailing '..' segment", "team-a/.."],
    ["the name '..'", ".."],
    ["a '.' segment", "team-a/./model.pkl"],
    ["the name '.'", "."],
    ["a leading '/'", "/prod/model.pkl"],
    ["a trailing '/'", "team-a/"],
    ["an empty segment", "team-a//model.pkl"],
    ["a backslash", "team-a\\..\\prod\\model.pkl"],
    ["a segment of three dots", "team-a/.../prod"],
    ["a dot-dot-space segment (Windows: '..')", "team-a/.. /prod"],
    ["a trailing dot (Windows drops it)", "prod./model.pkl"],
    ["a trailing space", "team-a/model.pkl "],
    ["a leading space in a segment", "team-a/ model.pkl"],
    ["a drive letter", "C:/prod/model.pkl"],
    ["a drive-relative path", "c:model.pkl"],
    ["a percent-encoded dot-dot", "team-a/%2e%2e/prod/model.pkl"],
    ["a percent-encoded slash", "team-a%2F..%2Fprod"],
    ["a percent-encoded backslash", "team-a/..%5cprod"],
    ["a double-encoded dot", "team-a/%252e%252e/prod"],
    ["a percent-encoded NUL", "model%00.pkl"],
    ["a lone backslash", "a\\b"],
    // control characters (Cc)
    ["NUL", "model\u0000.pkl"],
    ["a newline", "a\nverdict=accepted"],
    ["a tab", "a\tb"],
    ["ESC", "a\u001b[2J"],
    ["DEL", "a\u007fb"],
    ["C1 NEL", "a\u0085b"],
    ["C1 CSI", "a\u009bb"],
    // format characters (Cf) and other invisibles
    ["RIGHT-TO-LEFT OVERRIDE", "prod/\u202elkp.ledom"],
    ["LEFT-TO-RIGHT EMBEDDING", "a\u202ab"],
    ["POP DIRECTIONAL FORMATTING", "a\u202cb"],
    ["RIGHT-TO-LEFT ISOLATE", "a\u2067b"],
    ["POP DIRECTIONAL ISOLATE", "a\u2069b"],
    ["ARABIC LETTER MARK", "a\u061cb"],
    ["ZERO WIDTH SPACE", "prod/mo\u200bdel.pkl"],
    ["ZERO WIDTH JOINER", "a\u200db"],
    ["WORD JOINER", "a\u2060b"],
    ["BYTE ORDER MARK", "\ufeffmodel.pkl"],
    ["SOFT HYPHEN", "mo\u00addel.pkl"],
    ["a TAG character", "a\u{e0041}b"],
    ["HANGUL FILLER (default ignorable, not Cf)", "a\u3164b"],
    ["a variation selector (default ignorable)", "a\ufe0fb"],
    ["COMBINING GRAPHEME JOINER (default ignorable)", "a\u034fb"],
    // whitespace other than U+0020
    ["NO-BREAK SPACE", "a\u00a0b"],
    ["EN QUAD", "a\u2000b"],
    ["LINE SEPARATOR", "a\u2028b"],
    ["PARAGRAPH SEPARATOR", "a\u2029b"],
    ["IDEOGRAPHIC SPACE", "a\u3000b"],
    // not Unicode text / no agreed meaning
    ["a lone high surrogate", "a\ud800b"],
    ["a lone low surrogate", "a\udc00"],
    ["a private-use character", "a\ue000b"],
    ["an unassigned code point", "a\u{50000}b"],
    ["a noncharacter", "a\uffffb"],
    // normalization
    ["a decomposed é (NFD)", "cafe\u0301/model.pt"],
    ["ANGSTROM SIGN (NFC maps it to U+00C5)", "\u212b/model.pt"],
    ["decomposed Hangul", "\u1100\u1161/model.pt"],
    ["FULLWIDTH SOLIDUS (NFKC '/')", "team-a\uff0f..\uff0fprod"],
    ["TWO DOT LEADER (NFKC '..')", "team-a/\u2025/prod"],
    ["ONE DOT LEADER (NFKC '.')", "team-a/\u2024/prod"],
    ["FULLWIDTH REVERSE SOLIDUS (NFKC '\\')", "a\uff3cb"],
    ["FULLWIDTH FULL STOPs (NFKC '..')", "team-a/\uff0e\uff0e/prod"],
  ])("refuses %s with invalid_name", (_label, name) => {
    expect(artifactNameProblem(name)).toEqual(expect.any(String));
    expect(isValidArtifactName(name)).toBe(false);
    expect(() => parseArtifactName(name)).toFailWithCode("invalid_name");
  });

  it("keeps bidi overrides and invisible characters out of its own message", () => {
    let message = "";
    try {
      parseArtifactName("prod/\u202elkp.ledom\u200b");
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toMatch(/[^\x20-\x7e]/);
    expect(message).toContain("\\u202e");
  });
});

describe("globs match validated names only, segment by segment", () => {
  const k = testKey(41);
  const teamA = allowlistOf(source("team-a", [trusted(k)], { names: ["team-a/**"] }));
  const verify = (name: string): string => codeOf(() => verifyPublish({ envelope: signed([k], name), digestHex: DIGEST, allowlist: teamA, now: NOW }));

  it("refuses team-a/../prod/model.pkl before any glob sees it (it passed `team-a/**` before)", () => {
    expect(verify("team-a/../prod/model.pkl")).toBe("invalid_name");
    expect(verify("team-a/./model.pkl")).toBe("invalid_name");
    expect(verify("team-a//model.pkl")).toBe("invalid_name");
    expect(verify("team-a/\u202eprod")).toBe("invalid_name");
  });

  it("still accepts team-a/x/y under `team-a/**` and still refuses prod/x", () => {
    expect(verifyPublish({ envelope: signed([k], "team-a/x/y"), digestHex: DIGEST, allowlist: teamA, now: NOW }).name).toBe("team-a/x/y");
    expect(verify("prod/x")).toBe("name_not_allowed");
  });

  it("a requested name goes through the rule too (verify --name, upload name)", () => {
    const requested = (name: string): string =>
      codeOf(() => verifyPublish({ envelope: signed([k], "team-a/x"), digestHex: DIGEST, name, allowlist: teamA, now: NOW }));
    expect(requested("team-a/../team-a/x")).toBe("invalid_name");
    expect(requested("team-a/x\u0000")).toBe("invalid_name");
    expect(requested("team-a/y")).toBe("name_not_allowed");
  });

  it("a stored envelope signed for a name outside the rule no longer verifies on fetch (recheckTrust)", () => {
    const stored = JSON.stringify(rawEnvelope(statementJson({ subject: [{ name: "team-a/../prod/model.pkl", digest: { sha256: DIGEST } }] }), [k]));
    expect(() =>
      recheckTrust({
        envelopes: [{ envelope: stored, name: "team-a/../prod/model.pkl" }],
        digestHex: DIGEST,
        name: "team-a/../prod/model.pkl",
        allowlist: teamA,
        now: NOW,
      }),
    ).toFailWithCode("invalid_name");
  });

  it.each<[string, string, boolean]>([
    ["team-a/**", "team-a/x/y", true],
    ["team-a/**", "team-a", false],
    ["team-a/**", "team-b/x", false],
    ["team-a/*", "team-a/x", true],
    ["team-a/*", "team-a/x/y", false],
    ["**/*.pt", "a/b/c.pt", true],
    ["*/**/*.pt", "a/c.pt", false],
    ["team-a/**/model-*.pkl", "team-a/x/y/model-1.pkl", true],
    ["a*b*c", "aXbYc", true],
    ["a*b*c", "aX/bYc", false],
    ["**", "anything/at/all", true],
    ["café/*", "café/x", true],
  ])("%s vs %s -> %s", (pattern, name, expected) => {
    expect(matchesNameGlob(pattern, parseArtifactName(name))).toBe(expected);
  });
});

describe("allowlist `names` patterns go through the same rule", () => {
  const key = Buffer.from(testKey(42).publicKey).toString("base64");
  const load = (names: string[]): string =>
    codeOf(() => parseAllowlist({ version: 1, sources: [{ id: "s", description: "s", keys: [{ publicKey: key }], names }] }, "/tmp"));

  it.each(["team-a/../prod/**", "/abs/**", "a//b", "team-a/", "a\\b", "a\u202eb", "cafe\u0301/*", "**.pt", "a/b**", ""])(
    "refuses %j as invalid_allowlist",
    (pattern) => {
      expect(namePatternProblem(pattern)).toEqual(expect.any(String));
      expect(load([pattern])).toBe("invalid_allowlist");
    },
  );

  it.each(["team-a/**", "**", "**/*.pt", "a/*/b", "***/x", "exact/name"])("accepts %j", (pattern) => {
    expect(namePatternProblem(pattern)).toBeUndefined();
    expect(() => parseAllowlist({ version: 1, sources: [{ id: "s", description: "s", keys: [{ publicKey: key }], names: [pattern] }] }, "/tmp")).not.toThrow();
  });
});
