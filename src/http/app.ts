import express, { type Express, type RequestHandler, type Router } from "express";
import type { Logger } from "pino";
import type { AuditSink } from "../audit/types";
import { OPEN_ACCESS, type AccessControl } from "../auth/types";
import type { Config } from "../config";
import { GatewayError, messageOf } from "../errors";
import type { Inspector } from "../inspect/inspector";
import { NOOP_METRICS, type GatewayMetrics } from "../metrics/types";
import type { ArtifactStore } from "../store/types";
import type { AllowlistProvider } from "./allowlistHolder";
import { errorHandler, notFoundHandler } from "./errorHandler";
import { fetchRouter } from "./fetchRoutes";
import { logOf, requestContext } from "./requestContext";
import { rawUploadHandler } from "./rawUpload";
import { uploadHandler } from "./uploadRoute";

export interface AppDeps {
  config: Config;
  logger: Logger;
  /** Injected clock: trust decisions (validity windows) and records use it. */
  now: () => Date;
  store: ArtifactStore;
  /** The allowlist in force; an AllowlistHolder reloads it on SIGHUP and file changes. */
  allowlist: AllowlistProvider;
  /** Every upload decision and refused fetch is appended here before the response. */
  audit: AuditSink;
  /**
   * Content inspection: `serve` passes the formats module's inspectFile. Required here (not
   * defaulted) so the HTTP layer does not depend on the parsers at build time; tests inject fakes.
   */
  inspect: Inspector;
  metrics?: GatewayMetrics;
  access?: AccessControl;
  /** Mounted after the gateway's routes, before the JSON 404 (e.g. GET /metrics, GET /v1/audit). */
  extraRouters?: Router[];
  /** Run before every route (security headers, rate limit), after the request id/log middleware. */
  middlewares?: RequestHandler[];
  /** Put in front of the upload route only (the concurrent-upload cap). */
  uploadGate?: RequestHandler;
  /**
   * Aborted when the server stops for good (the graceful stop's time is up): the inspections of
   * uploads in flight are cancelled, as when their client hangs up.
   */
  stopping?: AbortSignal;
}

/** Build the express app from its dependencies; the JSON 404 and the error handler come last. */
export function createApp(deps: AppDeps): Express {
  const metrics = deps.metrics ?? NOOP_METRICS;
  const access = deps.access ?? OPEN_ACCESS;
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag"); // artifact ETags are their digests; JSON answers need none
  app.set("query parser", "simple");
  app.locals.logger = deps.logger;

  app.use(requestContext(deps.logger));
  for (const mw of deps.middlewares ?? []) app.use(mw);

  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });

  app.get("/readyz", async (_req, res) => {
    const problems: string[] = [];
    const check = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        problems.push(what);
        logOf(res).error({ check: what, err: messageOf(err) }, "readiness check failed");
      }
    };
    await check("store", () => deps.store.checkWritable());
    await check("allowlist", () => Promise.resolve(deps.allowlist.current()));
    await check("audit", () => deps.audit.check());
    if (problems.length > 0) throw new GatewayError("unavailable", `not ready: ${problems.join(", ")}`, { failing: problems });
    res.json({ status: "ready" });
  });

  const uploadDeps = {
    store: deps.store,
    allowlist: deps.allowlist,
    inspect: deps.inspect,
    audit: deps.audit,
    metrics,
    maxUploadBytes: deps.config.maxUploadBytes,
    now: deps.now,
  };
  const gate: RequestHandler[] = deps.uploadGate ? [deps.uploadGate] : [];
  app.post("/v1/artifacts", access.require("publish"), ...gate, uploadHandler(uploadDeps));
  app.put("/v1/artifacts", access.require("publish"), ...gate, rawUploadHandler(uploadDeps));

  app.use(fetchRouter({ store: deps.store, inspect: deps.inspect, allowlist: deps.allowlist, audit: deps.audit, metrics, access, now: deps.now }));

  for (const router of deps.extraRouters ?? []) app.use(router);

  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
