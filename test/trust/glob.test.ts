import { matchesNameGlob, parseArtifactName } from "../../src/trust";

describe("name globs", () => {
  it.each([
    ["examples/**", "examples/a", true],
    ["examples/**", "examples/a/b/c.pt", true],
    ["examples/**", "examplesX/a", false],
    ["examples/**", "other/examples/a", false],
    ["examples/*", "examples/a.pt", true],
    ["examples/*", "examples/a/b.pt", false],
    ["*.pt", "model.pt", true],
    ["*.pt", "dir/model.pt", false],
    ["**.pt", "dir/model.pt", false],
    ["**.pt", "model.pt", true],
    ["**/*.pt", "dir/model.pt", true],
    ["**/*.pt", "model.pt", false],
    ["team/*/model-*.safetensors", "team/x/model-1.safetensors", true],
    ["team/*/model-*.safetensors", "team/x/y/model-1.safetensors", false],
    ["exact/name", "exact/name", true],
    ["exact/name", "exact/name2", false],
    ["a?b", "axb", false],
    ["a?b", "a?b", true],
    ["[ab]", "a", false],
    ["[ab]", "[ab]", true],
    ["a.b", "axb", false],
    ["**", "a/b/c", true],
    ["*", "a", true],
    ["*", "a/b", false],
    ["a/**/b", "a/x/y/b", true],
    ["a/**/b", "a/b", false],
    ["team-a/**", "team-a/x/y", true],
    ["team-a/**", "team-a", false],
  ])("%s vs %s -> %s", (pattern, name, expected) => {
    expect(matchesNameGlob(pattern, parseArtifactName(name))).toBe(expected);
  });

  it("stays fast on pathological patterns (memoised, no regex backtracking)", () => {
    const name = "a".repeat(512);
    const pattern = "*a".repeat(50) + "b";
    const t0 = process.hrtime.bigint();
    expect(matchesNameGlob(pattern, parseArtifactName(name))).toBe(false);
    expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeLessThan(2000);
  });
});
