import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fsp, readFileSync } from "node:fs";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { BIN, ROOT, ensureBuilt } from "../support/binary";
import { makePublisher, sha256Hex, signFor } from "../http/helpers";

/**
 * push and pull over https (src/cli/gatewayClient.ts uses node:https for https URLs): a gateway
 * behind TLS with a private CA, trusted the way node trusts one (NODE_EXTRA_CA_CERTS), and refused
 * without it. The real binary runs as a child: NODE_EXTRA_CA_CERTS is read at process start.
 * The certificate is test/fixtures/tls/cert.pem (made by test/fixtures/tls/make.sh).
 */

const TLS_DIR = path.join(ROOT, "test", "fixtures", "tls");
const CERT = path.join(TLS_DIR, "cert.pem");
const publisher = makePublisher();

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { PATH: process.env.PATH ?? "", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", reject);
    child.on("close", (status) => {
      resolve({ status, stdout, stderr });
    });
  });
}

describe("push and pull over https", () => {
  let dir: string;
  let bytes: Buffer;
  let hex: string;
  let server: https.Server;
  let url: string;
  const uploads: { method: string | undefined; digest: string }[] = [];

  beforeAll(async () => {
    ensureBuilt();
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-tls-"));
    bytes = randomBytes(3 * 1024 * 1024 + 5);
    hex = sha256Hex(bytes);
    await fsp.writeFile(path.join(dir, "model.bin"), bytes);
    await fsp.writeFile(path.join(dir, "model.sig.json"), signFor(publisher, bytes, "models/tls"));
    server = https.createServer({ key: readFileSync(path.join(TLS_DIR, "key.pem")), cert: readFileSync(CERT) }, (req, res) => {
      if (req.method === "PUT") {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
          const body = Buffer.concat(chunks);
          uploads.push({ method: req.method, digest: sha256Hex(body) });
          res.writeHead(201, { "Content-Type": "application/json" });
          res.end(JSON.stringify({ digest: `sha256:${sha256Hex(body)}`, size: body.length, name: "models/tls", source: "pub" }));
        });
      } else if (req.url?.endsWith("/metadata") === true) {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ digest: `sha256:${hex}`, name: "models/tls", size: bytes.length, signatures: [] }));
      } else {
        res.writeHead(200, { "Content-Length": String(bytes.length) });
        res.end(bytes);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${String((server.address() as AddressInfo).port)}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("push and pull succeed against a gateway whose CA is trusted through NODE_EXTRA_CA_CERTS", async () => {
    const push = await run(["push", "model.bin", "--sig", "model.sig.json", "--url", url], dir, { NODE_EXTRA_CA_CERTS: CERT });
    expect([push.status, push.stdout]).toEqual([0, `sha256:${hex}\n`]);
    expect(uploads).toEqual([{ method: "PUT", digest: hex }]);
    const pull = await run(["pull", hex, "--out", "pulled.bin", "--url", url], dir, { NODE_EXTRA_CA_CERTS: CERT });
    expect(pull.status).toBe(0);
    expect(Buffer.compare(await fsp.readFile(path.join(dir, "pulled.bin")), bytes)).toBe(0);
  });

  it("push and pull refuse a certificate they do not trust (io_error, exit 2, nothing written)", async () => {
    const push = await run(["push", "model.bin", "--sig", "model.sig.json", "--url", url], dir, {});
    expect([push.status, push.stderr]).toEqual([2, expect.stringContaining(": io_error: ")]);
    const pull = await run(["pull", hex, "--out", "untrusted.bin", "--url", url], dir, {});
    expect([pull.status, pull.stderr]).toEqual([2, expect.stringContaining(": io_error: ")]);
    await expect(fsp.stat(path.join(dir, "untrusted.bin"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
