import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { listFiles, makeEnv, makePublisher, sha256Hex, signFor, type TestEnv } from "./helpers";

const trusted = makePublisher();
const stranger = makePublisher();
const BOUNDARY = "----modelgate-test";

/**
 * Streams a multipart upload with no Content-Length (chunked): the signature part, then an
 * endless artifact part, until the server answers. Returns the status, the error code and how
 * many artifact bytes were written before the answer came.
 */
function streamingUpload(env: TestEnv, envelope: string, maxBytes: number): Promise<{ status: number; code: string; written: number }> {
  return new Promise((resolve, reject) => {
    const server = env.app.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      let written = 0;
      let answered = false;
      const req = http.request({ host: "127.0.0.1", port, method: "POST", path: "/v1/artifacts", headers: { "Content-Type": `multipart/form-data; boundary=${BOUNDARY}` } });
      req.on("response", (res) => {
        answered = true;
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          server.closeAllConnections();
          server.close();
          const parsed = JSON.parse(body) as { error: { code: string } };
          resolve({ status: res.statusCode ?? 0, code: parsed.error.code, written });
        });
      });
      req.on("error", (err) => {
        if (answered) return;
        server.closeAllConnections();
        server.close();
        reject(err);
      });
      req.write(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="signature"\r\n\r\n${envelope}\r\n`);
      req.write(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="artifact"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`);
      const chunk = Buffer.alloc(256 * 1024, 7);
      const pump = (): void => {
        while (!answered && written < maxBytes) {
          written += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        if (!answered) req.end(`\r\n--${BOUNDARY}--\r\n`);
      };
      pump();
    });
  });
}

describe("refusing a large upload early", () => {
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({ sources: [{ id: "t", keys: [{ pub: trusted }] }], maxUploadBytes: 8 * 1024 * 1024 });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("an untrusted signature sent first is refused before the artifact body is read to the end", async () => {
    const envelope = signFor(stranger, Buffer.from("x"), "big", sha256Hex(Buffer.from("whatever")));
    const res = await streamingUpload(env, envelope, 512 * 1024 * 1024);
    expect(res.status).toBe(403);
    expect(res.code).toBe("untrusted_source");
    expect(res.written).toBeLessThan(64 * 1024 * 1024);
    expect(await listFiles(env.dataDir)).toEqual([]);
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: ["untrusted_source"] })]);
  });

  it("an unsized body over the cap is refused mid-stream with 413 and its temp file removed", async () => {
    const envelope = signFor(trusted, Buffer.from("x"), "big");
    const res = await streamingUpload(env, envelope, 512 * 1024 * 1024);
    expect(res.status).toBe(413);
    expect(res.code).toBe("too_large");
    expect(res.written).toBeLessThan(64 * 1024 * 1024);
    expect(await listFiles(env.dataDir)).toEqual([]);
  });

  it("a declared Content-Length over the cap is refused before any body byte is read", async () => {
    const server = env.app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const { port } = server.address() as AddressInfo;
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/v1/artifacts",
        headers: { "Content-Type": `multipart/form-data; boundary=${BOUNDARY}`, "Content-Length": String(100 * 1024 * 1024 * 1024) },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write(`--${BOUNDARY}\r\n`);
    });
    server.closeAllConnections();
    server.close();
    expect(status).toBe(413);
    expect(await listFiles(env.dataDir)).toEqual([]);
  });
});
