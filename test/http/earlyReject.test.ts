import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { listFiles, makeEnv, makePublisher, sha256Hex, signFor, streamUntilAnswered, type StreamedUpload, type TestEnv } from "./helpers";

const trusted = makePublisher();
const stranger = makePublisher();
const BOUNDARY = "----modelgate-test";

/**
 * Streams a multipart upload with no Content-Length (chunked): the signature part, then an
 * endless artifact part, until the server answers.
 */
function streamingUpload(env: TestEnv, envelope: string, maxBytes: number): Promise<StreamedUpload> {
  return streamUntilAnswered(
    env,
    {
      method: "POST",
      headers: { "Content-Type": `multipart/form-data; boundary=${BOUNDARY}` },
      head:
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="signature"\r\n\r\n${envelope}\r\n` +
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="artifact"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      tail: `\r\n--${BOUNDARY}--\r\n`,
    },
    maxBytes,
  );
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
