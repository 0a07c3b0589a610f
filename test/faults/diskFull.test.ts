import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import pino from "pino";
import request from "supertest";
import { FileAuditLog, readAuditEntries, verifyAuditLog } from "../../src/audit/fileLog";
import { loadConfig } from "../../src/config";
import { inspectFile } from "../../src/formats/inspectFile";
import { AllowlistHolder } from "../../src/reload/allowlistHolder";
import { createApp } from "../../src/http/app";
import { FsArtifactStore } from "../../src/store/fsStore";
import type { ArtifactRecord, CommitResult, StagedBlob, StoredSignature } from "../../src/store/types";
import { sha256Hex } from "../support/publisher";
import { startServeProcess, type ServeProcess } from "../support/binary";
import { uniqueSafetensors } from "../support/bytes";
import { get, multipart, trustNewPublisher, uploadWhole } from "./serverProcess";

function enospc(): NodeJS.ErrnoException {
  return Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", errno: -28, syscall: "write" });
}

/** The filesystem store with a switch: when `full`, committing an upload (fsync + rename) fails with ENOSPC. */
class FillingStore extends FsArtifactStore {
  full = false;
  protected override promote(staged: StagedBlob, record: ArtifactRecord, signature: StoredSignature): Promise<CommitResult> {
    if (this.full) return Promise.reject(enospc());
    return super.promote(staged, record, signature);
  }
}

describe("disk full (injected failing store)", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mg-faults-full-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("answers 507 insufficient_storage, leaves nothing half-written, audits it, keeps serving reads", async () => {
    const dataDir = path.join(dir, "data");
    const allowlistPath = path.join(dir, "allowlist.json");
    const key = trustNewPublisher(allowlistPath);
    const logger = pino({ level: "silent" });
    const store = new FillingStore(dataDir);
    await store.init();
    const audit = await FileAuditLog.open(path.join(dir, "audit.log"));
    const holder = new AllowlistHolder(allowlistPath, { logger, audit });
    const app = createApp({
      config: loadConfig({ MODELGATE_DATA_DIR: dataDir, MODELGATE_ALLOWLIST: allowlistPath }),
      logger,
      now: () => new Date(),
      store,
      allowlist: holder,
      audit,
      inspect: inspectFile,
    });
    const post = (name: string, bytes: Buffer) => {
      const parts = multipart(key, name, bytes);
      return request(app)
        .post("/v1/artifacts")
        .set("Content-Type", parts.contentType)
        .send(Buffer.concat([parts.head, bytes, parts.tail]));
    };
    try {
      const first = uniqueSafetensors(64 * 1024);
      expect((await post("faults/first.safetensors", first)).status).toBe(201);

      store.full = true;
      const second = uniqueSafetensors(64 * 1024);
      const refused = await post("faults/second.safetensors", second);
      expect(refused).toFailWithCode("insufficient_storage", 507);
      expect(await readdir(path.join(dataDir, "tmp"))).toEqual([]);
      expect((await request(app).get(`/v1/artifacts/sha256:${sha256Hex(second)}`)).status).toBe(404);

      // Reads keep working while the disk is full.
      const read = await request(app)
        .get(`/v1/artifacts/sha256:${sha256Hex(first)}`)
        .buffer(true);
      expect(read.status).toBe(200);
      expect((await request(app).get("/v1/artifacts")).body.items).toHaveLength(1);

      const entries = (await readAuditEntries(audit.file, 0, 100)).entries;
      expect(entries.at(-1)).toMatchObject({ type: "upload.rejected", codes: ["insufficient_storage"] });

      store.full = false;
      expect((await post("faults/third.safetensors", uniqueSafetensors(1024))).status).toBe(201);
      await audit.close();
      await expect(verifyAuditLog(audit.file)).resolves.toMatchObject({ ok: true });
    } finally {
      holder.close();
      await audit.close();
    }
  });
});

/** A real full filesystem: a 3 MiB tmpfs as the data dir (needs root and mount; CI containers run as root). */
function canMountTmpfs(): boolean {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return false;
  try {
    execFileSync("mount", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

(canMountTmpfs() ? describe : describe.skip)("disk full (real tmpfs, server process)", () => {
  let dir: string;
  let mountPoint: string;
  let server: ServeProcess | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "mg-faults-tmpfs-"));
    mountPoint = path.join(dir, "data");
    await mkdir(mountPoint);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mountPoint]);
  });
  afterEach(async () => {
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill("SIGKILL");
      await server.exited;
    }
    execFileSync("umount", [mountPoint]);
    await rm(dir, { recursive: true, force: true });
  });

  it("answers 507 when staging hits ENOSPC, cleans up, keeps serving and accepts again", async () => {
    const allowlist = path.join(dir, "allowlist.json");
    const key = trustNewPublisher(allowlist);
    // The audit log lives off the full disk (as it should in production): uploads stay auditable.
    const auditLog = path.join(dir, "audit.log");
    server = await startServeProcess({ dataDir: mountPoint, allowlist, env: { MODELGATE_AUDIT_LOG: auditLog } });
    const small = uniqueSafetensors(512 * 1024);
    expect((await uploadWhole(server.port, key, "faults/small.safetensors", small)).status).toBe(201);

    const big = uniqueSafetensors(4 * 1024 * 1024);
    const refused = await uploadWhole(server.port, key, "faults/big.safetensors", big);
    expect(refused).toFailWithCode("insufficient_storage", 507);
    expect(await readdir(path.join(mountPoint, "tmp"))).toEqual([]);

    const read = await get(server.port, `/v1/artifacts/sha256:${sha256Hex(small)}`);
    expect(read.status).toBe(200);
    expect(sha256Hex(read.body)).toBe(sha256Hex(small));
    expect((await uploadWhole(server.port, key, "faults/again.safetensors", uniqueSafetensors(256 * 1024))).status).toBe(201);

    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    await expect(verifyAuditLog(auditLog)).resolves.toMatchObject({ ok: true, count: 3 });
  });
});
