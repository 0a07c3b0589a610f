import type { RequestHandler } from "express";

/**
 * The access-control port. Routes ask for a scope; the token-based implementation beside this
 * file answers 401 `unauthenticated` / 403 `forbidden` and sets `res.locals.tokenId`.
 */
/** `metrics` lets a Prometheus scraper read GET /metrics without any artifact or admin right. */
export type Scope = "publish" | "read" | "admin" | "metrics";

export const SCOPES: readonly Scope[] = ["publish", "read", "admin", "metrics"];

export interface AccessControl {
  require(scope: Scope): RequestHandler;
}

/** No tokens configured: everything is allowed (only ever used on loopback; see serve). */
export const OPEN_ACCESS: AccessControl = Object.freeze({
  require: (): RequestHandler => (_req, _res, next) => {
    next();
  },
});
