import { Router } from "express";
import { z } from "zod";
import type { AuditPage } from "../audit/fileLog";
import type { AccessControl } from "../auth/types";
import { GatewayError } from "../errors";
import { MAX_AUDIT_PAGE } from "../limits";

/** What the audit route reads from: FileAuditLog satisfies it through readAuditEntries. */
export interface AuditReader {
  read(since: number, limit: number): Promise<AuditPage>;
}

const AuditQuery = z
  .object({
    since: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
    limit: z.coerce.number().int().min(1).max(MAX_AUDIT_PAGE).default(100),
  })
  .strict();

/** GET /v1/audit?since=<seq>&limit=<n>: entries with seq > since, admin scope only. */
export function auditRouter(access: AccessControl, log: AuditReader): Router {
  const router = Router();
  router.get("/v1/audit", access.require("admin"), (req, res, next) => {
    const parsed = AuditQuery.safeParse(req.query);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "query"}: ${i.message}`).join("; ");
      next(new GatewayError("bad_request", `invalid audit query: ${problems}`));
      return;
    }
    log.read(parsed.data.since, parsed.data.limit).then(
      (page) => {
        res.setHeader("Cache-Control", "no-store");
        res.json({ entries: page.entries, next: page.next ?? null });
      },
      (err: unknown) => {
        next(err);
      },
    );
  });
  return router;
}
