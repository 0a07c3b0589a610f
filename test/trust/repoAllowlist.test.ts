import * as path from "node:path";
import { loadAllowlist } from "../../src/trust";

describe("the repository's allowlist.json", () => {
  it("is valid and trusts the example publisher for examples/**", () => {
    const al = loadAllowlist(path.join(__dirname, "..", "..", "allowlist.json"));
    expect(al.sources.map((s) => s.id)).toEqual(["example-publisher"]);
    expect(al.sources[0]?.keys[0]?.keyId).toBe("eb56326225ac9198ecf0cd513998a25a0d160e87906ffa1980337afc2b0e930a");
    expect(al.sources[0]?.names).toEqual(["examples/**"]);
    expect(al.sources[0]?.pickle.allowGlobals).toEqual([]);
  });
});
