import type { Request, RequestHandler } from "express";
import { GatewayError } from "../../errors";
import { MAX_RATE_LIMIT_KEYS } from "../../limits";

/**
 * Token-bucket rate limiting per client key (token id when authenticated, else IP). Each key
 * holds up to `burst` tokens refilled at `rps` per second; a request takes one or is refused
 * with 429 `rate_limited` and a Retry-After header. The bucket map is bounded (least recently
 * used keys are dropped first): dropping a bucket only ever forgives a client, never locks one
 * out, and an attacker rotating addresses cannot grow memory without bound (CWE-400).
 */
export interface RateLimitOptions {
  /** Sustained requests per second per key; 0 disables the limiter. */
  rps: number;
  /** Bucket size: requests allowed in a burst. */
  burst: number;
  /** The key of a request; default: "ip:" + req.ip. */
  keyOf?: (req: Request) => string;
  /** Requests that are never limited (health probes). */
  skip?: (req: Request) => boolean;
  maxKeys?: number;
  /** Monotonic clock in ms (injected by tests). */
  now?: () => number;
  onLimited?: () => void;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export interface RateLimiter {
  middleware: RequestHandler;
  /** Keys currently tracked (for tests and diagnostics). */
  readonly size: number;
}

export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const { rps, burst } = options;
  const maxKeys = options.maxKeys ?? MAX_RATE_LIMIT_KEYS;
  const now = options.now ?? (() => performance.now());
  const keyOf = options.keyOf ?? ((req: Request) => `ip:${req.ip ?? "unknown"}`);
  const buckets = new Map<string, Bucket>();

  const middleware: RequestHandler = (req, res, next) => {
    if (rps <= 0 || options.skip?.(req) === true) {
      next();
      return;
    }
    const key = keyOf(req);
    const t = now();
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: burst, updatedMs: t };
      if (buckets.size >= maxKeys) {
        const oldest = buckets.keys().next();
        if (oldest.done !== true) buckets.delete(oldest.value);
      }
    } else {
      buckets.delete(key); // re-inserted below: Map order is then least-recently-used first
      bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.updatedMs) / 1000) * rps);
      bucket.updatedMs = t;
    }
    buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      next();
      return;
    }
    const waitSeconds = Math.max(1, Math.ceil((1 - bucket.tokens) / rps));
    res.setHeader("Retry-After", waitSeconds.toString());
    options.onLimited?.();
    next(new GatewayError("rate_limited", `too many requests; retry in ${waitSeconds.toString()} s`, { retryAfterSeconds: waitSeconds }));
  };

  return {
    middleware,
    get size() {
      return buckets.size;
    },
  };
}

/** The middleware alone. */
export function rateLimit(options: RateLimitOptions): RequestHandler {
  return createRateLimiter(options).middleware;
}
