/**
 * The one error type of modelgate. Core code throws a GatewayError with a stable `code`;
 * only the HTTP error handler maps codes to statuses (src/http/errorStatus.ts) and only the
 * CLI maps codes to exit codes (src/cli/exitCodes.ts). Tests assert codes, never wording.
 */

/** Rejections of the trust layer: allowlist, keys, DSSE envelope, signature verification. */
export type TrustErrorCode =
  | "malformed_signature"
  /** An artifact name outside the name rule (src/trust/artifactName.ts): signed subject, upload name, CLI --name. */
  | "invalid_name"
  | "untrusted_source"
  | "bad_signature"
  | "key_revoked"
  | "key_expired"
  | "name_not_allowed"
  | "threshold_not_met"
  | "digest_mismatch"
  | "wrong_predicate_type"
  | "invalid_allowlist"
  | "invalid_key";

/** Codes of content inspection: also used as `code` of findings in an inspection report. */
export const INSPECTION_ERROR_CODES = [
  "malformed_pickle",
  "dangerous_global",
  "unknown_global",
  "unresolved_global",
  "extension_opcode",
  "limit_exceeded",
  "unknown_format",
  "unsupported_format",
  "malformed_container",
  "embedded_code",
  "polyglot",
  "extension_mismatch",
  "opaque_member",
  "bad_persistent_id",
  "direct_requirement",
  "remote_code",
  "unsafe_dtype",
] as const;

export type InspectionErrorCode = (typeof INSPECTION_ERROR_CODES)[number];

const INSPECTION_ERROR_CODE_SET: ReadonlySet<string> = new Set(INSPECTION_ERROR_CODES);

export function isInspectionErrorCode(code: string): code is InspectionErrorCode {
  return INSPECTION_ERROR_CODE_SET.has(code);
}

/** Request-level codes of the HTTP API. */
export type HttpErrorCode =
  | "bad_request"
  | "unsupported_media_type"
  | "too_large"
  | "unsafe_artifact"
  | "malformed_artifact"
  | "not_found"
  | "range_not_satisfiable"
  | "unauthenticated"
  | "forbidden"
  | "rate_limited"
  | "insufficient_storage"
  | "unavailable"
  | "internal";

/** Local failures: configuration, files, usage. */
export type LocalErrorCode = "invalid_config" | "io_error" | "usage" | "integrity_error";

export type ErrorCode = TrustErrorCode | InspectionErrorCode | HttpErrorCode | LocalErrorCode;

export type ErrorDetails = Record<string, unknown>;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "GatewayError";
    this.code = code;
    this.details = details;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}

/** The message of any thrown value, for logs and one-line CLI errors (never a stack). */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
