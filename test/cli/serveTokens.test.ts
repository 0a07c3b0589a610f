import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { serveCommand } from "../../src/cli/commands/serve";
import { allowlistJson, makePublisher } from "../support/publisher";
import { runCli } from "../support/cli";
import { freePort, waitForHttp } from "../support/net";

describe("modelgate serve with a tokens file", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-serve-tokens-"));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("token revoke + SIGHUP: the revoked token gets 401 without a restart, the others keep working", async () => {
    const tokens = path.join(dir, "tokens.json");
    const tokenEnv = { MODELGATE_TOKENS_FILE: tokens };
    const ci = await runCli(["token", "create", "--id", "ci", "--scope", "publish,read"], { env: tokenEnv });
    const serving = await runCli(["token", "create", "--id", "serving", "--scope", "read"], { env: tokenEnv });
    expect([ci.code, serving.code]).toEqual([0, 0]);
    const ciToken = ci.stdout.trim();
    const servingToken = serving.stdout.trim();

    const allowlist = path.join(dir, "allowlist.json");
    await fsp.writeFile(allowlist, allowlistJson([{ id: "a", keys: [{ pub: makePublisher() }] }]));
    const port = await freePort();
    const env = { MODELGATE_LOG_LEVEL: "silent", MODELGATE_RATE_LIMIT_RPS: "0", ...tokenEnv };
    const running = serveCommand.run(["--port", String(port), "--data", path.join(dir, "data"), "--allowlist", allowlist], {
      stdout: () => undefined,
      stderr: () => undefined,
      env,
      cwd: dir,
    });
    const base = `http://127.0.0.1:${String(port)}`;
    const list = async (token: string): Promise<number> => (await fetch(`${base}/v1/artifacts`, { headers: { authorization: `Bearer ${token}` } })).status;
    try {
      expect((await waitForHttp(`${base}/healthz`)).status).toBe(200);
      expect(await list(servingToken)).toBe(200);
      expect(await list(ciToken)).toBe(200);

      const revoke = await runCli(["token", "revoke", "--id", "serving"], { env: tokenEnv });
      expect(revoke.code).toBe(0);
      expect(revoke.stderr).not.toMatch(/restart/i);
      process.emit("SIGHUP");

      // The reload is asynchronous (SIGHUP, and the file watch may get there first): poll.
      const deadline = Date.now() + 10_000;
      while ((await list(servingToken)) !== 401) {
        if (Date.now() > deadline) throw new Error("revoked token still accepted");
        await new Promise((r) => setTimeout(r, 25));
      }
      const res = await fetch(`${base}/v1/artifacts`, { headers: { authorization: `Bearer ${servingToken}` } });
      expect([res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([401, "unauthenticated"]);
      expect(await list(ciToken)).toBe(200);

      const audit = await fsp.readFile(path.join(dir, "data", "audit.log"), "utf8");
      const reloads = audit
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string; details?: { removed?: string[] } })
        .filter((e) => e.type === "tokens.reloaded");
      expect(reloads[0]?.details?.removed).toEqual(["serving"]);
      expect(audit).not.toContain(servingToken);
    } finally {
      process.emit("SIGTERM");
      await running;
    }
  });
});
