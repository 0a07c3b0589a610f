import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import pino from "pino";
import { MemoryAuditSink, type AuditEvent } from "../../src/audit/types";
import type { Call } from "../../src/gateway/call";
import type { PublishDeps } from "../../src/gateway/publish";
import type { Inspector, InspectOptions } from "../../src/inspect/inspector";
import { summarize, type Severity } from "../../src/inspect/report";
import type { GatewayMetrics } from "../../src/metrics/types";
import { FsArtifactStore } from "../../src/store/fsStore";
import type { StagedUpload } from "../../src/store/types";
import { parseAllowlist, type Allowlist } from "../../src/trust";

/**
 * The use cases of src/gateway driven without a transport: a real FsArtifactStore in a temp dir,
 * an allowlist object the test swaps (as a reload does), an inspector that records what it was
 * asked and answers what the test says, a memory audit sink whose appends can be made to fail.
 */

export const NOW = new Date("2026-06-01T12:00:00.000Z");

export { makePublisher, sha256Hex, signFor, type Publisher } from "../support/publisher";
import type { Publisher } from "../support/publisher";

export interface SourceSpec {
  id: string;
  keys: { pub: Publisher; revoked?: boolean; notAfter?: string }[];
  allowGlobals?: string[];
}

export function allowlistOf(sources: SourceSpec[]): Allowlist {
  return parseAllowlist(
    {
      version: 1,
      sources: sources.map((s) => ({
        id: s.id,
        description: `test source ${s.id}`,
        keys: s.keys.map((k) => ({
          publicKey: Buffer.from(k.pub.publicKey).toString("base64"),
          ...(k.revoked !== undefined ? { revoked: k.revoked } : {}),
          ...(k.notAfter !== undefined ? { notAfter: k.notAfter } : {}),
        })),
        ...(s.allowGlobals !== undefined ? { pickle: { allowGlobals: s.allowGlobals } } : {}),
      })),
    },
    os.tmpdir(),
  );
}

export function reportOf(severity?: Severity, format = "safetensors") {
  const findings =
    severity === undefined
      ? []
      : [{ code: severity === "malformed" ? ("malformed_container" as const) : ("dangerous_global" as const), severity, message: "test finding" }];
  return summarize({ kind: "file", path: "", findings, children: [] }, format);
}

/** An audit sink whose appends can be made to fail, optionally running a hook after each append. */
export class TestAuditSink extends MemoryAuditSink {
  failing = false;
  afterAppend: ((event: AuditEvent) => Promise<void>) | undefined;
  override async append(event: AuditEvent): Promise<void> {
    if (this.failing) throw new Error("disk full");
    await super.append(event);
    await this.afterAppend?.(event);
  }
}

/** Metrics that remember what they were told. */
export class RecordingMetrics implements GatewayMetrics {
  readonly finished: { verdict: string; code: string }[] = [];
  bytes = 0;
  inspections = 0;
  auditFailures = 0;
  uploadFinished(verdict: "accepted" | "rejected", code: string): void {
    this.finished.push({ verdict, code });
  }
  inspectionSeconds(): void {
    this.inspections += 1;
  }
  bytesIn(bytes: number): void {
    this.bytes += bytes;
  }
  bytesOut = (): void => undefined;
  fetchAnswered = (): void => undefined;
  trustReloaded = (): void => undefined;
  auditWriteFailed(): void {
    this.auditFailures += 1;
  }
  uploadsInFlight = (): void => undefined;
}

export interface GatewayEnv {
  dir: string;
  store: FsArtifactStore;
  audit: TestAuditSink;
  metrics: RecordingMetrics;
  /** The allowlist in force; assign to simulate a reload. */
  allowlist: Allowlist;
  /** What the inspector answers (default: accept), and every call it got. */
  verdict: Inspector;
  inspections: { path: string; options: InspectOptions }[];
  deps: PublishDeps;
  now: Date;
  call: Call;
  /** A received staged upload of `bytes`. */
  received(bytes: Buffer): Promise<StagedUpload>;
  tmpFiles(): Promise<string[]>;
  cleanup(): Promise<void>;
}

export async function makeGatewayEnv(sources: SourceSpec[], store?: (dataDir: string) => FsArtifactStore): Promise<GatewayEnv> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-gateway-"));
  const dataDir = path.join(dir, "data");
  const artifactStore = store ? store(dataDir) : new FsArtifactStore(dataDir);
  await artifactStore.init();
  const env: GatewayEnv = {
    dir,
    store: artifactStore,
    audit: new TestAuditSink(),
    metrics: new RecordingMetrics(),
    allowlist: allowlistOf(sources),
    verdict: () => Promise.resolve(reportOf()),
    inspections: [],
    now: NOW,
    call: { caller: { requestId: "req-1", tokenId: "tok-1", client: "192.0.2.7" }, log: pino({ level: "silent" }) },
    deps: undefined as unknown as PublishDeps,
    received: async (bytes) => {
      const upload = artifactStore.begin({ maxBytes: 1024 * 1024 });
      await upload.receive(Readable.from([bytes]));
      return upload;
    },
    tmpFiles: () => fsp.readdir(path.join(dataDir, "tmp")),
    cleanup: () => fsp.rm(dir, { recursive: true, force: true }),
  };
  env.deps = {
    allowlist: { current: () => env.allowlist },
    inspect: (p, options) => {
      env.inspections.push({ path: p, options });
      return env.verdict(p, options);
    },
    audit: env.audit,
    metrics: env.metrics,
    now: () => env.now,
  };
  return env;
}

export function artifactBytes(label: string, size = 4096): Buffer {
  const buf = Buffer.alloc(size);
  buf.write(label);
  return buf;
}
