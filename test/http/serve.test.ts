import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { serveCommand } from "../../src/cli/commands/serve";
import { allowlistJson, makePublisher } from "./helpers";
import { freePort, waitForHttp } from "../support/net";

describe("modelgate serve", () => {
  let dir: string;
  const io = (env: NodeJS.ProcessEnv) => ({ stdout: () => undefined, stderr: () => undefined, env: { MODELGATE_LOG_LEVEL: "silent", ...env }, cwd: dir });

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-serve-"));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("refuses to start with an invalid allowlist", async () => {
    await fsp.writeFile(path.join(dir, "allowlist.json"), '{"version": 2}');
    await expect(serveCommand.run(["--data", "data", "--allowlist", path.join(dir, "allowlist.json"), "--port", "0"], io({}))).rejects.toMatchObject({
      code: "invalid_allowlist",
    });
  });

  it("refuses a non-loopback bind without API tokens", async () => {
    await fsp.writeFile(path.join(dir, "allowlist.json"), allowlistJson([{ id: "a", keys: [{ pub: makePublisher() }] }]));
    await expect(
      serveCommand.run(["--host", "0.0.0.0", "--data", path.join(dir, "data"), "--allowlist", path.join(dir, "allowlist.json")], io({})),
    ).rejects.toMatchObject({
      code: "invalid_config",
    });
  });

  it("serves, reloads the allowlist on SIGHUP, and stops on SIGTERM", async () => {
    const allowlist = path.join(dir, "allowlist.json");
    await fsp.writeFile(allowlist, allowlistJson([{ id: "a", keys: [{ pub: makePublisher() }] }]));
    const port = await freePort();
    const running = serveCommand.run(["--port", String(port), "--data", path.join(dir, "data"), "--allowlist", allowlist], io({}));
    const base = `http://127.0.0.1:${String(port)}`;
    expect((await waitForHttp(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ status: "ready" });
    await fsp.writeFile(allowlist, allowlistJson([{ id: "b", keys: [{ pub: makePublisher() }] }]));
    process.emit("SIGHUP");
    // the reload is audited in the data dir's audit log
    const auditLog = path.join(dir, "data", "audit.log");
    const deadline = Date.now() + 10_000;
    while (!(await fsp.readFile(auditLog, "utf8").catch(() => "")).includes("allowlist.reloaded")) {
      if (Date.now() > deadline) throw new Error("no reload audited");
      await new Promise((r) => setTimeout(r, 25));
    }
    process.emit("SIGTERM");
    await expect(running).resolves.toBe(0);
  });
});
