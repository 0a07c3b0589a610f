import type { Logger } from "pino";
import type { AuditSink } from "../audit/types";
import { ReloadableFile } from "./reloadableFile";
import type { GatewayMetrics } from "../metrics/types";
import { loadAllowlist, type Allowlist } from "../trust";

/** What the routes need: the allowlist in force right now. */
export interface AllowlistProvider {
  current(): Allowlist;
}

/** A fixed allowlist (tests, tools). */
export function staticAllowlist(allowlist: Allowlist): AllowlistProvider {
  return { current: () => allowlist };
}

export interface AllowlistHolderOptions {
  logger: Logger;
  audit: AuditSink;
  metrics?: GatewayMetrics;
  /** Injected for tests; defaults to src/trust's loadAllowlist. */
  load?: (file: string) => Allowlist;
  /** Coalesces the burst of change events an editor's save produces. */
  debounceMs?: number;
}

/**
 * Holds the allowlist in force and replaces it on SIGHUP and when the file changes. A new file
 * that does not validate never replaces a good one: the old allowlist stays, an error is logged
 * and `allowlist.rejected` is audited, so a typo cannot open or close the gateway by accident.
 */
export class AllowlistHolder extends ReloadableFile<Allowlist> implements AllowlistProvider {
  /** Load the file once; throws (invalid_allowlist / io_error) so `serve` refuses to start. */
  constructor(file: string, options: AllowlistHolderOptions) {
    const load = options.load ?? loadAllowlist;
    super(file, load(file), {
      what: "allowlist",
      logger: options.logger,
      audit: options.audit,
      metrics: options.metrics,
      load,
      events: { reloaded: "allowlist.reloaded", rejected: "allowlist.rejected" },
      debounceMs: options.debounceMs,
    });
  }

  protected reloaded(next: Allowlist): Record<string, unknown> {
    return { sources: next.sources.map((s) => s.id) };
  }

  protected override settled(ok: boolean): void {
    this.metrics.trustReloaded(ok);
  }
}
