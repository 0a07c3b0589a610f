import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ensureBuilt, ROOT } from "../helpers/binary";
import { freePort } from "../helpers/net";

/** The walk-through of README.md, as a newcomer pastes it: the docs are the test. */
function documentedWalkthrough(port: number, home: string): string {
  const md = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const m = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(md);
  if (!m?.[1]) throw new Error("README.md has no walk-through block between the walkthrough markers");
  // Only the port changes (another server may hold 8080), and the temp dir lands under `home`.
  return m[1].replaceAll("8080", String(port)).replace('cd "$(mktemp -d)"', `cd "$(mktemp -d -p '${home}')"`);
}

function runBash(script: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // Its own process group: a server left running by a broken script is killed with it.
    const child = spawn("bash", ["-c", script], { cwd, detached: true, env });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      resolve({ code, out });
    });
  });
}

describe("README walk-through", () => {
  let home: string;
  beforeAll(() => {
    ensureBuilt();
    home = mkdtempSync(path.join(tmpdir(), "mg-walkthrough-"));
  });
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
  });

  it("runs start to end with the answers it promises", async () => {
    const port = await freePort();
    // The CLI steps rely on the default URL (port 8080): the same substitution, through the env.
    const env: NodeJS.ProcessEnv = { ...process.env, MODELGATE_URL: `http://127.0.0.1:${String(port)}` };
    delete env.MODELGATE_TOKEN;
    const { code, out } = await runBash(documentedWalkthrough(port, home), ROOT, env, 60_000);
    expect(code).toBe(0);
    expect(out).toContain('{"status":"ready"}');
    // 5. the multipart push creates it, curl PUT and the CLI find it stored
    expect(out).toMatch(/"digest":"sha256:[0-9a-f]{64}"[^\n]*"format":"safetensors"/);
    expect(out).toContain("already stored: models/demo.safetensors");
    // 6. fetch headers, metadata, pull
    expect(out).toMatch(/HTTP\/1\.1 200 OK/);
    expect(out).toMatch(/Docker-Content-Digest: sha256:[0-9a-f]{64}/i);
    expect(out).toContain("trusted locally: models/demo.safetensors signed by source alice");
    expect(out).toContain("identical");
    // 7. rejections, and nothing left behind
    expect(out).toContain('"code":"untrusted_source"');
    expect(out).toContain("digest_mismatch");
    expect(out).toContain("exit 1");
    const [workDir] = readdirSync(home);
    expect(workDir).toBeDefined();
    expect(readdirSync(path.join(home, workDir ?? "", "data", "tmp"))).toEqual([]);
  }, 90_000);
});
