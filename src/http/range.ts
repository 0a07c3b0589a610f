/**
 * One `Range: bytes=...` header against a representation of `size` bytes (RFC 9110 §14).
 * Only single ranges are served; a multi-range request is answered 416 rather than with a
 * multipart/byteranges body (documented in README.md, HTTP API). A unit other than `bytes` is ignored,
 * as §14.2 requires, and the full representation is sent.
 */
export type RangeRequest = { kind: "none" } | { kind: "range"; start: number; end: number } | { kind: "unsatisfiable" };

const SINGLE = /^(\d{0,15})-(\d{0,15})$/;

export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: "none" };
  const eq = header.indexOf("=");
  if (eq < 0) return { kind: "unsatisfiable" };
  if (header.slice(0, eq).trim().toLowerCase() !== "bytes") return { kind: "none" };
  const m = SINGLE.exec(header.slice(eq + 1).trim());
  if (!m) return { kind: "unsatisfiable" };
  const [, first = "", last = ""] = m;
  if (first === "" && last === "") return { kind: "unsatisfiable" };
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "range", start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return { kind: "unsatisfiable" };
  if (last === "") return { kind: "range", start, end: size - 1 };
  const end = Number(last);
  if (end < start) return { kind: "unsatisfiable" };
  return { kind: "range", start, end: Math.min(end, size - 1) };
}
