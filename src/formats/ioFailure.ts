import { GatewayError, isGatewayError } from "../errors";

/**
 * Failures of the machine, not of the artifact: the disk is full, the quota is spent, the disk
 * or the descriptor table failed while an inspector wrote a temp file (a decompressed member).
 * They must never become a finding: a full disk would then answer 422 malformed_artifact (the
 * publisher's fault) instead of 507 (retry later / elsewhere). The inspection stops and the
 * error propagates out of inspectFile; nothing is accepted either way (fail closed).
 */

/** errno codes that mean "no room": answered 507 insufficient_storage. */
const NO_SPACE: ReadonlySet<string> = new Set(["ENOSPC", "EDQUOT"]);
/** Other errno codes of the environment (I/O, descriptors, memory, read-only or vanished temp dir): io_error. */
const ENVIRONMENTAL: ReadonlySet<string> = new Set(["EIO", "EMFILE", "ENFILE", "ENOMEM", "EROFS", "EACCES", "EPERM", "ENOENT", "EBADF", "ENXIO"]);

function errnoOf(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null || !("code" in err)) return undefined;
  const code = err.code;
  // A system error carries a syscall; a GatewayError's `code` is one of ours, never an errno.
  return typeof code === "string" && "syscall" in err ? code : undefined;
}

/**
 * The GatewayError to propagate when `err` is an environmental failure, else undefined (the
 * error is about the artifact and becomes a finding). A GatewayError already classified as
 * `insufficient_storage` or `io_error` is returned as is.
 */
export function environmentalFailure(err: unknown): GatewayError | undefined {
  if (isGatewayError(err)) return err.code === "insufficient_storage" || err.code === "io_error" ? err : undefined;
  const errno = errnoOf(err);
  if (errno === undefined) return undefined;
  if (NO_SPACE.has(errno))
    return new GatewayError("insufficient_storage", `no space left for inspection temp files (${errno}): retry later`, { errno }, { cause: err });
  if (ENVIRONMENTAL.has(errno)) return new GatewayError("io_error", `inspection I/O failure (${errno})`, { errno }, { cause: err });
  return undefined;
}

/** Rethrow `err` when it is environmental (see environmentalFailure); return otherwise. */
export function throwIfEnvironmental(err: unknown): void {
  const env = environmentalFailure(err);
  if (env !== undefined) throw env;
}
