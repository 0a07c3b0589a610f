import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import * as path from "node:path";
import { BIN, ROOT, ensureBuilt } from "../support/binary";

describe("the binary behind a pipe that closes early", () => {
  beforeAll(() => {
    ensureBuilt();
  });

  it("stops quietly on EPIPE (`modelgate scan ... | head`) instead of printing a stack trace", () => {
    const dir = path.join(ROOT, "test", "fixtures", "pickle");
    const files = readdirSync(dir).map((f) => path.join(dir, f));
    // Enough JSON to overflow the pipe's buffer many times over, read 100 bytes of it.
    const args = [BIN, "scan", "--json", ...files, ...files, ...files].map((a) => `'${a}'`).join(" ");
    const r = spawnSync("bash", ["-c", `'${process.execPath}' ${args} | head -c 100 > /dev/null`], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stderr).not.toContain("EPIPE");
    expect(r.stderr).not.toContain("Unhandled");
  });
});
