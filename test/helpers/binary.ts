import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";

/** The real binary (bin/modelgate.js runs dist/), for suites that drive it as a user does. */
export const ROOT = path.join(__dirname, "..", "..");
export const BIN = path.join(ROOT, "bin", "modelgate.js");
const MAIN_JS = path.join(ROOT, "dist", "src", "cli", "main.js");

function newestSourceMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMtime(full));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

/** Build dist/ only when it is older than src/ (npm test builds first, so usually a no-op). */
export function ensureBuilt(): void {
  if (existsSync(MAIN_JS) && statSync(MAIN_JS).mtimeMs >= newestSourceMtime(path.join(ROOT, "src"))) return;
  spawnSync(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(ROOT, "tsconfig.build.json")], {
    cwd: ROOT,
    stdio: "ignore",
  });
  if (!existsSync(MAIN_JS)) throw new Error("build did not produce dist/src/cli/main.js");
}
