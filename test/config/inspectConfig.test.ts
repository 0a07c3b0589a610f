import { availableParallelism } from "node:os";
import { defaultInspectWorkers, loadConfig, loadInspectConfig } from "../../src/config";
import { DEFAULT_INSPECT_WORKER_MEMORY_MB } from "../../src/limits";

describe("configuration of the inspection workers", () => {
  it("defaults: one worker per core but one (at least one), DEFAULT_INSPECT_WORKER_MEMORY_MB each", () => {
    expect(defaultInspectWorkers()).toBe(Math.max(1, availableParallelism() - 1));
    expect(loadConfig({}).inspect).toEqual({ workers: defaultInspectWorkers(), workerMemoryMb: DEFAULT_INSPECT_WORKER_MEMORY_MB });
    expect(loadInspectConfig({})).toEqual(loadConfig({}).inspect);
  });

  it("MODELGATE_INSPECT_WORKERS and MODELGATE_INSPECT_WORKER_MEMORY_MB set them", () => {
    const env = { MODELGATE_INSPECT_WORKERS: "3", MODELGATE_INSPECT_WORKER_MEMORY_MB: "512" };
    expect(loadConfig(env).inspect).toEqual({ workers: 3, workerMemoryMb: 512 });
    expect(loadInspectConfig(env)).toEqual({ workers: 3, workerMemoryMb: 512 });
  });

  it.each([
    ["MODELGATE_INSPECT_WORKERS", "0"],
    ["MODELGATE_INSPECT_WORKERS", "-1"],
    ["MODELGATE_INSPECT_WORKERS", "1.5"],
    ["MODELGATE_INSPECT_WORKERS", "257"],
    ["MODELGATE_INSPECT_WORKERS", "many"],
    ["MODELGATE_INSPECT_WORKER_MEMORY_MB", "63"],
    ["MODELGATE_INSPECT_WORKER_MEMORY_MB", "lots"],
  ])("%s=%s is invalid_config", (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(expect.objectContaining({ code: "invalid_config" }) as Error);
    expect(() => loadInspectConfig({ [name]: value })).toThrow(expect.objectContaining({ code: "invalid_config" }) as Error);
  });

  it("the bounds themselves are accepted (1 and 256 workers, 64 MiB)", () => {
    expect(loadInspectConfig({ MODELGATE_INSPECT_WORKERS: "1" }).workers).toBe(1);
    expect(loadInspectConfig({ MODELGATE_INSPECT_WORKERS: "256" }).workers).toBe(256);
    expect(loadInspectConfig({ MODELGATE_INSPECT_WORKER_MEMORY_MB: "64" }).workerMemoryMb).toBe(64);
  });

  it("the scan's reading ignores server settings it does not use (an invalid PORT)", () => {
    expect(() => loadConfig({ PORT: "not-a-port" })).toThrow(expect.objectContaining({ code: "invalid_config" }) as Error);
    expect(loadInspectConfig({ PORT: "not-a-port", MODELGATE_INSPECT_WORKERS: "2" }).workers).toBe(2);
  });
});
