import * as path from "node:path";
import { z } from "zod";
import { GatewayError } from "../errors";

/**
 * Operations settings from the environment (src/config.ts holds the gateway's own). Parsed once
 * at start by loadOpsConfig; defaults are safe for a loopback developer setup.
 */
const bool = z.enum(["1", "0", "true", "false", "yes", "no", "on", "off", ""]).transform((v) => v === "1" || v === "true" || v === "yes" || v === "on");

const ms = (dflt: number) =>
  z.coerce
    .number()
    .int()
    .min(0)
    .max(24 * 3600 * 1000)
    .default(dflt);

export const OpsEnvSchema = z.object({
  MODELGATE_DATA_DIR: z.string().min(1).default("./data"),
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

/** Parse the ops settings; `dataDir` (from the gateway's Config / --data-dir) wins over env. */
export function loadOpsConfig(env: NodeJS.ProcessEnv, overrides: { dataDir?: string | undefined } = {}): OpsConfig {
  const parsed = OpsEnvSchema.safeParse(overrides.dataDir !== undefined ? { ...env, MODELGATE_DATA_DIR: overrides.dataDir } : env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new GatewayError("invalid_config", `invalid operations configuration: ${problems}`);
  }
  const e = parsed.data;
  if (e.MODELGATE_REQUEST_TIMEOUT_MS > 0 && e.MODELGATE_HEADERS_TIMEOUT_MS > e.MODELGATE_REQUEST_TIMEOUT_MS) {
    throw new GatewayError("invalid_config", "MODELGATE_HEADERS_TIMEOUT_MS must not exceed MODELGATE_REQUEST_TIMEOUT_MS");
  }
  return {
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
}
