import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { composeGatewayServer, type GatewayServer } from "../src/compose";
import { DEFAULT_CONTENT_POLICY } from "../src/inspect/policy";
import { ensureBuilt, ROOT } from "./support/binary";
import { allowlistJson, makePublisher, signFor } from "./http/helpers";

/**
 * The composition root: what `serve` runs, built in one call. Uploads are inspected on the
 * worker pool (the real worker, from dist/), and a stop lets the upload in flight finish (its
 * inspection included) before the pool closes.
 */

const publisher = makePublisher();
const BENIGN = readFileSync(path.join(ROOT, "test", "fixtures", "safetensors", "benign.safetensors"));
const EVIL = readFileSync(path.join(ROOT, "test", "fixtures", "pickle-unit", "os-system-p4.pkl"));

/** A multipart upload body, split where the artifact's bytes begin plus `headBytes` of them. */
function multipart(bytes: Buffer, name: string, headBytes: number): { contentType: string; first: Buffer; rest: Buffer } {
  const boundary = `----modelgate-test-${randomUUID()}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="signature"\r\n\r\n${signFor(publisher, bytes, name)}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="m.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const body = Buffer.concat([head, bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  const cut = head.length + headBytes;
  return { contentType: `multipart/form-data; boundary=${boundary}`, first: body.subarray(0, cut), rest: body.subarray(cut) };
}

/** POST in two writes; `between` runs after the first. Resolves with the status and error code. */
function upload(port: number, bytes: Buffer, name: string, between: () => Promise<void> = () => Promise.resolve()): Promise<{ status: number; code?: string }> {
  const { contentType, first, rest } = multipart(bytes, name, Math.floor(bytes.length / 2));
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/v1/artifacts",
      headers: { "content-type": contentType, "content-length": first.length + rest.length },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { error?: { code: string } };
        resolve({ status: res.statusCode ?? 0, ...(body.error !== undefined ? { code: body.error.code } : {}) });
      });
    });
    req.on("error", reject);
    req.write(first);
    between().then(
      () => req.end(rest),
      (err: unknown) => {
        req.destroy();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

describe("composeGatewayServer", () => {
  let dir: string;
  let gateway: GatewayServer | undefined;

  beforeAll(() => {
    ensureBuilt();
  });
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "mg-compose-"));
    writeFileSync(path.join(dir, "allowlist.json"), allowlistJson([{ id: "research", keys: [{ pub: publisher }] }]));
  });
  afterEach(async () => {
    await gateway?.stop();
    gateway = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function compose(): Promise<{ gateway: GatewayServer; port: number }> {
    const env = { MODELGATE_LOG_LEVEL: "silent", MODELGATE_RATE_LIMIT_RPS: "0", MODELGATE_INSPECT_WORKERS: "1" };
    gateway = await composeGatewayServer(env, { port: "0", dataDir: path.join(dir, "data"), allowlistPath: path.join(dir, "allowlist.json") });
    return { gateway, port: await gateway.start() };
  }

  it("builds the server from the environment and flags, inspects uploads on its worker pool, and stops", async () => {
    const { gateway: g, port } = await compose();
    expect(g.config.inspect.workers).toBe(1);
    expect(await upload(port, BENIGN, "research/model.safetensors")).toEqual({ status: 201 });
    expect(await upload(port, EVIL, "research/evil.pkl")).toEqual({ status: 422, code: "unsafe_artifact" });
    expect(g.inspectors.stats()).toEqual({ workers: 1, busy: 0, queued: 0 });
    await g.stop();
    await g.stop();
    expect(g.server.listening).toBe(false);
    expect(g.inspectors.stats().workers).toBe(0);
    await expect(g.inspectors.inspect(path.join(dir, "allowlist.json"), { policy: DEFAULT_CONTENT_POLICY })).rejects.toMatchObject({ code: "unavailable" });
  });

  it("a stop lets the upload in flight finish, inspection included, before the workers are closed", async () => {
    const { gateway: g, port } = await compose();
    let stopped: Promise<void> | undefined;
    const result = await upload(port, BENIGN, "research/late.safetensors", async () => {
      // Bounded poll until the upload's temp file exists (its body is arriving), then stop.
      const tmp = path.join(dir, "data", "tmp");
      const deadline = Date.now() + 10_000;
      while (readdirSync(tmp).length === 0) {
        if (Date.now() > deadline) throw new Error("the upload never reached the store");
        await new Promise((r) => setTimeout(r, 5));
      }
      stopped = g.stop();
    });
    expect(result).toEqual({ status: 201 });
    await stopped;
    expect(g.server.listening).toBe(false);
    expect(g.inspectors.stats().workers).toBe(0);
  });

  it("a port already in use: io_error, and nothing is left running (the pool refuses work)", async () => {
    const holder = http.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    try {
      const taken = String((holder.address() as { port: number }).port);
      const env = { MODELGATE_LOG_LEVEL: "silent" };
      const g = await composeGatewayServer(env, { port: taken, dataDir: path.join(dir, "data"), allowlistPath: path.join(dir, "allowlist.json") });
      await expect(g.start()).rejects.toMatchObject({ code: "io_error" });
      await expect(g.inspectors.inspect(path.join(dir, "allowlist.json"), { policy: DEFAULT_CONTENT_POLICY })).rejects.toMatchObject({ code: "unavailable" });
    } finally {
      await new Promise<void>((resolve) =>
        holder.close(() => {
          resolve();
        }),
      );
    }
  });
});
