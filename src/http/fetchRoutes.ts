import { pipeline } from "node:stream/promises";
import { Router, type Request, type Response } from "express";
import { z } from "zod";
import type { AuditSink } from "../audit/types";
import type { AccessControl } from "../auth/types";
import { formatDigest, parseDigest } from "../digest";
import { GatewayError, isGatewayError } from "../errors";
import { ArtifactFetcher } from "../gateway/fetch";
import type { Inspector } from "../inspect/inspector";
import { MAX_LIST_LIMIT } from "../limits";
import type { GatewayMetrics } from "../metrics/types";
import type { AllowlistProvider } from "../reload/allowlistHolder";
import { namesOf } from "../store/names";
import type { ArtifactRecord, ArtifactStore } from "../store/types";
import { parseArtifactName } from "../trust";
import { HTTP_STATUS } from "./errorStatus";
import { parseRange } from "./range";
import { callOf } from "./requestContext";

export interface FetchRouteDeps {
  store: ArtifactStore;
  /** Inspects an artifact again when its source's content policy changed since acceptance. */
  inspect: Inspector;
  allowlist: AllowlistProvider;
  audit: AuditSink;
  metrics: GatewayMetrics;
  access: AccessControl;
  now: () => Date;
}

const ListQuerySchema = z.strictObject({
  source: z.string().min(1).max(128).optional(),
  // The name rule (parseArtifactName) runs after the schema: `invalid_name`, like an upload's name.
  name: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).default(50),
  cursor: z.string().min(1).max(1024).optional(),
});

function summary(record: ArtifactRecord): Record<string, unknown> {
  return {
    digest: record.digest,
    size: record.size,
    name: record.name,
    names: namesOf(record),
    format: record.format,
    createdAt: record.createdAt,
    sources: [...new Set(record.signatures.map((s) => s.source))],
  };
}

function digestParam(req: Request): string {
  const raw: unknown = req.params.digest;
  return parseDigest(typeof raw === "string" ? raw : "");
}

/** The strong entity tag of a blob: its digest, quoted. The validator If-None-Match and If-Range compare. */
function entityTagOf(hex: string): string {
  return `"${formatDigest(hex)}"`;
}

function setContentHeaders(res: Response, hex: string): void {
  res.setHeader("Content-Type", "application/octet-stream");
  res.setHeader("ETag", entityTagOf(hex));
  res.setHeader("Docker-Content-Digest", formatDigest(hex));
  // RFC 9530: the digest of the whole representation, as a byte sequence (base64 between colons).
  res.setHeader("Repr-Digest", `sha-256=:${Buffer.from(hex, "hex").toString("base64")}:`);
  res.setHeader("Cache-Control", "public, max-age=31536000, immutable");
  res.setHeader("Accept-Ranges", "bytes");
}

function etagMatches(header: string | undefined, hex: string): boolean {
  if (header === undefined) return false;
  return header.split(",").some((t) => {
    const tag = t.trim().replace(/^W\//, "");
    return tag === "*" || tag === entityTagOf(hex);
  });
}

/**
 * If-Range (RFC 9110 §13.1.5): the Range applies only when the validator matches the current
 * representation; otherwise the Range is ignored and the whole representation is sent (200), so a
 * client resuming a download of something else never splices two bodies. An entity tag matches
 * by strong comparison only (§8.8.3.2: a weak tag never does). An HTTP-date would have to equal a
 * strong Last-Modified exactly; this route sends no Last-Modified, so a date never matches.
 * Without If-Range the Range applies as sent.
 */
function ifRangeHolds(header: string | undefined, hex: string): boolean {
  if (header === undefined) return true;
  return header.trim() === entityTagOf(hex);
}

/**
 * GET/HEAD /v1/artifacts/<digest>, GET /v1/artifacts/<digest>/metadata, GET /v1/artifacts. The
 * rules (trust re-check, inspection again under a changed policy, re-hash, audit of refusals)
 * are the fetch use case's (src/gateway/fetch.ts); these routes parse, call it and answer.
 */
export function fetchRouter(deps: FetchRouteDeps): Router {
  const router = Router();
  const read = deps.access.require("read");
  const fetcher = new ArtifactFetcher(deps);

  const serveBlob = async (req: Request, res: Response): Promise<void> => {
    let status = 500;
    try {
      const hex = digestParam(req);
      const call = callOf(req, res);
      const { record } = await fetcher.admit(hex, call);
      const size = await fetcher.storedSize(hex, record, call);
      // RFC 9110 §13.2.2: If-None-Match is evaluated before the Range (a 304 wins over a 416).
      if (etagMatches(req.get("if-none-match"), hex)) {
        setContentHeaders(res, hex);
        status = 304;
        res.status(304).end();
        return;
      }
      const range = ifRangeHolds(req.get("if-range"), hex) ? parseRange(req.get("range"), size) : ({ kind: "none" } as const);
      if (range.kind === "unsatisfiable") {
        res.setHeader("Content-Range", `bytes */${String(size)}`);
        throw new GatewayError("range_not_satisfiable", `the range is not one satisfiable byte range of ${String(size)} bytes`);
      }
      setContentHeaders(res, hex);
      const isRange = range.kind === "range";
      const length = isRange ? range.end - range.start + 1 : size;
      status = isRange ? 206 : 200;
      res.status(status);
      res.setHeader("Content-Length", String(length));
      if (isRange) res.setHeader("Content-Range", `bytes ${String(range.start)}-${String(range.end)}/${String(size)}`);
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      // `bytes=0-` (or any range spanning the whole blob) is a full read: re-hashed like one.
      if (isRange && length !== size) {
        await pipeline(await fetcher.openPart(hex, { start: range.start, end: range.end }), res);
        deps.metrics.bytesOut(length);
        return;
      }
      const whole = await fetcher.openWhole(hex);
      try {
        await pipeline(whole.stream, whole.verifier, res);
        deps.metrics.bytesOut(whole.verifier.bytes);
      } catch (err) {
        if (isGatewayError(err) && err.code === "integrity_error") {
          status = 500;
          res.destroy();
          await fetcher.damagedWhileServed(hex, err, call);
          return;
        }
        throw err;
      }
    } catch (err) {
      status = isGatewayError(err) ? HTTP_STATUS[err.code] : 500;
      if (res.headersSent) {
        // The client went away or the disk failed mid-body: nothing more can be said.
        res.destroy();
        return;
      }
      throw err;
    } finally {
      deps.metrics.fetchAnswered(status);
    }
  };

  router.get("/v1/artifacts/:digest/metadata", read, async (req, res) => {
    const { record, trust } = await fetcher.describe(digestParam(req));
    res.json({ ...record, names: namesOf(record), trust });
  });

  // express answers HEAD with the GET route; serveBlob sends headers only for HEAD.
  router.get("/v1/artifacts/:digest", read, serveBlob);

  router.get("/v1/artifacts", read, async (req, res) => {
    const parsed = ListQuerySchema.safeParse({ ...(req.query as Record<string, unknown>) });
    if (!parsed.success) {
      throw new GatewayError("bad_request", `invalid query: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(query)"}: ${i.message}`).join("; ")}`);
    }
    if (parsed.data.name !== undefined) parseArtifactName(parsed.data.name, "the 'name' query parameter");
    const page = await fetcher.list(parsed.data);
    res.json({ items: page.items.map(summary), ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}) });
  });

  return router;
}
