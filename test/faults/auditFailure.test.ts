import { mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import pino from "pino";
import request from "supertest";
import { loadConfig } from "../../src/config";
import { inspectFile } from "../../src/formats/inspectFile";
import { AllowlistHolder } from "../../src/reload/allowlistHolder";
import { createApp } from "../../src/http/app";
import { createOps, loadOpsConfig, opsAppDeps } from "../../src/ops";
import { FsArtifactStore } from "../../src/store/fsStore";
import { sha256Hex } from "../support/publisher";
import { uniqueSafetensors } from "../support/bytes";
import { multipart, trustNewPublisher } from "./serverProcess";

/** An upload that cannot be audited is refused (503), never accepted silently; /readyz says so. */
describe("audit log failure", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mg-faults-audit-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses uploads with 503 and fails /readyz when the audit log was moved away", async () => {
    const dataDir = path.join(dir, "data");
    const allowlistPath = path.join(dir, "allowlist.json");
    const key = trustNewPublisher(allowlistPath);
    const logger = pino({ level: "silent" });
    const ops = await createOps(loadOpsConfig({}, { dataDir }), logger);
    const store = new FsArtifactStore(dataDir);
    await store.init();
    const holder = new AllowlistHolder(allowlistPath, { logger, audit: ops.audit, metrics: ops.metrics });
    const app = createApp({
      config: loadConfig({ MODELGATE_DATA_DIR: dataDir, MODELGATE_ALLOWLIST: allowlistPath }),
      logger,
      now: () => new Date(),
      store,
      allowlist: holder,
      inspect: inspectFile,
      ...opsAppDeps(ops),
    });
    const post = (name: string, bytes: Buffer) => {
      const parts = multipart(key, name, bytes);
      return request(app)
        .post("/v1/artifacts")
        .set("Content-Type", parts.contentType)
        .send(Buffer.concat([parts.head, bytes, parts.tail]));
    };
    try {
      expect((await request(app).get("/readyz")).status).toBe(200);
      expect((await post("audit/first.safetensors", uniqueSafetensors(1024))).status).toBe(201);

      await rename(ops.audit.file, `${ops.audit.file}.moved`);
      const bytes = uniqueSafetensors(1024);
      const refused = await post("audit/second.safetensors", bytes);
      expect(refused).toFailWithCode("unavailable", 503);
      expect((await request(app).get(`/v1/artifacts/sha256:${sha256Hex(bytes)}`)).status).toBe(404);
      expect(await readdir(path.join(dataDir, "tmp"))).toEqual([]);
      const ready = await request(app).get("/readyz");
      expect(ready).toFailWithCode("unavailable", 503);
      expect((await request(app).get("/metrics")).text).toMatch(/modelgate_audit_write_failures_total [1-9]/);
    } finally {
      holder.close();
      await ops.close();
    }
  });
});
