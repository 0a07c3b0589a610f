import type { Logger } from "pino";
import type { AuditSink } from "../audit/types";
import { isGatewayError, messageOf } from "../errors";
import { watchReplacedFile, type FileWatch } from "../fs/watchReplacedFile";
import type { GatewayMetrics } from "../metrics/types";
import { NOOP_METRICS } from "../metrics/types";
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
 * Holds the allowlist in force and replaces it on SIGHUP (the caller wires the signal to
 * `reload()`) and when the file changes. A new file that does not validate never replaces a good
 * one: the old allowlist stays, an error is logged and `allowlist.rejected` is audited, so a typo
 * cannot open or close the gateway by accident (fail closed on the old, known-good state).
 */
export class AllowlistHolder implements AllowlistProvider {
  private value: Allowlist;
  private watcher: FileWatch | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly load: (file: string) => Allowlist;
  private readonly metrics: GatewayMetrics;

  /** Load the file once; throws (invalid_allowlist / io_error) so `serve` refuses to start. */
  constructor(
    readonly file: string,
    private readonly options: AllowlistHolderOptions,
  ) {
    this.load = options.load ?? loadAllowlist;
    this.metrics = options.metrics ?? NOOP_METRICS;
    this.value = this.load(file);
  }

  current(): Allowlist {
    return this.value;
  }

  /** Re-read the file; resolves true when the new allowlist is in force, false when the old one was kept. */
  reload(): Promise<boolean> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Watch the file's directory (editors replace files by rename, which a file watch would miss). */
  watch(): void {
    if (this.watcher) return;
    this.watcher = watchReplacedFile(
      this.file,
      () => {
        void this.reload();
      },
      {
        debounceMs: this.options.debounceMs ?? 100,
        onError: (err) => {
          this.options.logger.error({ err: messageOf(err), file: this.file }, "allowlist watch failed; SIGHUP still reloads");
        },
      },
    );
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private async reloadNow(): Promise<boolean> {
    const { logger } = this.options;
    let next: Allowlist;
    try {
      next = this.load(this.file);
    } catch (err) {
      const code = isGatewayError(err) ? err.code : "internal";
      logger.error({ file: this.file, code, err: messageOf(err) }, "allowlist reload rejected; keeping the previous allowlist");
      this.metrics.trustReloaded(false);
      await this.auditQuietly({ type: "allowlist.rejected", codes: [code], details: { file: this.file, message: messageOf(err) } });
      return false;
    }
    this.value = next;
    logger.info({ file: this.file, sources: next.sources.map((s) => s.id) }, "allowlist reloaded");
    this.metrics.trustReloaded(true);
    await this.auditQuietly({ type: "allowlist.reloaded", details: { file: this.file, sources: next.sources.map((s) => s.id) } });
    return true;
  }

  /** A reload has no client to refuse: a failed audit write is logged and counted, never thrown. */
  private async auditQuietly(event: Parameters<AuditSink["append"]>[0]): Promise<void> {
    try {
      await this.options.audit.append(event);
    } catch (err) {
      this.metrics.auditWriteFailed();
      this.options.logger.error({ err: messageOf(err) }, "audit append failed for an allowlist reload");
    }
  }
}

