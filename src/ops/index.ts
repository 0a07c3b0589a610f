import { isIP } from "node:net";
import type { Server } from "node:http";
import type { Request, RequestHandler, Router } from "express";
import type { Logger } from "pino";
import { FileAuditLog, readAuditEntries } from "../audit/fileLog";
import { TokenHolder } from "../reload/tokenHolder";
import { TokenAccessControl } from "../auth/tokens";
import { OPEN_ACCESS, type AccessControl } from "../auth/types";
import { GatewayError } from "../errors";
import type { AppDeps } from "../http/app";
import { createUploadGate } from "../http/middleware/concurrentUploads";
import { createRateLimiter } from "../http/middleware/rateLimit";
import { securityHeaders } from "../http/middleware/securityHeaders";
import { closeGracefully } from "../http/middleware/shutdown";
import { applyServerTimeouts } from "../http/middleware/timeouts";
import { auditRouter } from "../http/opsRoutes";
import { metricsRouter, PromGatewayMetrics } from "../metrics/prom";
import type { OpsConfig } from "../config";

export { loadOpsConfig, type OpsConfig } from "../config";

/** Everything the wiring (serve / createApp) needs from operations, built from one OpsConfig. */
export interface Ops {
  access: AccessControl;
  audit: FileAuditLog;
  metrics: PromGatewayMetrics;
  /** GET /metrics and GET /v1/audit: pass as createApp's extraRouters. */
  routers: Router[];
  /** Run before every route, in this order: security headers, rate limit. */
  middlewares: RequestHandler[];
  /** Put in front of the upload route only: the concurrent-upload cap (503 when full). */
  uploadGate: RequestHandler;
  /** True when the tokens file held at least one token at start. */
  tokensConfigured: boolean;
  /**
   * Re-read the tokens file (serve calls it on SIGHUP): resolves true when the new set is in
   * force, false when it was invalid (the old set stays) or no tokens file is configured.
   */
  reloadTokens(): Promise<boolean>;
  /** Reload the tokens file whenever it changes (directory watch, debounced). No-op without one. */
  watchTokens(): void;
  applyServerTimeouts(server: Server): void;
  /**
   * Call before listen(): throws `invalid_config` for a non-loopback bind without tokens;
   * returns the line to log at start (says "open" on loopback without tokens).
   */
  startupCheck(host: string): string;
  /**
   * Graceful stop for SIGTERM: stop accepting, let requests in flight finish within
   * MODELGATE_SHUTDOWN_TIMEOUT_MS, destroy the rest, then close the audit log.
   */
  shutdown(server: Server): Promise<{ forced: boolean }>;
  /** Flush and close the audit log (after the server stopped). */
  close(): Promise<void>;
}

/** The part of createApp's dependencies that operations provide: pass it spread into createApp. */
export function opsAppDeps(ops: Ops): Pick<AppDeps, "audit" | "metrics" | "access" | "extraRouters" | "middlewares" | "uploadGate"> {
  return {
    audit: ops.audit,
    metrics: ops.metrics,
    access: ops.access,
    extraRouters: ops.routers,
    middlewares: ops.middlewares,
    uploadGate: ops.uploadGate,
  };
}

/** Loopback: localhost, 127.0.0.0/8, ::1 and IPv4-mapped 127.x. 0.0.0.0 and :: are not. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1");
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  if (isIP(h) === 6) return h === "::1" || h === "0:0:0:0:0:0:0:1" || /^::ffff:127\./.test(h);
  return false;
}

/** Health probes are never rate limited: a load balancer polls them from one address. */
const PROBES = new Set(["/healthz", "/readyz"]);

export async function createOps(config: OpsConfig, logger: Logger): Promise<Ops> {
  const audit = await FileAuditLog.open(config.auditLog);
  let holder: TokenHolder | undefined;
  try {
    holder = config.tokensFile === undefined ? undefined : await TokenHolder.open(config.tokensFile, { logger, audit });
  } catch (err) {
    await audit.close();
    throw err;
  }
  if (audit.recovery !== undefined) {
    logger.warn(
      { auditLog: config.auditLog, droppedBytes: audit.recovery.droppedBytes, savedTo: audit.recovery.savedTo },
      "audit log ended with an incomplete (never acknowledged) line; it was cut off and saved aside",
    );
  }
  const metrics = new PromGatewayMetrics({ defaultMetrics: true });
  const tokenCount = holder?.current().size ?? 0;
  const tokensConfigured = tokenCount > 0;
  const tokenAccess = holder === undefined ? undefined : new TokenAccessControl(holder, { anonymousRead: config.anonymousRead, audit });
  const access: AccessControl = holder === undefined || tokenAccess === undefined ? OPEN_ACCESS : latchedAccess(holder, tokenAccess);

  const keyOf = (req: Request): string => {
    const id = tokenAccess?.identify(req);
    return id !== undefined ? `token:${id}` : `ip:${req.ip ?? "unknown"}`;
  };
  const limiter = createRateLimiter({
    rps: config.rateLimit.rps,
    burst: config.rateLimit.burst,
    keyOf,
    skip: (req) => PROBES.has(req.path),
    onLimited: () => {
      metrics.requestRateLimited();
    },
  });
  const gate = createUploadGate({
    max: config.maxConcurrentUploads,
    onShed: () => {
      metrics.uploadShed();
    },
  });
  const metricsGuard = config.metricsAnonymous ? undefined : access.require("metrics");

  return {
    access,
    audit,
    metrics,
    routers: [metricsRouter(metrics.registry, metricsGuard), auditRouter(access, { read: (since, limit) => readAuditEntries(config.auditLog, since, limit) })],
    middlewares: [securityHeaders({ hstsMaxAgeSeconds: config.hstsMaxAgeSeconds }), limiter.middleware],
    uploadGate: gate.middleware,
    tokensConfigured,
    reloadTokens: () => (holder === undefined ? Promise.resolve(false) : holder.reload()),
    watchTokens: () => {
      holder?.watch();
    },
    applyServerTimeouts: (server) => {
      applyServerTimeouts(server, config.timeouts);
    },
    startupCheck: (host) => {
      if (tokensConfigured) {
        return `access control on: ${tokenCount.toString()} token(s) from ${config.tokensFile ?? "?"}; anonymous reads ${config.anonymousRead ? "allowed" : "refused"}`;
      }
      if (!isLoopbackHost(host)) {
        throw new GatewayError(
          "invalid_config",
          `refusing to bind ${host} without API tokens: anyone who can reach it could publish. ` +
            "Create one with `modelgate token create --id <id> --scope publish,read --tokens <file>` and set MODELGATE_TOKENS_FILE, or bind 127.0.0.1",
        );
      }
      return `no API tokens configured: running OPEN (no authentication) on loopback address ${host} only`;
    },
    shutdown: async (server) => {
      holder?.close();
      const result = await closeGracefully(server, config.shutdownTimeoutMs);
      if (result.forced) logger.warn({ timeoutMs: config.shutdownTimeoutMs }, "shutdown timeout: remaining requests were aborted");
      await audit.close();
      return result;
    },
    close: () => {
      holder?.close();
      return audit.close();
    },
  };
}

/**
 * Token checks while the holder is enforcing. A gateway started open (loopback, tokens file with
 * no tokens) stays open until tokens appear in the file; from then on it checks them, and an
 * emptied file refuses everyone rather than reopening.
 */
function latchedAccess(holder: TokenHolder, tokens: TokenAccessControl): AccessControl {
  return {
    require: (scope) => {
      const check = tokens.require(scope);
      return (req, res, next) => {
        if (holder.enforcing) {
          check(req, res, next);
          return;
        }
        next();
      };
    },
  };
}
