import { randomBytes } from "node:crypto";
import type * as http from "node:http";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import request from "supertest";
import { makeEnv, type TestEnv } from "../http/helpers";
import { makePublisher, sha256Hex, signFor } from "../support/publisher";
import { runCli } from "../support/cli";
import { endlessAnswer, listen } from "../support/net";

const publisher = makePublisher();

/** pull bounds the download by the size the metadata gives (an endless body must not fill the disk). */
describe("modelgate pull: download size bound", () => {
  let env: TestEnv;
  let bytes: Buffer;
  let hex: string;
  let outDir: string;

  beforeAll(async () => {
    env = await makeEnv({ sources: [{ id: "pub", keys: [{ pub: publisher }] }] });
    bytes = randomBytes(256 * 1024 + 17);
    hex = sha256Hex(bytes);
    const res = await request(env.app)
      .post("/v1/artifacts")
      .field("signature", signFor(publisher, bytes, "models/bound"))
      .attach("artifact", bytes, "m.bin");
    expect(res.status).toBe(201);
  });
  beforeEach(async () => {
    outDir = await fsp.mkdtemp(path.join(env.dir, "out-"));
  });
  afterAll(async () => {
    await env.cleanup();
  });

  /** Metadata from the real app, the blob from `blob`. */
  async function pullVia(blob: http.RequestListener, extra: string[] = []): Promise<{ code: number; stderr: string }> {
    const server = await listen((req, res) => {
      if (req.url?.endsWith("/metadata") === true) env.app(req, res);
      else blob(req, res);
    });
    try {
      return await runCli(["pull", hex, "--out", path.join(outDir, "model.bin"), "--url", server.url, ...extra], { cwd: env.dir });
    } finally {
      await server.close();
    }
  }

  it("still pulls the artifact when the server is honest", async () => {
    const res = await pullVia((req, res) => {
      env.app(req, res);
    });
    expect(res.code).toBe(0);
    expect(Buffer.compare(await fsp.readFile(path.join(outDir, "model.bin")), bytes)).toBe(0);
    expect(await fsp.readdir(outDir)).toEqual(["model.bin"]);
  });

  it("aborts an endless chunked body as soon as it passes the expected size, leaving nothing", async () => {
    const endless = endlessAnswer(200, { "Content-Type": "application/octet-stream" });
    const res = await pullVia(endless.handler);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("integrity_error");
    expect(await fsp.readdir(outDir)).toEqual([]);
    expect(endless.sent()).toBeLessThan(64 * 1024 * 1024); // stopped long before the 1 GiB the server would send
  });

  it("aborts a chunked body of the right bytes plus extra, leaving nothing", async () => {
    const res = await pullVia((_req, res) => {
      res.writeHead(200);
      res.write(bytes);
      res.end(Buffer.from("trailing garbage"));
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("integrity_error");
    expect(await fsp.readdir(outDir)).toEqual([]);
  });

  it.each([
    ["larger", 1],
    ["smaller", -1],
  ])("refuses a Content-Length %s than the expected size before writing, leaving nothing", async (_label, delta) => {
    const res = await pullVia((_req, res) => {
      res.writeHead(200, { "Content-Length": String(bytes.length + delta) });
      res.end(delta > 0 ? Buffer.concat([bytes, Buffer.alloc(delta)]) : bytes.subarray(0, bytes.length + delta));
    });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("integrity_error");
    expect(await fsp.readdir(outDir)).toEqual([]);
  });

  it("refuses a 206 whose Content-Length or total disagrees with the expected size and removes the partial", async () => {
    const partial = path.join(outDir, `.model.bin.${hex.slice(0, 16)}.partial`);
    const have = 1000;
    for (const headers of [
      { "Content-Range": `bytes ${String(have)}-${String(bytes.length - 1)}/${String(bytes.length)}`, "Content-Length": String(bytes.length) },
      { "Content-Range": `bytes ${String(have)}-${String(bytes.length + 99)}/${String(bytes.length + 100)}` },
    ]) {
      await fsp.writeFile(partial, bytes.subarray(0, have));
      const res = await pullVia((_req, res) => {
        res.writeHead(206, headers);
        res.end(bytes.subarray(have));
      });
      expect(res.code).toBe(1);
      expect(res.stderr).toContain("integrity_error");
      expect(await fsp.readdir(outDir)).toEqual([]);
    }
  });

  it("resumes from a partial file within the bound, and restarts from a partial longer than the artifact", async () => {
    const partial = path.join(outDir, `.model.bin.${hex.slice(0, 16)}.partial`);
    await fsp.writeFile(partial, bytes.subarray(0, 5000));
    const ranges: (string | undefined)[] = [];
    const resumed = await pullVia((req, res) => {
      ranges.push(req.headers.range);
      env.app(req, res);
    });
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain("resuming at byte 5000");
    await fsp.rm(path.join(outDir, "model.bin"));
    await fsp.writeFile(partial, Buffer.concat([bytes, Buffer.alloc(10)]));
    const restarted = await pullVia((req, res) => {
      ranges.push(req.headers.range);
      env.app(req, res);
    });
    expect(restarted.code).toBe(0);
    expect(ranges).toEqual(["bytes=5000-", undefined]);
    expect(Buffer.compare(await fsp.readFile(path.join(outDir, "model.bin")), bytes)).toBe(0);
    expect(await fsp.readdir(outDir)).toEqual(["model.bin"]);
  });

  it("fails closed when no expected size is known (metadata missing or without a size)", async () => {
    const server = await listen((req, res) => {
      if (req.url?.endsWith("/metadata") === true) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ digest: `sha256:${hex}`, name: "models/bound", signatures: [] }));
        return;
      }
      res.writeHead(200);
      res.end(bytes);
    });
    try {
      const res = await runCli(["pull", hex, "--out", path.join(outDir, "model.bin"), "--url", server.url], { cwd: env.dir });
      expect(res.code).toBe(1);
      expect(res.stderr).toContain("integrity_error");
      expect(await fsp.readdir(outDir)).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
