import type { ErrorCode } from "../errors";

export const EXIT_OK = 0;
export const EXIT_REJECTED = 1;
export const EXIT_USAGE = 2;

/** Local problems (bad flags, unreadable files, bad config) are 2; every verdict is 1. */
const USAGE_OR_IO: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["usage", "io_error", "invalid_config", "invalid_allowlist", "invalid_key", "internal"]);

export function exitCodeFor(code: ErrorCode): number {
  return USAGE_OR_IO.has(code) ? EXIT_USAGE : EXIT_REJECTED;
}
