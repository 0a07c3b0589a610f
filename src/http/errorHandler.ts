import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import multer from "multer";
import { GatewayError, isGatewayError, messageOf } from "../errors";
import { asGatewayError } from "../gateway/call";
import { HTTP_STATUS } from "./errorStatus";
import { logOf } from "./requestContext";

/** multer's limit errors: the size ones are 413, every other protocol abuse is a plain 400. */
const MULTER_TOO_LARGE = new Set(["LIMIT_FILE_SIZE", "LIMIT_FIELD_VALUE"]);

/**
 * Map anything thrown in a request to a GatewayError: multer's limit errors here, the rest as the
 * use cases map them (asGatewayError: a full disk is `insufficient_storage`, anything unknown
 * `internal` with a generic message, its text to the log only).
 */
export function toGatewayError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  if (err instanceof multer.MulterError) {
    const code = MULTER_TOO_LARGE.has(err.code) ? "too_large" : "bad_request";
    return new GatewayError(code, `multipart limit: ${err.code}${err.field !== undefined ? ` (part '${err.field}')` : ""}`, { multer: err.code });
  }
  return asGatewayError(err);
}

/** Errors raised while busboy parses the body (truncated or malformed multipart) are the client's fault. */
export function toUploadError(err: unknown): GatewayError {
  const mapped = toGatewayError(err);
  if (mapped.code !== "internal" || !(err instanceof Error)) return mapped;
  const errno = (err as NodeJS.ErrnoException).code;
  if (typeof errno === "string" && (err as NodeJS.ErrnoException).syscall !== undefined) return mapped;
  return new GatewayError("bad_request", `malformed multipart body: ${err.message}`, undefined, { cause: err });
}

export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

export function errorBody(err: GatewayError): ErrorBody {
  const body: ErrorBody = { error: { code: err.code, message: err.message } };
  if (err.details !== undefined) body.error.details = err.details;
  return body;
}

export function sendError(res: Response, err: GatewayError): void {
  res.status(HTTP_STATUS[err.code]).json(errorBody(err));
}

/** The JSON 404 for every unknown route (registered just before the error handler). */
export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new GatewayError("not_found", `no route for ${req.method} ${req.path}`));
};

/** The one error handler, registered last. */
export const errorHandler: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
  const gerr = toGatewayError(err);
  const status = HTTP_STATUS[gerr.code];
  const log = logOf(res);
  if (status >= 500) log.error({ code: gerr.code, err: messageOf(gerr.cause ?? gerr) }, "request failed");
  if (res.headersSent) {
    // Mid-body failure: the status line is gone; cutting the connection is the only honest signal.
    res.destroy();
    return;
  }
  sendError(res, gerr);
};
