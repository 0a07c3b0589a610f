import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { ROOT } from "../support/binary";

/**
 * Issue 11: `npm run bench:load` must leave nothing behind, whatever way a run ends: its temp dir
 * (data dir with every uploaded blob, audit log, store tmp/) and its server child. Before, an
 * interrupted run (SIGINT to the bench process) or a server that failed to start left the dir,
 * and a signalled bench left its server running. The bench runs from dist/ with TMPDIR pointed
 * at a folder of this suite, so only its own temp dirs are looked at.
 */
const LOAD_JS = path.join(ROOT, "dist", "bench", "load.js");
const TINY = ["--seconds", "2", "--fetchers", "1", "--publishers", "1", "--fetch-mb", "1", "--upload-mb", "1"];

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(full));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

beforeAll(() => {
  const sources = Math.max(newestMtime(path.join(ROOT, "src")), newestMtime(path.join(ROOT, "bench")));
  if (existsSync(LOAD_JS) && statSync(LOAD_JS).mtimeMs >= sources) return;
  spawnSync(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(ROOT, "tsconfig.build.json")], {
    cwd: ROOT,
    stdio: "ignore",
  });
  if (!existsSync(LOAD_JS)) throw new Error("build did not produce dist/bench/load.js");
}, 120_000);

function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => {
      resolve(true);
    });
  });
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface BenchRun {
  child: ChildProcess;
  exited: Promise<number | null>;
  /** Resolves with the server's port and pid once the bench printed them. */
  serverUp: Promise<{ port: number; pid: number }>;
  output: string[];
}

function runBench(tmp: string, args: string[], env: NodeJS.ProcessEnv = {}): BenchRun {
  const child = spawn(process.execPath, [LOAD_JS, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, TMPDIR: tmp, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  child.stderr.on("data", (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      resolve(code);
    });
  });
  const serverUp = new Promise<{ port: number; pid: number }>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      output.push(line);
      const m = /^server on 127\.0\.0\.1:(\d+) \(pid (\d+),/.exec(line);
      if (m?.[1] !== undefined && m[2] !== undefined) resolve({ port: Number(m[1]), pid: Number(m[2]) });
    });
    void exited.then(() => {
      reject(new Error(`bench exited before its server was up:\n${output.join("\n")}`));
    });
  });
  serverUp.catch(() => undefined);
  return { child, exited, serverUp, output };
}

function benchDirs(tmp: string): string[] {
  return readdirSync(tmp).filter((n) => n.startsWith("modelgate-load-"));
}

describe("bench:load cleans up after itself (issue 11)", () => {
  let tmp: string;
  let serverPid: number | undefined;
  beforeEach(() => {
    tmp = mkdtempSync(path.join(tmpdir(), "mg-bench-load-"));
    serverPid = undefined;
  });
  afterEach(() => {
    if (serverPid !== undefined && isRunning(serverPid)) process.kill(serverPid, "SIGKILL");
    rmSync(tmp, { recursive: true, force: true });
  });

  it("a complete run removes its temp dir and stops its server", async () => {
    const run = runBench(tmp, TINY);
    const { port, pid } = await run.serverUp;
    serverPid = pid;
    expect(await run.exited).toBe(0);
    expect(benchDirs(tmp)).toEqual([]);
    expect(isRunning(pid)).toBe(false);
    expect(await connectRefused(port)).toBe(true);
  }, 60_000);

  it("SIGINT to the bench alone mid-run stops its server and removes its temp dir", async () => {
    const run = runBench(tmp, [...TINY, "--seconds", "30"]);
    const { port, pid } = await run.serverUp;
    serverPid = pid;
    expect(benchDirs(tmp)).toHaveLength(1);
    // Only the bench process: its server child is not in the signal's way (a plain `kill`, not a terminal's Ctrl-C).
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(130);
    expect(benchDirs(tmp)).toEqual([]);
    expect(isRunning(pid)).toBe(false);
    expect(await connectRefused(port)).toBe(true);
  }, 60_000);

  it("a server that fails to start leaves no temp dir", async () => {
    // An invalid setting passed through the environment: `modelgate serve` exits with invalid_config.
    const run = runBench(tmp, TINY, { MODELGATE_RATE_LIMIT_BURST: "0" });
    await expect(run.serverUp).rejects.toThrow(/before its server was up/);
    expect(await run.exited).toBe(2);
    expect(benchDirs(tmp)).toEqual([]);
  }, 60_000);
});
