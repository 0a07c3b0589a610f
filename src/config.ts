import { availableParallelism } from "node:os";
import * as path from "node:path";
import { z } from "zod";
import { GatewayError } from "./errors";
import { DEFAULT_INSPECT_WORKER_MEMORY_MB, DEFAULT_MAX_UPLOAD_BYTES } from "./limits";

/**
 * Configuration: environment variables, overridden by CLI flags, validated once at start by one
 * schema into one typed Config (the gateway's own settings and, under `ops`, the operations
 * settings). Nothing below src/ reads process.env but this file (and the CLI, which passes env in).
 * Defaults are safe for a loopback developer setup.
 */
const bool = z.enum(["1", "0", "true", "false", "yes", "no", "on", "off", ""]).transform((v) => v === "1" || v === "true" || v === "yes" || v === "on");

const ms = (dflt: number) =>
  z.coerce
    .number()
    .int()
    .min(0)
    .max(24 * 3600 * 1000)
    .default(dflt);

/**
 * Inspection workers by default: one per core but one, so the event loop that answers fetches
 * keeps a core (at least one worker on a single-core host).
 */
export function defaultInspectWorkers(): number {
  return Math.max(1, availableParallelism() - 1);
}

const EnvSchema = z.object({
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  MODELGATE_DATA_DIR: z.string().min(1).default("./data"),
  MODELGATE_ALLOWLIST: z.string().min(1).default("./allowlist.json"),
  MODELGATE_MAX_UPLOAD_BYTES: z.coerce.number().int().positive().default(DEFAULT_MAX_UPLOAD_BYTES),
  MODELGATE_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Path of the tokens file; unset = no tokens (open, loopback only). */
  MODELGATE_TOKENS_FILE: z.string().min(1).optional(),
  MODELGATE_ANONYMOUS_READ: bool.default(false),
  /** Let anyone scrape GET /metrics (otherwise the `metrics` scope is needed when tokens are on). */
  MODELGATE_METRICS_ANONYMOUS: bool.default(false),
  MODELGATE_AUDIT_LOG: z.string().min(1).optional(),
  MODELGATE_RATE_LIMIT_RPS: z.coerce.number().min(0).max(1_000_000).default(50),
  MODELGATE_RATE_LIMIT_BURST: z.coerce.number().int().min(1).max(1_000_000).default(100),
  MODELGATE_MAX_CONCURRENT_UPLOADS: z.coerce.number().int().min(1).max(10_000).default(16),
  MODELGATE_REQUEST_TIMEOUT_MS: ms(60 * 60 * 1000),
  MODELGATE_HEADERS_TIMEOUT_MS: ms(20_000),
  MODELGATE_IDLE_TIMEOUT_MS: ms(60_000),
  MODELGATE_KEEPALIVE_TIMEOUT_MS: ms(5_000),
  /** On SIGTERM, requests in flight get this long to finish before their sockets are destroyed. */
  MODELGATE_SHUTDOWN_TIMEOUT_MS: ms(30_000),
  /** HSTS max-age in seconds, or a boolean (true = one year). Only behind TLS. */
  MODELGATE_HSTS: z
    .string()
    .regex(/^(\d{1,9}|true|false|1|0|yes|no|on|off|)$/)
    .transform((v) => (/^\d+$/.test(v) ? Number(v) : v === "true" || v === "yes" || v === "on" ? 31_536_000 : 0))
    .default(0),
  /** Inspection worker threads (src/inspect/workerPool.ts); inspections beyond them queue. */
  MODELGATE_INSPECT_WORKERS: z.coerce.number().int().min(1).max(256).optional(),
  /** V8 old-generation heap of each inspection worker, MiB: content that exhausts it is refused. */
  MODELGATE_INSPECT_WORKER_MEMORY_MB: z.coerce.number().int().min(64).max(1_048_576).default(DEFAULT_INSPECT_WORKER_MEMORY_MB),
});

export interface OpsConfig {
  dataDir: string;
  tokensFile: string | undefined;
  anonymousRead: boolean;
  metricsAnonymous: boolean;
  auditLog: string;
  rateLimit: { rps: number; burst: number };
  maxConcurrentUploads: number;
  timeouts: { requestTimeoutMs: number; headersTimeoutMs: number; idleTimeoutMs: number; keepAliveTimeoutMs: number };
  hstsMaxAgeSeconds: number;
  shutdownTimeoutMs: number;
}

/** The inspection worker pool's settings (src/inspect/workerPool.ts). */
export interface InspectConfig {
  workers: number;
  workerMemoryMb: number;
}

export type Config = {
  host: string;
  port: number;
  dataDir: string;
  allowlistPath: string;
  maxUploadBytes: number;
  logLevel: z.infer<typeof EnvSchema>["MODELGATE_LOG_LEVEL"];
  /** Operations: tokens, audit log, rate limits, timeouts, HSTS (src/ops). */
  ops: OpsConfig;
  inspect: InspectConfig;
};

export interface ConfigOverrides {
  host?: string | undefined;
  port?: string | undefined;
  dataDir?: string | undefined;
  allowlistPath?: string | undefined;
}

function parseEnv<T extends z.ZodType>(schema: T, env: NodeJS.ProcessEnv): z.infer<T> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new GatewayError("invalid_config", `invalid configuration: ${problems}`);
  }
  return parsed.data;
}

function inspectConfigOf(e: { MODELGATE_INSPECT_WORKERS?: number | undefined; MODELGATE_INSPECT_WORKER_MEMORY_MB: number }): InspectConfig {
  return { workers: e.MODELGATE_INSPECT_WORKERS ?? defaultInspectWorkers(), workerMemoryMb: e.MODELGATE_INSPECT_WORKER_MEMORY_MB };
}

export function loadConfig(env: NodeJS.ProcessEnv, overrides: ConfigOverrides = {}): Config {
  const merged = {
    ...env,
    ...(overrides.host !== undefined ? { HOST: overrides.host } : {}),
    ...(overrides.port !== undefined ? { PORT: overrides.port } : {}),
    ...(overrides.dataDir !== undefined ? { MODELGATE_DATA_DIR: overrides.dataDir } : {}),
    ...(overrides.allowlistPath !== undefined ? { MODELGATE_ALLOWLIST: overrides.allowlistPath } : {}),
  };
  const e = parseEnv(EnvSchema, merged);
  if (e.MODELGATE_REQUEST_TIMEOUT_MS > 0 && e.MODELGATE_HEADERS_TIMEOUT_MS > e.MODELGATE_REQUEST_TIMEOUT_MS) {
    throw new GatewayError("invalid_config", "MODELGATE_HEADERS_TIMEOUT_MS must not exceed MODELGATE_REQUEST_TIMEOUT_MS");
  }
  const ops: OpsConfig = {
    dataDir: e.MODELGATE_DATA_DIR,
    tokensFile: e.MODELGATE_TOKENS_FILE,
    anonymousRead: e.MODELGATE_ANONYMOUS_READ,
    metricsAnonymous: e.MODELGATE_METRICS_ANONYMOUS,
    auditLog: e.MODELGATE_AUDIT_LOG ?? path.join(e.MODELGATE_DATA_DIR, "audit.log"),
    rateLimit: { rps: e.MODELGATE_RATE_LIMIT_RPS, burst: e.MODELGATE_RATE_LIMIT_BURST },
    maxConcurrentUploads: e.MODELGATE_MAX_CONCURRENT_UPLOADS,
    timeouts: {
      requestTimeoutMs: e.MODELGATE_REQUEST_TIMEOUT_MS,
      headersTimeoutMs: e.MODELGATE_HEADERS_TIMEOUT_MS,
      idleTimeoutMs: e.MODELGATE_IDLE_TIMEOUT_MS,
      keepAliveTimeoutMs: e.MODELGATE_KEEPALIVE_TIMEOUT_MS,
    },
    hstsMaxAgeSeconds: e.MODELGATE_HSTS,
    shutdownTimeoutMs: e.MODELGATE_SHUTDOWN_TIMEOUT_MS,
  };
  return {
    host: e.HOST,
    port: e.PORT,
    dataDir: e.MODELGATE_DATA_DIR,
    allowlistPath: e.MODELGATE_ALLOWLIST,
    maxUploadBytes: e.MODELGATE_MAX_UPLOAD_BYTES,
    logLevel: e.MODELGATE_LOG_LEVEL,
    ops,
    inspect: inspectConfigOf(e),
  };
}

/** The operations part of the one configuration (`loadConfig(env, overrides).ops`). */
export function loadOpsConfig(env: NodeJS.ProcessEnv, overrides: { dataDir?: string | undefined } = {}): OpsConfig {
  return loadConfig(env, overrides).ops;
}

const InspectEnvSchema = EnvSchema.pick({ MODELGATE_INSPECT_WORKERS: true, MODELGATE_INSPECT_WORKER_MEMORY_MB: true });

/**
 * The inspection part of the one configuration, for `modelgate scan --jobs`: only these variables
 * are read, so a scan does not fail on a server setting (HOST, PORT) it does not use.
 */
export function loadInspectConfig(env: NodeJS.ProcessEnv): InspectConfig {
  return inspectConfigOf(parseEnv(InspectEnvSchema, env));
}
