import type { Server } from "node:http";

/**
 * Timeouts against slow clients (slowloris, CWE-400): headers must arrive within
 * `headersTimeoutMs`, a whole request within `requestTimeoutMs` (large uploads need minutes, so
 * this is generous), and a socket idle for `idleTimeoutMs` is closed, which is what actually
 * stops a client that trickles an upload body one byte at a time.
 */
export interface ServerTimeouts {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
}

export function applyServerTimeouts(server: Server, cfg: ServerTimeouts): void {
  // node requires headersTimeout <= requestTimeout (when the latter is set).
  server.requestTimeout = cfg.requestTimeoutMs;
  server.headersTimeout = cfg.requestTimeoutMs > 0 ? Math.min(cfg.headersTimeoutMs, cfg.requestTimeoutMs) : cfg.headersTimeoutMs;
  server.keepAliveTimeout = cfg.keepAliveTimeoutMs;
  server.setTimeout(cfg.idleTimeoutMs);
}
