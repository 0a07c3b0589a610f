import type { Logger } from "pino";
import { GatewayError, isGatewayError } from "../errors";

/**
 * Who asks a use case for something, as the audit log records it. The transport fills it in
 * (the HTTP layer from the request: its id, the API token's id, the client address); the use
 * cases never look at a request.
 */
export interface CallerIdentity {
  requestId: string;
  /** Id of the API token used (never the token itself). */
  tokenId?: string | undefined;
  /** The client's address as the transport sees it. */
  client?: string | undefined;
}

/** One call of a use case: the caller, and the logger whose lines carry the caller's request id. */
export interface Call {
  caller: CallerIdentity;
  log: Logger;
}

/** Filesystem errors that mean "no room": `insufficient_storage`, so clients can retry elsewhere. */
const NO_SPACE = new Set(["ENOSPC", "EDQUOT"]);

/**
 * Anything a use case met, as the GatewayError it answers with. Unknown errors become `internal`
 * with a generic message: their text may carry paths or internals, it goes to the log only
 * (through `cause`).
 */
export function asGatewayError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof errno === "string" && NO_SPACE.has(errno)) {
    return new GatewayError("insufficient_storage", "the store is out of space", undefined, { cause: err });
  }
  return new GatewayError("internal", "internal error", undefined, { cause: err });
}
