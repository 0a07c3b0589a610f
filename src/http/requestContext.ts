import { randomUUID } from "node:crypto";
import type { Request, RequestHandler, Response } from "express";
import type { Logger } from "pino";
import type { Call } from "../gateway/call";

/** A client-supplied request id is echoed only when it is short and harmless in logs and headers. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Request id + access log (pino-http is not a dependency). The id comes from X-Request-Id when it
 * is sane, else a random UUID; it is echoed in the response and put on every log line of the
 * request. Logged: method, path (never the query), status, duration. Never bodies, never headers
 * (Authorization carries tokens).
 */
export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const given = req.get("x-request-id");
    const requestId = given !== undefined && SANE_REQUEST_ID.test(given) ? given : randomUUID();
    res.locals.requestId = requestId;
    res.locals.log = logger.child({ reqId: requestId });
    res.setHeader("X-Request-Id", requestId);
    const started = process.hrtime.bigint();
    let logged = false;
    const done = (): void => {
      if (logged) return;
      logged = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logOf(res).info({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10, aborted: !res.writableFinished }, "request");
    };
    res.on("finish", done);
    res.on("close", done);
    next();
  };
}

export function requestIdOf(res: Response): string {
  const v: unknown = res.locals.requestId;
  return typeof v === "string" ? v : "";
}

export function tokenIdOf(res: Response): string | undefined {
  const v: unknown = res.locals.tokenId;
  return typeof v === "string" ? v : undefined;
}

/** The request's child logger (falls back to a logger stored by createApp). */
export function logOf(res: Response): Logger {
  const v: unknown = res.locals.log ?? res.app.locals.logger;
  return v as Logger;
}

/** The caller of a use case, as this request identifies it: request id, API token id, client address; and its logger. */
export function callOf(req: Request, res: Response): Call {
  return { caller: { requestId: requestIdOf(res), tokenId: tokenIdOf(res), client: req.ip }, log: logOf(res) };
}
