import { pipeline } from "node:stream/promises";
import { Router, type Request, type Response } from "express";
import { z } from "zod";
import type { AuditSink } from "../audit/types";
import type { AccessControl } from "../auth/types";
import { formatDigest, parseDigest, VerifyingStream } from "../digest";
import { GatewayError, isGatewayError, messageOf } from "../errors";
import { MAX_LIST_LIMIT } from "../limits";
import type { GatewayMetrics } from "../metrics/types";
import { namesOf } from "../store/names";
import type { ArtifactRecord, ArtifactStore } from "../store/types";
import { parseArtifactName, recheckTrustAll, type PublishVerification, type TrustedEnvelope } from "../trust";
import type { Inspector } from "../inspect/inspector";
import { acceptedUnderCurrentPolicy, Reinspector } from "./reinspection";
import type { AllowlistProvider } from "../reload/allowlistHolder";
import { HTTP_STATUS } from "./errorStatus";
import { parseRange } from "./range";
import { logOf, requestIdOf, tokenIdOf } from "./requestContext";

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

/** GET/HEAD /v1/artifacts/<digest>, GET /v1/artifacts/<digest>/metadata, GET /v1/artifacts. */
export function fetchRouter(deps: FetchRouteDeps): Router {
  const router = Router();
  const read = deps.access.require("read");
  const reinspector = new Reinspector({ store: deps.store, inspect: deps.inspect, audit: deps.audit, metrics: deps.metrics });

  /** Audit a refusal before answering; a failed append turns the answer into 503. */
  const refuse = async (req: Request, res: Response, err: GatewayError, hex: string, record?: ArtifactRecord): Promise<never> => {
    try {
      await deps.audit.append({
        type: "fetch.refused",
        requestId: requestIdOf(res),
        ...(tokenIdOf(res) !== undefined ? { tokenId: tokenIdOf(res) } : {}),
        ...(req.ip !== undefined ? { client: req.ip } : {}),
        digest: formatDigest(hex),
        ...(record ? { name: record.name } : {}),
        codes: [err.code],
      });
    } catch (auditErr) {
      deps.metrics.auditWriteFailed();
      logOf(res).error({ err: messageOf(auditErr) }, "audit append failed for a refused fetch");
      throw new GatewayError("unavailable", "the audit log cannot be written; try again later");
    }
    throw err;
  };

  const trusted = async (req: Request, res: Response, hex: string): Promise<{ record: ArtifactRecord; verification: PublishVerification }> => {
    const record = await deps.store.readRecord(hex);
    if (record === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
    let trustedSignatures: TrustedEnvelope[];
    try {
      trustedSignatures = recheckTrustAll({
        // Each signature against the name it signed (record.name for older entries).
        envelopes: record.signatures,
        digestHex: hex,
        name: record.name,
        allowlist: deps.allowlist.current(),
        now: deps.now(),
      });
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      logOf(res).warn({ digest: formatDigest(hex), code: err.code, verdict: "refused" }, "fetch refused: artifact no longer trusted");
      return refuse(req, res, err, hex, record);
    }
    const current = acceptedUnderCurrentPolicy(record, trustedSignatures);
    if (current !== undefined) return { record, verification: current.verification };
    // Trusted, but accepted under a content policy its source no longer has: inspect again.
    try {
      const admitted = await reinspector.admit(hex, record, trustedSignatures, { requestId: requestIdOf(res) });
      logOf(res).info(
        { digest: formatDigest(hex), source: admitted.verification.source.id, verdict: "accepted" },
        "artifact inspected again under its source's current content policy",
      );
      return admitted;
    } catch (err) {
      if (!isGatewayError(err) || err.code === "unavailable" || err.code === "not_found") throw err;
      if (err.code === "integrity_error") {
        await quarantine(res, hex, err.message);
        return refuse(req, res, new GatewayError("integrity_error", "the stored artifact is damaged and was quarantined"), hex, record);
      }
      logOf(res).warn({ digest: formatDigest(hex), code: err.code, verdict: "refused" }, "fetch refused: the current content policy rejects the artifact");
      return refuse(req, res, err, hex, record);
    }
  };

  const quarantine = async (res: Response, hex: string, reason: string): Promise<void> => {
    logOf(res).error({ digest: formatDigest(hex), reason }, "stored blob failed verification; quarantined");
    try {
      await deps.store.quarantine(hex, reason);
    } catch (err) {
      logOf(res).error({ digest: formatDigest(hex), err: messageOf(err) }, "quarantine failed");
    }
  };

  const serveBlob = async (req: Request, res: Response): Promise<void> => {
    let status = 500;
    try {
      const hex = digestParam(req);
      const { record } = await trusted(req, res, hex);
      const stat = await deps.store.stat(hex);
      if (stat === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
      if (stat.size !== record.size) {
        await quarantine(res, hex, `size on disk ${String(stat.size)} differs from the record's ${String(record.size)}`);
        throw new GatewayError("integrity_error", "the stored artifact is damaged and was quarantined");
      }
      // RFC 9110 §13.2.2: If-None-Match is evaluated before the Range (a 304 wins over a 416).
      if (etagMatches(req.get("if-none-match"), hex)) {
        setContentHeaders(res, hex);
        status = 304;
        res.status(304).end();
        return;
      }
      const range = ifRangeHolds(req.get("if-range"), hex) ? parseRange(req.get("range"), stat.size) : ({ kind: "none" } as const);
      if (range.kind === "unsatisfiable") {
        res.setHeader("Content-Range", `bytes */${String(stat.size)}`);
        throw new GatewayError("range_not_satisfiable", `the range is not one satisfiable byte range of ${String(stat.size)} bytes`);
      }
      setContentHeaders(res, hex);
      const isRange = range.kind === "range";
      const length = isRange ? range.end - range.start + 1 : stat.size;
      status = isRange ? 206 : 200;
      res.status(status);
      res.setHeader("Content-Length", String(length));
      if (isRange) res.setHeader("Content-Range", `bytes ${String(range.start)}-${String(range.end)}/${String(stat.size)}`);
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      // `bytes=0-` (or any range spanning the whole blob) is a full read: re-hashed like one.
      const partial = isRange && length !== stat.size;
      const opened = await deps.store.openRead(hex, partial ? { start: range.start, end: range.end } : undefined);
      if (opened === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
      if (partial) {
        // A part cannot be checked against the whole's digest; clients verify after reassembly.
        await pipeline(opened.stream, res);
        deps.metrics.bytesOut(length);
        return;
      }
      const verifier = new VerifyingStream(hex);
      try {
        await pipeline(opened.stream, verifier, res);
        deps.metrics.bytesOut(verifier.bytes);
      } catch (err) {
        if (isGatewayError(err) && err.code === "integrity_error") {
          status = 500;
          res.destroy();
          await quarantine(res, hex, err.message);
          try {
            await deps.audit.append({ type: "fetch.refused", requestId: requestIdOf(res), digest: formatDigest(hex), codes: ["integrity_error"] });
          } catch {
            deps.metrics.auditWriteFailed();
          }
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
    const hex = digestParam(req);
    const record = await deps.store.readRecord(hex);
    if (record === undefined) throw new GatewayError("not_found", `no artifact ${formatDigest(hex)}`);
    let trust: Record<string, unknown>;
    try {
      const all = recheckTrustAll({ envelopes: record.signatures, digestHex: hex, name: record.name, allowlist: deps.allowlist.current(), now: deps.now() });
      const current = acceptedUnderCurrentPolicy(record, all);
      const v = (current ?? all[0]).verification;
      // "changed": no signature was accepted under its source's content policy as it is now; the
      // next download inspects the bytes again and serves or refuses them.
      trust = { status: "trusted", source: v.source.id, keyIds: v.keyIds, contentPolicy: current !== undefined ? "current" : "changed" };
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      trust = { status: "refused", code: err.code };
    }
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
    const page = await deps.store.list(parsed.data);
    res.json({ items: page.items.map(summary), ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}) });
  });

  return router;
}
