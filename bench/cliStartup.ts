import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";

/**
 * `npm run bench:cli-startup` (issue 11): start-up cost of the `modelgate` binary per command.
 * For each case, the median / min / max wall time of `node bin/modelgate.js ...` over --runs
 * runs (runs of all cases and binaries interleaved, so a busy moment on a shared machine hits
 * them alike), the number of modules loaded (require.cache at exit, through a --require hook,
 * in one extra run) and which of the heavy packages were among them. Prints figures only.
 *
 *   npm run bench:cli-startup -- [--runs 5] [--bin <other checkout>/bin/modelgate.js]... [--fixture <file>]
 *
 * With several --bin (e.g. a build of main copied aside), each binary is measured in turn.
 */

const ROOT = path.join(__dirname, "..", "..");
const HEAVY = ["express", "multer", "prom-client", "pino", "lzma-native"] as const;

/** Written to a temp file and passed to node with --require: lists require.cache at exit. */
const LIST_MODULES_HOOK = `"use strict";
process.on("exit", () => {
  require("node:fs").writeFileSync(process.env.MODELGATE_BENCH_MODULES_OUT, Object.keys(require.cache).join("\\n"));
});
`;

interface Case {
  label: string;
  args: string[];
}

interface Measured {
  bin: string;
  label: string;
  timesMs: number[];
  modules: number;
  heavyLoaded: string[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function runOnce(bin: string, args: string[], env: NodeJS.ProcessEnv, nodeFlags: string[] = []): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [...nodeFlags, bin, ...args], { env, stdio: "ignore" });
  const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.error) throw r.error;
  return elapsedMs;
}

function loadedModules(bin: string, args: string[], hookPath: string, outPath: string): string[] {
  runOnce(bin, args, { PATH: process.env.PATH ?? "", MODELGATE_BENCH_MODULES_OUT: outPath }, ["--require", hookPath]);
  return readFileSync(outPath, "utf8")
    .split("\n")
    .filter((line) => line !== "");
}

function heavyIn(modules: string[]): string[] {
  return HEAVY.filter((name) => modules.some((m) => m.includes(`${path.sep}node_modules${path.sep}${name}${path.sep}`)));
}

function main(): void {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "5" },
      bin: { type: "string", multiple: true },
      fixture: { type: "string" },
    },
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs must be a positive integer");
  const bins = (values.bin ?? [path.join(ROOT, "bin", "modelgate.js")]).map((b) => path.resolve(b));
  const fixture = path.resolve(values.fixture ?? path.join(ROOT, "test", "fixtures", "safetensors", "benign.safetensors"));
  const cases: Case[] = [
    { label: `scan ${path.basename(fixture)}`, args: ["scan", fixture] },
    { label: "push --help", args: ["push", "--help"] },
    { label: "pull --help", args: ["pull", "--help"] },
    { label: "--help", args: ["--help"] },
  ];

  const dir = mkdtempSync(path.join(tmpdir(), "modelgate-cli-startup-"));
  try {
    const hookPath = path.join(dir, "listModules.js");
    const outPath = path.join(dir, "modules.txt");
    writeFileSync(hookPath, LIST_MODULES_HOOK);
    const results: Measured[] = [];
    for (const bin of bins) {
      for (const c of cases) {
        const modules = loadedModules(bin, c.args, hookPath, outPath);
        results.push({ bin, label: c.label, timesMs: [], modules: modules.length, heavyLoaded: heavyIn(modules) });
      }
    }
    const env = { PATH: process.env.PATH ?? "" };
    // One warm-up round (file cache), then `runs` interleaved rounds.
    for (let round = -1; round < runs; round++) {
      for (const result of results) {
        const c = cases.find((x) => x.label === result.label);
        if (c === undefined) continue;
        const ms = runOnce(result.bin, c.args, env);
        if (round >= 0) result.timesMs.push(ms);
      }
    }
    process.stdout.write(`modelgate CLI start-up, node ${process.version}, ${String(runs)} runs per case (wall ms: median [min-max])\n`);
    for (const bin of bins) {
      process.stdout.write(`\n${bin}\n`);
      for (const r of results.filter((x) => x.bin === bin)) {
        const t = r.timesMs;
        const heavy = r.heavyLoaded.length > 0 ? r.heavyLoaded.join(",") : "none";
        process.stdout.write(
          `  ${r.label.padEnd(32)} ${median(t).toFixed(0).padStart(5)} ms [${Math.min(...t).toFixed(0)}-${Math.max(...t).toFixed(0)}]  ${String(r.modules).padStart(4)} modules  heavy: ${heavy}\n`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
