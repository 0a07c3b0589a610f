import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";

/**
 * The real binary (bin/modelgate.js runs dist/) as child processes, for the suites that drive it
 * as a user does: one command at a time (`runBinary`) or `modelgate serve` kept running
 * (`startServeProcess`). In-process runs of a command are in ./cli.ts.
 */
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

export interface BinaryRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** One `modelgate ...` process, asynchronously (a server child keeps running meanwhile). */
export function runBinary(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<BinaryRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.once("error", reject);
    child.once("close", (status) => {
      resolve({ status, stdout, stderr });
    });
  });
}

export interface ServeProcess {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
  /** stdout lines (pino JSON) and stderr chunks, in arrival order. */
  logs: string[];
}

/**
 * `modelgate serve` on an ephemeral loopback port as a child process, resolved once it logged
 * "modelgate listening" (for the suites where SIGKILL, SIGTERM or a full disk need a real process).
 */
export async function startServeProcess(args: { dataDir: string; allowlist: string; env?: NodeJS.ProcessEnv }): Promise<ServeProcess> {
  if (!existsSync(MAIN_JS)) {
    throw new Error("dist/ is missing: these tests run the built binary; run `npm run build` (npm test does)");
  }
  const child = spawn(process.execPath, [BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--data", args.dataDir, "--allowlist", args.allowlist], {
    env: { PATH: process.env.PATH ?? "", MODELGATE_LOG_LEVEL: "info", MODELGATE_RATE_LIMIT_RPS: "0", ...args.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      resolve(code);
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "modelgate listening" && typeof entry.port === "number") resolve(entry.port);
      } catch {
        // not a log line
      }
    });
    child.stderr.on("data", (d: Buffer) => logs.push(d.toString()));
    void exited.then((code) => {
      reject(new Error(`server exited (${String(code)}) before listening:\n${logs.join("\n")}`));
    });
  });
  return { child, port, exited, logs };
}

/** SIGTERM a serve process still running and wait for its exit. */
export async function stopServeProcess(server: ServeProcess | undefined): Promise<void> {
  if (server === undefined || server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill("SIGTERM");
  await server.exited;
}
