import { mkdtemp, readdir, rm } from "node:fs/promises";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { verifyAuditLog } from "../../src/audit/fileLog";
import { sha256Hex } from "../support/publisher";
import { startServeProcess, type ServeProcess } from "../support/binary";
import { uniqueSafetensors } from "../support/bytes";
import { beginUpload, get, trustNewPublisher, until } from "./serverProcess";

function connectRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => {
      resolve(true);
    });
  });
}

/** SIGTERM: stop accepting, finish the upload in flight, exit 0; nothing partial is left. */
describe("graceful shutdown (SIGTERM)", () => {
  let dir: string;
  let server: ServeProcess | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mg-faults-term-"));
  });
  afterEach(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("finishes the in-flight upload, refuses new connections, exits 0 with a valid audit chain", async () => {
    const dataDir = path.join(dir, "data");
    const allowlist = path.join(dir, "allowlist.json");
    const key = trustNewPublisher(allowlist);
    server = await startServeProcess({ dataDir, allowlist });
    const port = server.port;

    const bytes = uniqueSafetensors(2 * 1024 * 1024);
    const upload = beginUpload(port, key, "faults/in-flight.safetensors", bytes);
    upload.req.write(bytes.subarray(0, 1024 * 1024));
    const tmp = path.join(dataDir, "tmp");
    await until(async () => (await readdir(tmp)).length > 0, "the upload to be staged");

    server.child.kill("SIGTERM");
    await until(() => connectRefused(port), "the listener to close");
    upload.req.end(Buffer.concat([bytes.subarray(1024 * 1024), upload.parts.tail]));
    const answer = await upload.answer;
    expect(answer.status).toBe(201);
    expect(await server.exited).toBe(0);

    const audit = await verifyAuditLog(path.join(dataDir, "audit.log"));
    expect(audit).toMatchObject({ ok: true, count: 1 });
    server = await startServeProcess({ dataDir, allowlist });
    const blob = await get(server.port, `/v1/artifacts/sha256:${sha256Hex(bytes)}`);
    expect(blob.status).toBe(200);
    expect(sha256Hex(blob.body)).toBe(sha256Hex(bytes));
    expect(await readdir(tmp)).toEqual([]);
  });

  it("a client that disconnects mid-upload leaves no temp file", async () => {
    const dataDir = path.join(dir, "data");
    const allowlist = path.join(dir, "allowlist.json");
    const key = trustNewPublisher(allowlist);
    server = await startServeProcess({ dataDir, allowlist });
    const bytes = uniqueSafetensors(2 * 1024 * 1024);
    const upload = beginUpload(server.port, key, "faults/abandoned.safetensors", bytes);
    upload.answer.catch(() => undefined);
    upload.req.on("error", () => undefined);
    upload.req.write(bytes.subarray(0, 1024 * 1024));
    const tmp = path.join(dataDir, "tmp");
    await until(async () => (await readdir(tmp)).length > 0, "the upload to be staged");
    upload.req.destroy();
    await until(async () => (await readdir(tmp)).length === 0, "the temp file to be removed");
    expect((await get(server.port, `/v1/artifacts/sha256:${sha256Hex(bytes)}`)).status).toBe(404);
  });
});
