import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import type * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { makePublisher, sha256Hex, signFor } from "../support/publisher";
import { runCli } from "../support/cli";
import { endlessAnswer, listen } from "../support/net";

const publisher = makePublisher();

/** An error-shaped JSON answer whose message never ends. */
const endlessJson = (status: number): ReturnType<typeof endlessAnswer> =>
  endlessAnswer(status, { "Content-Type": "application/json" }, { fill: 0x20, prefix: '{"error": {"code": "untrusted_source", "message": "' });

/** push and pull read a server's answers to a bound: an endless body is neither buffered nor read to its end. */
describe("modelgate push/pull: bounded reads of the server's answers", () => {
  let dir: string;
  let artifact: string;
  let sig: string;
  let hex: string;

  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-answers-"));
    const bytes = randomBytes(4096);
    hex = sha256Hex(bytes);
    artifact = path.join(dir, "model.bin");
    sig = path.join(dir, "model.sig.json");
    await fsp.writeFile(artifact, bytes);
    await fsp.writeFile(sig, signFor(publisher, bytes, "models/answers"));
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  async function against(
    handler: http.RequestListener,
    run: (url: string) => Promise<{ code: number; stderr: string }>,
  ): Promise<{ code: number; stderr: string }> {
    const server = await listen(handler);
    try {
      return await run(server.url);
    } finally {
      await server.close();
    }
  }

  it.each([
    ["PUT", []],
    ["POST multipart", ["--multipart"]],
  ])("push (%s): an endless error answer is reported without being read to its end", async (_label, extra) => {
    const endless = endlessJson(403);
    const res = await against(endless.handler, (url) => runCli(["push", artifact, "--sig", sig, "--url", url, ...extra], { env: { cwd: dir } }));
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("internal: server answered HTTP 403 without an error body");
    expect(endless.sent()).toBeLessThan(64 * 1024 * 1024);
  });

  it("push: an endless success answer is refused as not an upload result", async () => {
    const endless = endlessJson(201);
    const res = await against(endless.handler, (url) => runCli(["push", artifact, "--sig", sig, "--url", url], { env: { cwd: dir } }));
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("internal: the server's answer is not an upload result");
    expect(endless.sent()).toBeLessThan(256 * 1024 * 1024);
  });

  it("pull: an endless error answer to the metadata request is reported without being read to its end", async () => {
    const endless = endlessJson(404);
    const out = path.join(dir, "pulled.bin");
    const res = await against(endless.handler, (url) => runCli(["pull", hex, "--out", out, "--url", url], { env: { cwd: dir } }));
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("internal: server answered HTTP 404 without an error body");
    expect(endless.sent()).toBeLessThan(64 * 1024 * 1024);
    await expect(fsp.stat(out)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("push still reports the server's own code from a well-formed error answer", async () => {
    const res = await against(
      (req, res) => {
        req.resume();
        res.writeHead(403, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { code: "untrusted_source", message: "no trusted key signed this" } }));
      },
      (url) => runCli(["push", artifact, "--sig", sig, "--url", url], { env: { cwd: dir } }),
    );
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("untrusted_source: no trusted key signed this (HTTP 403)");
  });
});
