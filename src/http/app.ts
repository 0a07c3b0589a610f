import express, { type Express } from "express";
import type { Logger } from "pino";
import type { Config } from "../config";

export interface AppDeps {
  config: Config;
  logger: Logger;
  /** Injected clock: trust decisions (validity windows) and records use it. */
  now: () => Date;
}

/** Build the express app from its dependencies; the error handler is registered last. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  deps.logger.debug("app created");
  return app;
}
