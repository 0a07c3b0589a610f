import express, { type ErrorRequestHandler, type Express, type RequestHandler, type Router } from "express";
import { isGatewayError } from "../../../src/errors";
import { HTTP_STATUS } from "../../../src/http/errorStatus";

/** A tiny express app with the same error contract as the gateway: {error: {code, message}}. */
export function tinyApp(setup: (app: Express) => void): Express {
  const app = express();
  app.disable("x-powered-by");
  setup(app);
  app.use((_req, res) => {
    res.status(404).json({ error: { code: "not_found", message: "no such route" } });
  });
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    if (isGatewayError(err)) {
      res.status(HTTP_STATUS[err.code]).json({ error: { code: err.code, message: err.message } });
      return;
    }
    res.status(500).json({ error: { code: "internal", message: "internal error" } });
  };
  app.use(onError);
  return app;
}

export const ok: RequestHandler = (_req, res) => {
  res.json({ ok: true, tokenId: (res.locals as { tokenId?: string }).tokenId ?? null });
};

export function withRouters(routers: Router[]): (app: Express) => void {
  return (app) => {
    for (const r of routers) app.use(r);
  };
}
