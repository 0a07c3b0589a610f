import type { RequestHandler } from "express";

/**
 * Response headers for an API that serves JSON and opaque bytes, never HTML: nothing may be
 * sniffed, framed, or embedded cross-origin, and no referrer leaks. HSTS only when the operator
 * says TLS is in front (a reverse proxy); sending it over plain HTTP on loopback would be wrong.
 */
export interface SecurityHeadersOptions {
  /** Strict-Transport-Security max-age in seconds; undefined or 0 sends no HSTS. */
  hstsMaxAgeSeconds?: number;
}

export function securityHeaders(options: SecurityHeadersOptions = {}): RequestHandler {
  const fixed: [string, string][] = [
    ["X-Content-Type-Options", "nosniff"],
    ["X-Frame-Options", "DENY"],
    ["Referrer-Policy", "no-referrer"],
    ["Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"],
    ["Cross-Origin-Opener-Policy", "same-origin"],
    ["Cross-Origin-Resource-Policy", "same-origin"],
    ["X-Permitted-Cross-Domain-Policies", "none"],
  ];
  if (options.hstsMaxAgeSeconds !== undefined && options.hstsMaxAgeSeconds > 0) {
    fixed.push(["Strict-Transport-Security", `max-age=${options.hstsMaxAgeSeconds.toString()}; includeSubDomains`]);
  }
  return (_req, res, next) => {
    for (const [name, value] of fixed) res.setHeader(name, value);
    res.removeHeader("X-Powered-By");
    next();
  };
}
