import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import pino from "pino";
import { AllowlistHolder } from "../../src/reload/allowlistHolder";
import { NOOP_METRICS } from "../../src/metrics/types";
import { allowlistJson, FlakyAuditSink, makePublisher } from "./helpers";

describe("AllowlistHolder", () => {
  let dir: string;
  let file: string;
  const logger = pino({ level: "silent" });
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "mg-allow-"));
    file = path.join(dir, "allowlist.json");
    await fsp.writeFile(file, allowlistJson([{ id: "first", keys: [{ pub: makePublisher() }] }]));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("throws at construction for an invalid or missing file (serve refuses to start)", async () => {
    const audit = new FlakyAuditSink();
    await fsp.writeFile(path.join(dir, "bad.json"), '{"version":1,"sources":[{"id":"x"}]}');
    expect(() => new AllowlistHolder(path.join(dir, "bad.json"), { logger, audit })).toThrow(expect.objectContaining({ code: "invalid_allowlist" }) as Error);
    expect(() => new AllowlistHolder(path.join(dir, "missing.json"), { logger, audit })).toThrow(expect.objectContaining({ code: "io_error" }) as Error);
  });

  it("keeps the previous allowlist when the file disappears, and serializes concurrent reloads", async () => {
    const audit = new FlakyAuditSink();
    const reloads: boolean[] = [];
    const holder = new AllowlistHolder(file, { logger, audit, metrics: { ...NOOP_METRICS, trustReloaded: (ok) => reloads.push(ok) } });
    await fsp.rm(file);
    expect(await holder.reload()).toBe(false);
    expect(holder.current().sources.map((s) => s.id)).toEqual(["first"]);
    expect(audit.events[0]).toMatchObject({ type: "allowlist.rejected", codes: ["io_error"] });
    await fsp.writeFile(file, allowlistJson([{ id: "second", keys: [{ pub: makePublisher() }] }]));
    const results = await Promise.all([holder.reload(), holder.reload(), holder.reload()]);
    expect(results).toEqual([true, true, true]);
    expect(holder.current().sources.map((s) => s.id)).toEqual(["second"]);
    expect(reloads).toEqual([false, true, true, true]);
  });

  it("a reload whose audit entry cannot be written still applies, and counts the failure", async () => {
    const audit = new FlakyAuditSink();
    audit.failing = true;
    let failures = 0;
    const holder = new AllowlistHolder(file, { logger, audit, metrics: { ...NOOP_METRICS, auditWriteFailed: () => (failures += 1) } });
    await fsp.writeFile(file, allowlistJson([{ id: "third", keys: [{ pub: makePublisher() }] }]));
    expect(await holder.reload()).toBe(true);
    expect(holder.current().sources.map((s) => s.id)).toEqual(["third"]);
    expect(failures).toBe(1);
  });
});
