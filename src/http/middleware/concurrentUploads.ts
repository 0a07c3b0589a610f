import type { RequestHandler } from "express";
import { GatewayError } from "../../errors";

/**
 * A cap on uploads in flight across all clients: an upload holds a temp file, a hash state and
 * inspection CPU until it ends, so unbounded concurrency exhausts disk and CPU (CWE-400). Past
 * the cap the gateway answers 503 `unavailable` with Retry-After: the server is busy, which
 * is not the client's fault (429 is kept for one client's own rate). The slot is released when
 * the response finishes or the connection closes, whichever comes first, exactly once.
 * It also lifts the socket idle timeout once the body has arrived (see below).
 */
export interface UploadGateOptions {
  max: number;
  retryAfterSeconds?: number;
  onShed?: () => void;
}

export interface UploadGate {
  middleware: RequestHandler;
  readonly inFlight: number;
}

export function createUploadGate(options: UploadGateOptions): UploadGate {
  let inFlight = 0;
  const retryAfter = options.retryAfterSeconds ?? 1;
  const middleware: RequestHandler = (req, res, next) => {
    if (inFlight >= options.max) {
      res.setHeader("Retry-After", retryAfter.toString());
      options.onShed?.();
      next(new GatewayError("unavailable", `too many uploads in progress (limit ${options.max.toString()}); retry shortly`));
      return;
    }
    inFlight += 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      inFlight -= 1;
    };
    res.once("finish", release);
    // A client that hangs up after sending its body does not end the work at once: the handler
    // still holds the temp file and the inspection (cancelled through its signal, or finishing)
    // until it settles. Release when it settles (runUpload marks it), else at close.
    res.once("close", () => {
      const running = (res.locals as { uploadSettled?: Promise<void> }).uploadSettled;
      if (running === undefined) release();
      else void running.then(release);
    });
    // The idle timeout (server.setTimeout) is for clients that stall while sending. Once the
    // whole body is in, the client rightly sends nothing while the artifact is inspected, which
    // can take minutes for a large pickle: do not cut it off then.
    req.once("end", () => {
      req.socket.setTimeout(0);
    });
    next();
  };
  return {
    middleware,
    get inFlight() {
      return inFlight;
    },
  };
}

export function concurrentUploads(options: UploadGateOptions): RequestHandler {
  return createUploadGate(options).middleware;
}
