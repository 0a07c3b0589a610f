import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { commands } from "../../src/cli/commands";
import { BIN, ROOT, ensureBuilt } from "../support/binary";

/**
 * Issue 11: every command used to load express, multer, prom-client, pino and lzma-native
 * (~590 modules) whether it needed them or not. The real binary runs with a --require hook that
 * writes require.cache's keys at exit; the assertions are on which packages were loaded.
 */

const HEAVY = ["express", "multer", "prom-client", "pino", "lzma-native"] as const;

const LIST_MODULES_HOOK = `"use strict";
process.on("exit", () => {
  require("node:fs").writeFileSync(process.env.MODELGATE_TEST_MODULES_OUT, Object.keys(require.cache).join("\\n"));
});
`;

function heavyIn(modules: readonly string[]): string[] {
  return HEAVY.filter((name) => modules.some((m) => m.includes(`${path.sep}node_modules${path.sep}${name}${path.sep}`)));
}

describe("the binary loads only what the chosen command uses", () => {
  let dir: string;
  let hookPath: string;

  /** Run `modelgate ...args`; the exit status and the absolute paths of every loaded module. */
  function runListingModules(args: string[]): { status: number | null; modules: string[] } {
    const outPath = path.join(dir, "modules.txt");
    rmSync(outPath, { force: true });
    const r = spawnSync(process.execPath, ["--require", hookPath, BIN, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", MODELGATE_TEST_MODULES_OUT: outPath, MODELGATE_LOG_LEVEL: "silent" },
      encoding: "utf8",
    });
    return {
      status: r.status,
      modules: readFileSync(outPath, "utf8")
        .split("\n")
        .filter((line) => line !== ""),
    };
  }

  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(path.join(tmpdir(), "mg-lazyload-"));
    hookPath = path.join(dir, "listModules.js");
    writeFileSync(hookPath, LIST_MODULES_HOOK);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("scan of a safetensors file loads none of express, multer, prom-client, pino, lzma-native", () => {
    const r = runListingModules(["scan", path.join(ROOT, "test", "fixtures", "safetensors", "benign.safetensors")]);
    expect(r.status).toBe(0);
    expect(r.modules.some((m) => m.endsWith(path.join("dist", "src", "cli", "commands", "scan.js")))).toBe(true);
    expect(heavyIn(r.modules)).toEqual([]);
  });

  it.each([[["push", "--help"]], [["pull", "--help"]], [["serve", "--help"]], [["--help"]]])(
    "%j loads no command module and none of the heavy packages",
    (args) => {
      const r = runListingModules(args);
      expect(r.status).toBe(0);
      expect(heavyIn(r.modules)).toEqual([]);
      expect(r.modules.filter((m) => /[\\/]dist[\\/]src[\\/]cli[\\/]commands[\\/](?!index\.js$|help\.js$)[^\\/]+\.js$/.test(m))).toEqual([]);
    },
  );

  it("lzma-native is loaded when an xz layer is decoded (the hook sees it)", () => {
    const r = runListingModules(["scan", path.join(ROOT, "test", "fixtures", "joblib", "arrays.joblib.xz")]);
    expect(r.status).toBe(0);
    expect(heavyIn(r.modules)).toEqual(["lzma-native"]);
  });

  it("serve loads the http layer (the hook sees express, multer, prom-client and pino)", () => {
    writeFileSync(path.join(dir, "allowlist.json"), '{"version": 2}');
    const r = runListingModules(["serve", "--port", "0", "--data", path.join(dir, "data"), "--allowlist", path.join(dir, "allowlist.json")]);
    expect(r.status).toBe(2);
    expect(heavyIn(r.modules)).toEqual(expect.arrayContaining(["express", "multer", "prom-client", "pino"]));
  });
});

describe("the command table", () => {
  it("each loader yields the command with the table's own name, summary and usage", () => {
    ensureBuilt();
    // In a child on dist/ rather than in this worker: loading serve's graph through ts-jest costs
    // ~25 s on a busy machine and leaves the worker slow to exit.
    const script = `
      const { commands } = require(${JSON.stringify(path.join(ROOT, "dist", "src", "cli", "commands", "index.js"))});
      Promise.all(commands.map(async (entry) => {
        const c = await entry.load();
        return { entry: [entry.name, entry.summary, entry.usage], loaded: [c.name, c.summary, c.usage] };
      })).then((rows) => process.stdout.write(JSON.stringify(rows)));
    `;
    const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
    expect(r.status).toBe(0);
    const rows = JSON.parse(r.stdout) as { entry: string[]; loaded: string[] }[];
    expect(rows.map((row) => row.entry[0])).toEqual(commands.map((c) => c.name));
    for (const row of rows) expect(row.loaded).toEqual(row.entry);
  });
});
