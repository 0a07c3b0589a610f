import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fsp, readFileSync, writeFileSync } from "node:fs";
import type * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { BIN, ensureBuilt } from "../support/binary";
import { makePublisher, sha256Hex, signFor } from "../http/helpers";
import { runCli } from "../support/cli";
import { listen } from "../support/net";

/**
 * Issue 11: push and pull speak node's http directly (src/cli/gatewayClient.ts) instead of fetch.
 * What fetch did for them must still hold: pull follows redirects (the token stays with the
 * gateway's origin), push sends the whole file with its Content-Length, and neither command loads
 * the server's packages.
 */

const publisher = makePublisher();

describe("push and pull over node's http client", () => {
  let dir: string;
  let bytes: Buffer;
  let hex: string;

  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-client-"));
    // Larger than the client's read and write buffers (2 and 4 MiB), not a multiple of either.
    bytes = randomBytes(9 * 1024 * 1024 + 321);
    hex = sha256Hex(bytes);
    await fsp.writeFile(path.join(dir, "model.bin"), bytes);
    await fsp.writeFile(path.join(dir, "model.sig.json"), signFor(publisher, bytes, "models/client"));
  });
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  /** A gateway stand-in: metadata and blob of `bytes`, and every request's path and Authorization. */
  function gatewayStandIn(seen: { url: string; authorization: string | undefined }[]): http.RequestListener {
    return (req, res) => {
      seen.push({ url: req.url ?? "", authorization: req.headers.authorization });
      if (req.url?.endsWith("/metadata") === true) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ digest: `sha256:${hex}`, name: "models/client", size: bytes.length, signatures: [] }));
        return;
      }
      res.writeHead(200, { "Content-Length": String(bytes.length), "Content-Type": "application/octet-stream" });
      res.end(bytes);
    };
  }

  it("pull follows redirects; the token is sent to the gateway's origin only", async () => {
    const seen: { url: string; authorization: string | undefined }[] = [];
    const elsewhere = await listen(gatewayStandIn(seen));
    const standIn = gatewayStandIn(seen);
    const gateway = await listen((req, res) => {
      const url = req.url ?? "";
      // Everything under /old/ moved within the gateway (same origin); the blob is served by another origin.
      if (url.startsWith("/old/")) {
        seen.push({ url, authorization: req.headers.authorization });
        res.writeHead(301, { Location: url.replace("/old/", "/") }).end();
      } else if (url.endsWith("/metadata")) {
        standIn(req, res);
      } else {
        seen.push({ url, authorization: req.headers.authorization });
        res.writeHead(307, { Location: `${elsewhere.url}${url}` }).end();
      }
    });
    try {
      const out = path.join(dir, "pulled.bin");
      const res = await runCli(["pull", hex, "--out", out, "--url", `${gateway.url}/old`], { env: { MODELGATE_TOKEN: "secret-token" }, cwd: dir });
      expect([res.code, res.stderr]).toEqual([0, ""]);
      expect(Buffer.compare(await fsp.readFile(out), bytes)).toBe(0);
      expect(seen.map((s) => [s.url.replace(hex, "<hex>"), s.authorization])).toEqual([
        ["/old/v1/artifacts/sha256:<hex>/metadata", "Bearer secret-token"],
        ["/v1/artifacts/sha256:<hex>/metadata", "Bearer secret-token"],
        ["/old/v1/artifacts/sha256:<hex>", "Bearer secret-token"],
        ["/v1/artifacts/sha256:<hex>", "Bearer secret-token"],
        ["/v1/artifacts/sha256:<hex>", undefined],
      ]);
    } finally {
      await gateway.close();
      await elsewhere.close();
    }
  });

  it("pull gives up on a redirect loop with io_error, writing nothing", async () => {
    const loop = await listen((req, res) => {
      res.writeHead(302, { Location: req.url ?? "/" });
      res.end();
    });
    try {
      const out = path.join(dir, "loop.bin");
      const res = await runCli(["pull", hex, "--out", out, "--url", loop.url], { env: {}, cwd: dir });
      expect(res.code).toBe(2);
      expect(res.stderr).toContain(": io_error: ");
      await expect(fsp.stat(out)).rejects.toMatchObject({ code: "ENOENT" });
    } finally {
      await loop.close();
    }
  });

  it("push sends the whole file, with its Content-Length, as the body of the PUT", async () => {
    let received: { method: string | undefined; length: string | undefined; digest: string } | undefined;
    const gateway = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        received = { method: req.method, length: req.headers["content-length"], digest: sha256Hex(body) };
        res.writeHead(201, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ digest: `sha256:${sha256Hex(body)}`, size: body.length, name: "models/client", source: "pub" }));
      });
    });
    try {
      const res = await runCli(["push", "model.bin", "--sig", "model.sig.json", "--url", gateway.url], { env: {}, cwd: dir });
      expect([res.code, res.stdout]).toEqual([0, `sha256:${hex}\n`]);
      expect(received).toEqual({ method: "PUT", length: String(bytes.length), digest: hex });
    } finally {
      await gateway.close();
    }
  });

  it("push and pull load none of the server's packages (express, multer, prom-client, pino)", () => {
    ensureBuilt();
    const hook = path.join(dir, "listModules.js");
    writeFileSync(
      hook,
      'process.on("exit", () => { require("node:fs").writeFileSync(process.env.MODELGATE_TEST_MODULES_OUT, Object.keys(require.cache).join("\\n")); });\n',
    );
    // A port nothing listens on: the commands load their whole graph, then fail to connect (exit 2).
    const refused = "http://127.0.0.1:9";
    for (const args of [
      ["push", "model.bin", "--sig", "model.sig.json", "--url", refused],
      ["pull", hex, "--out", "x.bin", "--url", refused],
    ]) {
      const outPath = path.join(dir, "modules.txt");
      const r = spawnSync(process.execPath, ["--require", hook, BIN, ...args], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? "", MODELGATE_TEST_MODULES_OUT: outPath },
        encoding: "utf8",
      });
      expect([args[0], r.status, r.stderr]).toEqual([args[0], 2, expect.stringContaining(": io_error: ")]);
      const modules = readFileSync(outPath, "utf8").split("\n");
      expect(modules.some((m) => m.endsWith(path.join("dist", "src", "cli", "gatewayClient.js")))).toBe(true);
      const heavy = ["express", "multer", "prom-client", "pino"].filter((name) =>
        modules.some((m) => m.includes(`${path.sep}node_modules${path.sep}${name}${path.sep}`)),
      );
      expect([args[0], heavy]).toEqual([args[0], []]);
    }
  });
});
