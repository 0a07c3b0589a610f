import { promises as fsp } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import type { Express } from "express";
import pino from "pino";
import { MemoryAuditSink, type AuditEvent } from "../../src/audit/types";
import { loadConfig } from "../../src/config";
import type { Inspector } from "../../src/inspect/inspector";
import { summarize, type Severity } from "../../src/inspect/report";
import { createApp, type AppDeps } from "../../src/http/app";
import { AllowlistHolder } from "../../src/reload/allowlistHolder";
import { FsArtifactStore } from "../../src/store/fsStore";
import { allowlistJson, type SourceSpec } from "../support/publisher";

// The publisher factory lives in test/support/publisher.ts; re-exported for the HTTP suites.
export { allowlistJson, makePublisher, sha256Hex, signFor, type Publisher, type SourceSpec } from "../support/publisher";

export const NOW = new Date("2026-06-01T12:00:00.000Z");

function report(severity: Severity | undefined, format = "safetensors") {
  const findings =
    severity === undefined
      ? []
      : [{ code: severity === "malformed" ? ("malformed_container" as const) : ("dangerous_global" as const), severity, message: "test finding" }];
  return summarize({ kind: "file", path: "", findings, children: [] }, format);
}

export const acceptingInspector: Inspector = () => Promise.resolve(report(undefined));
export const dangerousInspector: Inspector = () => Promise.resolve(report("dangerous", "pickle"));
export const malformedInspector: Inspector = () => Promise.resolve(report("malformed", "unknown"));

/** An audit sink whose appends can be made to fail. */
export class FlakyAuditSink extends MemoryAuditSink {
  failing = false;
  override append(event: AuditEvent): Promise<void> {
    if (this.failing) return Promise.reject(new Error("disk full"));
    return super.append(event);
  }
}

export interface TestEnv {
  dir: string;
  dataDir: string;
  allowlistPath: string;
  store: FsArtifactStore;
  holder: AllowlistHolder;
  audit: FlakyAuditSink;
  app: Express;
  deps: AppDeps;
  cleanup(): Promise<void>;
}

export async function makeEnv(options: { sources: SourceSpec[]; inspect?: Inspector; maxUploadBytes?: number; now?: () => Date }): Promise<TestEnv> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-http-"));
  const dataDir = path.join(dir, "data");
  const allowlistPath = path.join(dir, "allowlist.json");
  await fsp.writeFile(allowlistPath, allowlistJson(options.sources));
  const logger = pino({ level: "silent" });
  const audit = new FlakyAuditSink();
  const store = new FsArtifactStore(dataDir);
  await store.init();
  const holder = new AllowlistHolder(allowlistPath, { logger, audit });
  const config = { ...loadConfig({ MODELGATE_DATA_DIR: dataDir, MODELGATE_ALLOWLIST: allowlistPath }) };
  if (options.maxUploadBytes !== undefined) config.maxUploadBytes = options.maxUploadBytes;
  const deps: AppDeps = {
    config,
    logger,
    now: options.now ?? (() => NOW),
    store,
    allowlist: holder,
    audit,
    inspect: options.inspect ?? acceptingInspector,
  };
  const app = createApp(deps);
  return {
    dir,
    dataDir,
    allowlistPath,
    store,
    holder,
    audit,
    app,
    deps,
    cleanup: async () => {
      holder.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

export { listFiles } from "../support/files";

/** A fake safetensors-ish payload; the tests inject the inspector, so only the bytes matter. */
export function artifactBytes(label: string, size = 4096): Buffer {
  const buf = Buffer.alloc(size);
  buf.write(label);
  return buf;
}

export interface StreamedUpload {
  status: number;
  code: string;
  written: number;
}

/**
 * Streams a chunked (unsized) upload until the server answers: `head`, then up to `maxBytes` of
 * artifact bytes, then `tail` if no answer came first. Resolves with the status, the error code
 * and how many artifact bytes were written before the answer.
 */
export function streamUntilAnswered(
  env: TestEnv,
  request: { method: "POST" | "PUT"; headers: http.OutgoingHttpHeaders; head?: string; tail?: string },
  maxBytes: number,
): Promise<StreamedUpload> {
  return new Promise((resolve, reject) => {
    const server = env.app.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      let written = 0;
      let answered = false;
      const req = http.request({ host: "127.0.0.1", port, method: request.method, path: "/v1/artifacts", headers: request.headers });
      req.on("response", (res) => {
        answered = true;
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          server.closeAllConnections();
          server.close();
          resolve({ status: res.statusCode ?? 0, code: (JSON.parse(body) as { error: { code: string } }).error.code, written });
        });
      });
      req.on("error", (err) => {
        if (answered) return;
        server.closeAllConnections();
        server.close();
        reject(err);
      });
      if (request.head !== undefined) req.write(request.head);
      const chunk = Buffer.alloc(256 * 1024, 7);
      const pump = (): void => {
        while (!answered && written < maxBytes) {
          written += chunk.length;
          if (!req.write(chunk)) {
            req.once("drain", pump);
            return;
          }
        }
        if (!answered) req.end(request.tail);
      };
      pump();
    });
  });
}
