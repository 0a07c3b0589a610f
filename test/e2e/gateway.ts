import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Express } from "express";
import pino from "pino";
import request from "supertest";
import { MemoryAuditSink } from "../../src/audit/types";
import { loadConfig } from "../../src/config";
import { inspectFile } from "../../src/formats/inspectFile";
import { AllowlistHolder } from "../../src/reload/allowlistHolder";
import { createApp } from "../../src/http/app";
import type { Inspector } from "../../src/inspect/inspector";
import { FsArtifactStore } from "../../src/store/fsStore";
import { allowlistDocument, signFor, type Publisher } from "../support/publisher";

/** The gateway as `serve` assembles it, in-process: the real inspector, store and allowlist holder. */

export interface SourceSpec {
  id: string;
  publisher: Publisher;
  names?: string[];
  pickle?: unknown;
}

export interface Gateway {
  dir: string;
  dataDir: string;
  app: Express;
  audit: MemoryAuditSink;
  close(): Promise<void>;
}

/** `inspect` defaults to the real inspectFile; a seam test may substitute one report. */
export async function startGateway(sources: SourceSpec[], inspect: Inspector = inspectFile): Promise<Gateway> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-e2e-http-"));
  const dataDir = path.join(dir, "data");
  const allowlistPath = path.join(dir, "allowlist.json");
  const doc = allowlistDocument(
    sources.map((s) => ({ id: s.id, description: `e2e source ${s.id}`, keys: [{ pub: s.publisher }], names: s.names, pickle: s.pickle })),
  );
  await fsp.writeFile(allowlistPath, JSON.stringify(doc));
  const logger = pino({ level: "silent" });
  const audit = new MemoryAuditSink();
  const store = new FsArtifactStore(dataDir);
  await store.init();
  let holder: AllowlistHolder;
  try {
    holder = new AllowlistHolder(allowlistPath, { logger, audit });
  } catch (err) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }
  const config = loadConfig({ MODELGATE_DATA_DIR: dataDir, MODELGATE_ALLOWLIST: allowlistPath });
  const app = createApp({ config, logger, now: () => new Date(), store, allowlist: holder, audit, inspect });
  return {
    dir,
    dataDir,
    app,
    audit,
    close: async () => {
      holder.close();
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** POST /v1/artifacts: the envelope (signed by `pub` for `name`) first, then the name and the bytes. */
export function uploadBytes(app: Express, pub: Publisher, name: string, bytes: Buffer, fileName: string): request.Test {
  return request(app)
    .post("/v1/artifacts")
    .field("signature", signFor(pub, bytes, name))
    .field("name", name)
    .attach("artifact", bytes, fileName);
}

export { listFiles } from "../support/files";
