import request from "supertest";
import { PromGatewayMetrics, metricsRouter } from "../../src/metrics/prom";
import { GatewayError } from "../../src/errors";
import { tinyApp } from "../http/middleware/tinyApp";

describe("PromGatewayMetrics", () => {
  it("exports every gateway metric under modelgate_*", async () => {
    const m = new PromGatewayMetrics();
    m.uploadFinished("accepted", "ok", 0.2);
    m.uploadFinished("rejected", "unsafe_artifact", 0.1);
    m.uploadFinished("rejected", "Not A Code {}", 0.1);
    m.inspectionSeconds(0.05);
    m.bytesIn(1000);
    m.bytesOut(500);
    m.fetchAnswered(200);
    m.fetchAnswered(404);
    m.trustReloaded(true);
    m.trustReloaded(false);
    m.auditWriteFailed();
    m.uploadsInFlight(1);
    m.uploadsInFlight(1);
    m.uploadsInFlight(-1);
    m.requestRateLimited();
    m.uploadShed();
    const text = await m.registry.metrics();
    expect(text).toContain('modelgate_uploads_total{verdict="accepted",code="ok"} 1');
    expect(text).toContain('modelgate_uploads_total{verdict="rejected",code="unsafe_artifact"} 1');
    expect(text).toContain('modelgate_uploads_total{verdict="rejected",code="other"} 1');
    expect(text).toContain("modelgate_upload_duration_seconds_count 3");
    expect(text).toContain("modelgate_inspection_duration_seconds_count 1");
    expect(text).toContain("modelgate_bytes_in_total 1000");
    expect(text).toContain("modelgate_bytes_out_total 500");
    expect(text).toContain('modelgate_fetches_total{status="200"} 1');
    expect(text).toContain('modelgate_fetches_total{status="404"} 1');
    expect(text).toContain('modelgate_trust_reloads_total{result="ok"} 1');
    expect(text).toContain('modelgate_trust_reloads_total{result="error"} 1');
    expect(text).toContain("modelgate_audit_write_failures_total 1");
    expect(text).toContain("modelgate_uploads_in_flight 1");
    expect(text).toContain("modelgate_rate_limited_total 1");
    expect(text).toContain("modelgate_uploads_shed_total 1");
  });

  it("keeps registries apart and can add process metrics", async () => {
    const a = new PromGatewayMetrics({ defaultMetrics: true });
    const b = new PromGatewayMetrics();
    a.bytesIn(7);
    expect(await b.registry.metrics()).toContain("modelgate_bytes_in_total 0");
    expect(await a.registry.metrics()).toContain("modelgate_process_cpu_user_seconds_total");
  });

  it("ignores nonsense values instead of throwing", async () => {
    const m = new PromGatewayMetrics();
    m.bytesIn(-5);
    m.bytesIn(Number.NaN);
    m.uploadFinished("accepted", "ok", Number.NaN);
    m.fetchAnswered(9999);
    const text = await m.registry.metrics();
    expect(text).toContain("modelgate_bytes_in_total 0");
    expect(text).toContain('modelgate_fetches_total{status="other"} 1');
  });

  it("serves GET /metrics in the Prometheus text format, behind an optional guard", async () => {
    const m = new PromGatewayMetrics();
    m.bytesOut(42);
    const open = tinyApp((app) => app.use(metricsRouter(m.registry)));
    const res = await request(open).get("/metrics");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    expect(res.text).toContain("modelgate_bytes_out_total 42");
    const guarded = tinyApp((app) =>
      app.use(
        metricsRouter(m.registry, (_req, _res, next) => {
          next(new GatewayError("unauthenticated", "no"));
        }),
      ),
    );
    expect((await request(guarded).get("/metrics")).status).toBe(401);
  });
});
