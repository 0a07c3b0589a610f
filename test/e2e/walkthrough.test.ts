import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ensureBuilt, ROOT } from "../support/binary";
import { freePort } from "../support/net";

const PORT_LINE = /^PORT=8080(?=\s)/m;

/** The walk-through of README.md, as a newcomer pastes it: the docs are the test. */
function readmeWalkthrough(): string {
  const md = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const m = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(md);
  if (!m?.[1]) throw new Error("README.md has no walk-through block between the walkthrough markers");
  return m[1];
}

/**
 * The block with the one edit the README promises is enough to move it to another port: its
 * `PORT=8080` line (another server may hold 8080). The temp dir lands under `home`.
 */
function documentedWalkthrough(block: string, port: number, home: string): string {
  return block.replace(PORT_LINE, `PORT=${String(port)}`).replace('cd "$(mktemp -d)"', `cd "$(mktemp -d -p '${home}')"`);
}

/**
 * A listener on 127.0.0.1:8080 that counts and drops every connection: a step that ignored the
 * port variable would land here. undefined when 8080 is busy (then the static check stands alone).
 */
async function sentinelOn8080(): Promise<{ connections: () => number; close: () => Promise<void> } | undefined> {
  let count = 0;
  const server = net.createServer((socket) => {
    count += 1;
    socket.destroy();
  });
  const bound = await new Promise<boolean>((resolve) => {
    server.once("error", () => {
      resolve(false);
    });
    server.listen(8080, "127.0.0.1", () => {
      resolve(true);
    });
  });
  if (!bound) return undefined;
  return {
    connections: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
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

  it("sets the port once: its only 8080 is the PORT line, every step uses the variable", () => {
    const block = readmeWalkthrough();
    const with8080 = block.split("\n").filter((line) => line.includes("8080"));
    expect(with8080).toHaveLength(1);
    expect(with8080[0]).toMatch(PORT_LINE);
    expect(block).toMatch(/^export MODELGATE_URL="http:\/\/127\.0\.0\.1:\$PORT"/m);
  });

  it("runs start to end on another port with the answers it promises, and no step reaches 8080", async () => {
    const port = await freePort();
    // Nothing from this shell: the walk-through must set MODELGATE_URL (and the port) itself.
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.MODELGATE_URL;
    delete env.MODELGATE_TOKEN;
    delete env.PORT;
    const sentinel = await sentinelOn8080();
    if (sentinel === undefined) process.stdout.write("walkthrough: 127.0.0.1:8080 is busy; only the static check shows that no step uses it\n");
    let result: { code: number | null; out: string };
    try {
      result = await runBash(documentedWalkthrough(readmeWalkthrough(), port, home), ROOT, env, 60_000);
    } finally {
      await sentinel?.close();
    }
    const { code, out } = result;
    expect(sentinel?.connections() ?? 0).toBe(0);
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
