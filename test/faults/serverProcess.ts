import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { existsSync, writeFileSync } from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { createInterface } from "node:readline";
import nacl from "tweetnacl";
import { buildPublishStatement, signEnvelope } from "../../src/trust/dsse";
import { keyIdOf, publicKeyToPem } from "../../src/trust/keys";

/**
 * The real `modelgate serve` as a child process (bin/modelgate.js runs dist/, which `npm test`
 * builds first), for the fault tests: SIGKILL, SIGTERM and a full disk need a real process.
 */
const ROOT = path.resolve(__dirname, "..", "..");
const BIN = path.join(ROOT, "bin", "modelgate.js");

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
  logs: string[];
}

export async function startServer(args: { dataDir: string; allowlist: string; env?: NodeJS.ProcessEnv }): Promise<ServerProcess> {
  if (!existsSync(path.join(ROOT, "dist", "src", "cli", "main.js"))) {
    throw new Error("dist/ is missing: the fault tests run the built binary; run `npm run build` (npm test does)");
  }
  const child = spawn(process.execPath, [BIN, "serve", "--host", "127.0.0.1", "--port", "0", "--data", args.dataDir, "--allowlist", args.allowlist], {
    env: { PATH: process.env.PATH, MODELGATE_LOG_LEVEL: "info", MODELGATE_RATE_LIMIT_RPS: "0", ...args.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      resolve(code);
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "modelgate listening" && typeof entry.port === "number") resolve(entry.port);
      } catch {
        // not JSON
      }
    });
    child.stderr.on("data", (d: Buffer) => logs.push(d.toString()));
    void exited.then((code) => {
      reject(new Error(`server exited (${String(code)}) before listening:\n${logs.join("\n")}`));
    });
  });
  return { child, port, exited, logs };
}

export interface Key {
  secretKey: Uint8Array;
  keyId: string;
}

/** A fresh Ed25519 key and an allowlist.json trusting it (source "faults"). */
export function writeAllowlist(file: string): Key {
  const kp = nacl.sign.keyPair();
  writeFileSync(
    file,
    JSON.stringify({ version: 1, sources: [{ id: "faults", description: "fault tests", keys: [{ publicKey: publicKeyToPem(kp.publicKey) }] }] }),
  );
  return { secretKey: kp.secretKey, keyId: keyIdOf(kp.publicKey) };
}

/** A safetensors file: one U8 tensor of `dataBytes` zeros, made unique by a metadata id. */
export function safetensorsBytes(dataBytes: number): Buffer {
  let json = JSON.stringify({ __metadata__: { id: randomUUID() }, w: { dtype: "U8", shape: [dataBytes], data_offsets: [0, dataBytes] } });
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, Buffer.from(json), Buffer.alloc(dataBytes)]);
}

export const sha256Hex = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** The multipart body around an artifact: signature part first, then the name field (`fieldName`, default the signed name), then the artifact. */
export function multipart(key: Key, name: string, artifact: Buffer, fieldName = name): { head: Buffer; tail: Buffer; contentType: string } {
  const envelope = JSON.stringify(signEnvelope(buildPublishStatement({ name, digestHex: sha256Hex(artifact) }), key.secretKey, key.keyId));
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
  key: Key,
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

export async function uploadWhole(port: number, key: Key, name: string, artifact: Buffer): Promise<Answer> {
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
