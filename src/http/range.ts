/**
 * One `Range: bytes=...` header against a representation of `size` bytes (RFC 9110 §14).
 * Only single ranges are served; a multi-range request is answered 416 rather than with a
 * multipart/byteranges body (documented in README.md, HTTP API). A unit other than `bytes` is ignored,
 * as §14.2 requires, and the full representation is sent.
 */
export type RangeRequest = { kind: "none" } | { kind: "range"; start: number; end: number } | { kind: "unsatisfiable" };

/**
 * `first-pos "-" [ last-pos ]` or `"-" suffix-length`; each is `1*DIGIT` (RFC 9110 §14.1.1), so
 * leading zeros and any number of digits are valid. The header itself is bounded by node's
 * maxHeaderSize (16 KiB), and this pattern matches in linear time.
 */
const SINGLE = /^(\d*)-(\d*)$/;
// Digit strings are read with Number(): beyond 2^53 it rounds, but rounding is monotonic and every
// stored size is far below 2^53, so comparisons with the size keep their outcome: a huge first-pos
// is unsatisfiable, a huge last-pos or suffix-length means "to the end" / "all of it".

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
    // §14.1.1: a suffix-length of 0 is unsatisfiable; one at least the size selects the whole
    // representation. An empty representation has no byte range to name: send it whole (200).
    const suffix = Number(last);
    if (suffix === 0) return { kind: "unsatisfiable" };
    if (size === 0) return { kind: "none" };
    return { kind: "range", start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (start >= size) return { kind: "unsatisfiable" };
  if (last === "") return { kind: "range", start, end: size - 1 };
  const end = Number(last);
  if (end < start) return { kind: "unsatisfiable" };
  return { kind: "range", start, end: Math.min(end, size - 1) };
}
