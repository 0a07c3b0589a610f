import { Router, type RequestHandler } from "express";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { GatewayMetrics, UploadVerdict } from "./types";

/**
 * GatewayMetrics on prom-client, on its own Registry (never the global one, so tests and
 * several apps in one process do not collide). Every name starts with `modelgate_`.
 */

/** Label values come from our own code tables; anything else is folded so cardinality stays bounded. */
function safeLabel(value: string): string {
  return /^[a-z][a-z0-9_]{0,39}$/.test(value) ? value : "other";
}

const DURATION_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

export interface PromMetricsOptions {
  /** Also export process metrics (CPU, memory, event loop lag, fds) as modelgate_process_*. */
  defaultMetrics?: boolean;
}

export class PromGatewayMetrics implements GatewayMetrics {
  readonly registry: Registry;
  private readonly uploads: Counter<"verdict" | "code">;
  private readonly uploadDuration: Histogram;
  private readonly inspectionDuration: Histogram;
  private readonly bytesInTotal: Counter;
  private readonly bytesOutTotal: Counter;
  private readonly fetches: Counter<"status">;
  private readonly trustReloads: Counter<"result">;
  private readonly auditFailures: Counter;
  private readonly inFlight: Gauge;
  private readonly rateLimited: Counter;
  private readonly uploadsShed: Counter;

  constructor(options: PromMetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.uploads = new Counter({
      name: "modelgate_uploads_total",
      help: "Finished uploads by verdict (accepted|rejected) and code (ok or the error code returned).",
      labelNames: ["verdict", "code"],
      registers,
    });
    this.uploadDuration = new Histogram({
      name: "modelgate_upload_duration_seconds",
      help: "Wall time of an upload request from first byte to response, in seconds.",
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.inspectionDuration = new Histogram({
      name: "modelgate_inspection_duration_seconds",
      help: "Time spent inspecting an artifact's content, in seconds.",
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.bytesInTotal = new Counter({ name: "modelgate_bytes_in_total", help: "Artifact bytes received by uploads.", registers });
    this.bytesOutTotal = new Counter({ name: "modelgate_bytes_out_total", help: "Artifact bytes sent by fetches.", registers });
    this.fetches = new Counter({
      name: "modelgate_fetches_total",
      help: "Artifact fetches answered, by HTTP status.",
      labelNames: ["status"],
      registers,
    });
    this.trustReloads = new Counter({
      name: "modelgate_trust_reloads_total",
      help: "Allowlist reloads by result (ok|error).",
      labelNames: ["result"],
      registers,
    });
    this.auditFailures = new Counter({
      name: "modelgate_audit_write_failures_total",
      help: "Audit appends that failed (the request was refused).",
      registers,
    });
    this.inFlight = new Gauge({ name: "modelgate_uploads_in_flight", help: "Uploads currently being received or inspected.", registers });
    this.rateLimited = new Counter({
      name: "modelgate_rate_limited_total",
      help: "Requests refused with 429 by the rate limiter.",
      registers,
    });
    this.uploadsShed = new Counter({
      name: "modelgate_uploads_shed_total",
      help: "Uploads refused with 503 because the concurrent-upload cap was reached.",
      registers,
    });
    if (options.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: "modelgate_" });
  }

  uploadFinished(verdict: UploadVerdict, code: string, seconds: number): void {
    this.uploads.inc({ verdict, code: safeLabel(code) });
    if (Number.isFinite(seconds) && seconds >= 0) this.uploadDuration.observe(seconds);
  }
  inspectionSeconds(seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.inspectionDuration.observe(seconds);
  }
  bytesIn(bytes: number): void {
    if (Number.isFinite(bytes) && bytes > 0) this.bytesInTotal.inc(bytes);
  }
  bytesOut(bytes: number): void {
    if (Number.isFinite(bytes) && bytes > 0) this.bytesOutTotal.inc(bytes);
  }
  fetchAnswered(status: number): void {
    this.fetches.inc({ status: Number.isInteger(status) && status >= 100 && status < 600 ? status.toString() : "other" });
  }
  trustReloaded(ok: boolean): void {
    this.trustReloads.inc({ result: ok ? "ok" : "error" });
  }
  auditWriteFailed(): void {
    this.auditFailures.inc();
  }
  uploadsInFlight(delta: 1 | -1): void {
    this.inFlight.inc(delta);
  }
  /** Reported by the rate-limit middleware. */
  requestRateLimited(): void {
    this.rateLimited.inc();
  }
  /** Reported by the concurrent-upload gate. */
  uploadShed(): void {
    this.uploadsShed.inc();
  }
}

/** GET /metrics in the Prometheus text format; `guard` (e.g. access.require("metrics")) runs first. */
export function metricsRouter(registry: Registry, guard?: RequestHandler): Router {
  const router = Router();
  const handlers: RequestHandler[] = guard ? [guard] : [];
  router.get("/metrics", ...handlers, (_req, res, next) => {
    registry.metrics().then(
      (text) => {
        res.setHeader("Content-Type", registry.contentType);
        res.setHeader("Cache-Control", "no-store");
        res.send(text);
      },
      (err: unknown) => {
        next(err);
      },
    );
  });
  return router;
}
