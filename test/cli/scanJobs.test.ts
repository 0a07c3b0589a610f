import { spawnSync } from "node:child_process";
import * as path from "node:path";
import type { Command } from "../../src/cli/command";
import { makeScanCommand, scanCommand, type ScanPoolFactory } from "../../src/cli/commands/scan";
import { exitCodeFor } from "../../src/cli/exitCodes";
import { isGatewayError } from "../../src/errors";
import type { Inspector } from "../../src/inspect/inspector";
import { inspectFile } from "../../src/formats/inspectFile";
import { BIN, ensureBuilt, ROOT } from "../support/binary";

const FIXTURES = path.join(ROOT, "test", "fixtures");
/** Accepted, rejected, other formats, and one file that does not exist (an io_error line). */
const FILES = [
  "pickle-unit/plain-p2.pkl",
  "pickle-unit/os-system-p4.pkl",
  "safetensors/benign.safetensors",
  "no-such-file.pkl",
  "joblib/arrays.joblib.xz",
  "pickle-unit/torch-state-dict.pkl",
];

async function run(command: Command, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  try {
    const code = await command.run(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: {}, cwd: FIXTURES });
    return { code, stdout, stderr };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    return { code: exitCodeFor(err.code), stdout, stderr: err.code };
  }
}

describe("modelgate scan --jobs", () => {
  beforeAll(() => {
    ensureBuilt();
  });

  // In jest, an fs error thrown in this process comes from another realm (not `instanceof Error`),
  // so its message reads "Error: ENOENT..." here and "ENOENT..." from a worker or the binary: the
  // missing file is compared by code here, and whole in the binary's test below.
  const PRESENT = FILES.filter((f) => f !== "no-such-file.pkl");

  it.each([[[] as string[]], [["--json"]]])("--jobs 3 on the worker pool prints what --jobs 1 prints, in the order of the arguments (%j)", async (extra) => {
    const one = await run(scanCommand, [...PRESENT, ...extra]);
    const three = await run(scanCommand, [...PRESENT, ...extra, "--jobs", "3"]);
    expect(one.code).toBe(1);
    expect(three).toEqual(one);
  });

  it("--jobs 3: a file that cannot be opened is an io_error entry, the others are still reported", async () => {
    const r = await run(scanCommand, [...FILES, "--json", "--jobs", "3"]);
    const doc = JSON.parse(r.stdout) as { files: { path: string }[]; errors: { path: string; code: string }[] };
    expect(r.code).toBe(2);
    expect(doc.files.map((f) => f.path)).toEqual(PRESENT);
    expect(doc.errors.map((e) => [e.path, e.code])).toEqual([["no-such-file.pkl", "io_error"]]);
  });

  it("the real binary with --jobs 2: same output and exit status as without", () => {
    const plain = spawnSync(process.execPath, [BIN, "scan", ...FILES], { cwd: FIXTURES, encoding: "utf8" });
    const jobs = spawnSync(process.execPath, [BIN, "scan", "--jobs", "2", ...FILES], { cwd: FIXTURES, encoding: "utf8" });
    expect(plain.status).toBe(2);
    expect([jobs.status, jobs.stdout, jobs.stderr]).toEqual([plain.status, plain.stdout, plain.stderr]);
    expect(plain.stdout.split("\n").filter((l) => /^(ACCEPT|REJECT) /.test(l))).toHaveLength(FILES.length - 1);
  });

  it("runs up to N inspections at once and still prints in argument order when later files finish first", async () => {
    let running = 0;
    let most = 0;
    let calls = 0;
    const pooled: ScanPoolFactory = (jobs) => {
      expect(jobs).toBe(2);
      const slowFirst: Inspector = async (file, options) => {
        running += 1;
        calls += 1;
        most = Math.max(most, running);
        // The first file finishes last: its neighbours overtake it.
        await new Promise((r) => setTimeout(r, path.basename(file) === "plain-p2.pkl" ? 300 : 10));
        running -= 1;
        return inspectFile(file, options);
      };
      return Promise.resolve({ inspect: slowFirst, close: () => Promise.resolve() });
    };
    const files = ["pickle-unit/plain-p2.pkl", "pickle-unit/os-system-p4.pkl", "pickle-unit/torch-state-dict.pkl", "pickle-unit/numpy-p2.pkl"];
    const r = await run(makeScanCommand(inspectFile, pooled), [...files, "--jobs", "2"]);
    expect(r.code).toBe(1);
    expect(most).toBe(2);
    expect(calls).toBe(files.length);
    const heads = r.stdout.split("\n").filter((l) => /^(ACCEPT|REJECT) /.test(l));
    expect(heads.map((l) => l.split(" ")[1])).toEqual(files);
  });

  it("--jobs 1 (the default) never starts a pool", async () => {
    const pooled: ScanPoolFactory = () => Promise.reject(new Error("no pool expected"));
    const command = makeScanCommand(inspectFile, pooled);
    expect((await run(command, ["pickle-unit/plain-p2.pkl", "pickle-unit/numpy-p2.pkl"])).code).toBe(0);
    expect((await run(command, ["pickle-unit/plain-p2.pkl", "pickle-unit/numpy-p2.pkl", "--jobs", "1"])).code).toBe(0);
    // More jobs than files: one file needs no pool either.
    expect((await run(command, ["pickle-unit/plain-p2.pkl", "--jobs", "8"])).code).toBe(0);
  });

  it.each([["0"], ["-1"], ["2.5"], ["many"], ["257"]])("--jobs %s is a usage error (exit 2)", async (jobs) => {
    const r = await run(scanCommand, ["pickle-unit/plain-p2.pkl", "--jobs", jobs]);
    expect([r.code, r.stderr]).toEqual([2, "usage"]);
  });
});
