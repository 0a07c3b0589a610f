import { randomUUID } from "node:crypto";
import * as http from "node:http";
import { makePublisher, signFor, writeAllowlist, type Publisher } from "../support/publisher";

/**
 * Talking to a gateway over raw HTTP, for the fault tests (the server itself is
 * startServeProcess of test/support/binary.ts, or an in-process app).
 */

/** A fresh publisher and an allowlist.json at `file` trusting it (source "faults", key as PEM). */
export function trustNewPublisher(file: string): Publisher {
  const key = makePublisher();
  writeAllowlist(file, [{ id: "faults", description: "fault tests", keys: [{ pub: key, encoding: "pem" }] }]);
  return key;
}

/** The multipart body around an artifact: signature part first, then the name field (`fieldName`, default the signed name), then the artifact. */
export function multipart(key: Publisher, name: string, artifact: Buffer, fieldName = name): { head: Buffer; tail: Buffer; contentType: string } {
  const envelope = signFor(key, artifact, name);
  const boundary = `----faults-${randomUUID()}`;
  return {
    head: Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="signature"; filename="envelope.json"\r\nContent-Type: application/json\r\n\r\n${envelope}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n${fieldName}\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="model.safetensors"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    tail: Buffer.from(`\r\n--${boundary}--\r\n`),
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}

export interface Answer {
  status: number;
  body: string;
}

/** Start an upload and return the request (to write more, or to abandon) and its answer. */
export function beginUpload(
  port: number,
  key: Publisher,
  name: string,
  artifact: Buffer,
): { req: http.ClientRequest; parts: ReturnType<typeof multipart>; answer: Promise<Answer> } {
  const parts = multipart(key, name, artifact);
  const req = http.request({
    host: "127.0.0.1",
    port,
    method: "POST",
    path: "/v1/artifacts",
    headers: { "Content-Type": parts.contentType, "Content-Length": parts.head.length + artifact.length + parts.tail.length },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  req.write(parts.head);
  return { req, parts, answer };
}

export async function uploadWhole(port: number, key: Publisher, name: string, artifact: Buffer): Promise<Answer> {
  const { req, parts, answer } = beginUpload(port, key, name, artifact);
  req.end(Buffer.concat([artifact, parts.tail]));
  return answer;
}

export function get(port: number, p: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: p }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
        });
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

/** Resolve once predicate() holds, checking on each turn of the event loop (no fixed sleeps). */
export async function until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
