import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { BIN, ensureBuilt, ROOT } from "../support/binary";

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command; a process still alive after `limitMs` is killed (code null): that is the hang. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, limitMs: number): Promise<Exit> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env, detached: true });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, limitMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("modelgate serve on a port already in use", () => {
  let holder: net.Server;
  let port: number;
  let dir: string;
  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(path.join(tmpdir(), "mg-serve-listen-"));
    holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    port = (holder.address() as net.AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) =>
      holder.close(() => {
        resolve();
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  });

  const env = (): NodeJS.ProcessEnv => {
    const e: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: "127.0.0.1", MODELGATE_DATA_DIR: path.join(dir, "data") };
    delete e.MODELGATE_TOKENS_FILE;
    return e;
  };

  it("exits 2 at once with one io_error line, and never claims to listen", async () => {
    const result = await run(process.execPath, [BIN, "serve", "--allowlist", path.join(ROOT, "allowlist.json")], env(), 10_000);
    expect(result.code).toBe(2);
    const errorLines = result.stderr.split("\n").filter((l) => l.length > 0);
    expect(errorLines).toHaveLength(1);
    expect(errorLines[0]).toMatch(/^modelgate serve: io_error: .*EADDRINUSE/);
    expect(result.stdout).not.toContain("modelgate listening");
  }, 20_000);

  it("npm start exits non-zero the same way (the script's exit status 2)", async () => {
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const result = await run(npm, ["start", "--silent"], env(), 15_000);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/modelgate serve: io_error: .*EADDRINUSE/);
    expect(result.stdout).not.toContain("modelgate listening");
  }, 30_000);
});
