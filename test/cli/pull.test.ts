import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import request from "supertest";
import { makeEnv, type TestEnv } from "../http/helpers";
import { allowlistJson, makePublisher, sha256Hex, signFor } from "../support/publisher";
import { runCli } from "../support/cli";
import { listen } from "../support/net";

const publisher = makePublisher();
const other = makePublisher();

describe("modelgate pull", () => {
  let env: TestEnv;
  let server: { url: string; close(): Promise<void> };
  let bytes: Buffer;
  let hex: string;
  let outDir: string;

  beforeAll(async () => {
    env = await makeEnv({ sources: [{ id: "pub", keys: [{ pub: publisher }] }] });
    server = await listen(env.app);
    bytes = randomBytes(3 * 1024 * 1024 + 123);
    hex = sha256Hex(bytes);
    const res = await request(env.app)
      .post("/v1/artifacts")
      .field("signature", signFor(publisher, bytes, "models/pull"))
      .attach("artifact", bytes, "m.bin");
    expect(res.status).toBe(201);
    await fsp.writeFile(path.join(env.dir, "mine.json"), allowlistJson([{ id: "pub", keys: [{ pub: publisher }] }]));
    await fsp.writeFile(path.join(env.dir, "others.json"), allowlistJson([{ id: "other", keys: [{ pub: other }] }]));
  });
  beforeEach(async () => {
    outDir = await fsp.mkdtemp(path.join(env.dir, "out-"));
  });
  afterAll(async () => {
    await server.close();
    await env.cleanup();
  });

  it("downloads, verifies and renames into place; with --allowlist verifies the envelopes locally", async () => {
    const res = await runCli(["pull", `sha256:${hex}`, "--out", path.join(outDir, "model.bin"), "--url", server.url], { cwd: env.dir });
    expect(res.code).toBe(0);
    expect(Buffer.compare(await fsp.readFile(path.join(outDir, "model.bin")), bytes)).toBe(0);
    expect(await fsp.readdir(outDir)).toEqual(["model.bin"]);
    const trusted = await runCli(["pull", hex, "--out", path.join(outDir, "again.bin"), "--allowlist", "mine.json"], {
      env: { MODELGATE_URL: server.url },
      cwd: env.dir,
    });
    expect(trusted.code).toBe(0);
    expect(trusted.stderr).toContain("source pub");
  });

  it("refuses an artifact the local allowlist does not trust, writing nothing", async () => {
    const res = await runCli(["pull", hex, "--out", path.join(outDir, "model.bin"), "--url", server.url, "--allowlist", "others.json"], { cwd: env.dir });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("untrusted_source");
    expect(await fsp.readdir(outDir)).toEqual([]);
  });

  it("maps server and usage errors to exit codes", async () => {
    const unknown = await runCli(["pull", sha256Hex(Buffer.from("nope")), "--out", path.join(outDir, "x"), "--url", server.url], { cwd: env.dir });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("not_found");
    expect((await runCli(["pull", "sha256:bad", "--out", path.join(outDir, "x"), "--url", server.url], { cwd: env.dir })).code).toBe(2);
    expect((await runCli(["pull", hex, "--url", server.url], { cwd: env.dir })).code).toBe(2);
    expect(await fsp.readdir(outDir)).toEqual([]);
  });

  it("resumes an interrupted download with a Range request and never leaves a partial file at --out", async () => {
    const cut = 1024 * 1024 + 7;
    const ranges: (string | undefined)[] = [];
    let first = true;
    const flaky = await listen((req, res) => {
      if (req.url?.endsWith("/metadata") === true) {
        env.app(req, res);
        return;
      }
      ranges.push(req.headers.range);
      if (first) {
        first = false;
        res.writeHead(200, { "Content-Length": String(bytes.length), "Content-Type": "application/octet-stream" });
        res.write(bytes.subarray(0, cut), () => {
          res.destroy();
        });
        return;
      }
      env.app(req, res);
    });
    try {
      const out = path.join(outDir, "model.bin");
      const interrupted = await runCli(["pull", hex, "--out", out, "--url", flaky.url], { cwd: env.dir });
      expect(interrupted.code).toBe(2);
      expect(interrupted.stderr).toContain("io_error");
      const leftovers = await fsp.readdir(outDir);
      expect(leftovers).toHaveLength(1);
      expect(leftovers[0]).toMatch(/^\.model\.bin\..*\.partial$/);
      const partialSize = (await fsp.stat(path.join(outDir, leftovers[0]!))).size;
      expect(partialSize).toBeGreaterThan(0);
      expect(partialSize).toBeLessThan(bytes.length);

      const resumed = await runCli(["pull", hex, "--out", out, "--url", flaky.url], { cwd: env.dir });
      expect(resumed.code).toBe(0);
      expect(resumed.stderr).toContain(`resuming at byte ${String(partialSize)}`);
      expect(ranges).toEqual([undefined, `bytes=${String(partialSize)}-`]);
      expect(Buffer.compare(await fsp.readFile(out), bytes)).toBe(0);
      expect(await fsp.readdir(outDir)).toEqual(["model.bin"]);
    } finally {
      await flaky.close();
    }
  });

  it("rejects bytes that do not hash to the digest and removes them", async () => {
    const liar = await listen((req, res) => {
      if (req.url?.endsWith("/metadata") === true) {
        env.app(req, res);
        return;
      }
      const wrong = Buffer.from(bytes);
      wrong[0] = wrong[0]! ^ 0xff;
      res.writeHead(200, { "Content-Length": String(wrong.length) });
      res.end(wrong);
    });
    try {
      const res = await runCli(["pull", hex, "--out", path.join(outDir, "model.bin"), "--url", liar.url], { cwd: env.dir });
      expect(res.code).toBe(1);
      expect(res.stderr).toContain("integrity_error");
      expect(await fsp.readdir(outDir)).toEqual([]);
    } finally {
      await liar.close();
    }
  });
  it.each([
    ["another offset", (have: number) => `bytes 0-${String(bytes.length - 1)}/${String(bytes.length)}`.replace(/^bytes 0/, have === 0 ? "bytes 1" : "bytes 0")],
    ["no Content-Range", () => undefined],
    ["a malformed Content-Range", () => "bytes */5"],
  ])("a 206 resuming at %s removes the partial file (the next pull starts afresh) and fails integrity_error", async (_label, contentRange) => {
    const out = path.join(outDir, "model.bin");
    const partial = path.join(outDir, `.model.bin.${hex.slice(0, 16)}.partial`);
    const have = 1000;
    await fsp.writeFile(partial, bytes.subarray(0, have));
    const liar = await listen((req, res) => {
      if (req.url?.endsWith("/metadata") === true) {
        env.app(req, res);
        return;
      }
      const range = contentRange(have);
      res.writeHead(206, { "Content-Length": String(bytes.length), ...(range !== undefined ? { "Content-Range": range } : {}) });
      res.end(bytes);
    });
    try {
      const res = await runCli(["pull", hex, "--out", out, "--url", liar.url], { cwd: env.dir });
      expect(res.code).toBe(1);
      expect(res.stderr).toContain("integrity_error");
      expect(await fsp.readdir(outDir)).toEqual([]);
    } finally {
      await liar.close();
    }
  });
  it("refuses to follow a symlink planted at the partial file's path (the target is never written)", async () => {
    const out = path.join(outDir, "model.bin");
    const victim = path.join(outDir, "victim.txt");
    await fsp.writeFile(victim, "precious");
    await fsp.symlink(victim, path.join(outDir, `.model.bin.${hex.slice(0, 16)}.partial`));
    const res = await runCli(["pull", hex, "--out", out, "--url", server.url], { cwd: env.dir });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("io_error");
    expect(await fsp.readFile(victim, "utf8")).toBe("precious");
    await expect(fsp.stat(out)).rejects.toThrow();
  });
});
