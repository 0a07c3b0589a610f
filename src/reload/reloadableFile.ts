import type { Logger } from "pino";
import type { AuditEvent, AuditEventType, AuditSink } from "../audit/types";
import { isGatewayError, messageOf } from "../errors";
import type { GatewayMetrics } from "../metrics/types";
import { NOOP_METRICS } from "../metrics/types";
import { watchReplacedFile, type FileWatch } from "./watchReplacedFile";

export interface ReloadableFileOptions<T> {
  /** What the file is, for logs: "allowlist", "tokens file". */
  what: string;
  logger: Logger;
  /** When given, reloads are audited with `events`. */
  audit?: AuditSink | undefined;
  metrics?: GatewayMetrics | undefined;
  load: (file: string) => T | Promise<T>;
  events: { reloaded: AuditEventType; rejected: AuditEventType };
  /** Coalesces the burst of change events an editor's save (or an atomic rename) produces. */
  debounceMs?: number | undefined;
}

/**
 * A configuration file the running gateway re-reads on SIGHUP (the caller wires the signal to
 * `reload()`) and when it changes. Reloads run one at a time; a reload swaps one reference, so a
 * request sees the old value or the new one, never a mix. A new file that does not load never
 * replaces a good one: the old value stays, an error is logged and `events.rejected` is audited
 * (fail closed on the last known-good state).
 */
export abstract class ReloadableFile<T> {
  private value: T;
  private watcher: FileWatch | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  protected readonly metrics: GatewayMetrics;

  protected constructor(
    readonly file: string,
    initial: T,
    private readonly reloadOptions: ReloadableFileOptions<T>,
  ) {
    this.value = initial;
    this.metrics = reloadOptions.metrics ?? NOOP_METRICS;
  }

  current(): T {
    return this.value;
  }

  /**
   * What a reload that took effect logs and audits (never secrets). Called after the swap; a
   * subclass may also update state derived from the new value here.
   */
  protected abstract reloaded(next: T, previous: T): Record<string, unknown>;

  /** Called once per reload with its outcome (metrics). */
  protected settled(_ok: boolean): void {
    // Nothing by default.
  }

  /** Re-read the file; resolves true when the new value is in force, false when the old one was kept. */
  reload(): Promise<boolean> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Watch the file's directory (editors and atomic writers replace the file by rename). */
  watch(): void {
    if (this.watcher) return;
    const { what, logger } = this.reloadOptions;
    this.watcher = watchReplacedFile(
      this.file,
      () => {
        void this.reload();
      },
      {
        debounceMs: this.reloadOptions.debounceMs ?? 100,
        onError: (err) => {
          logger.error({ err: messageOf(err), file: this.file }, `${what} watch failed; SIGHUP still reloads`);
        },
      },
    );
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  private async reloadNow(): Promise<boolean> {
    const { what, logger, events } = this.reloadOptions;
    let next: T;
    try {
      next = await this.reloadOptions.load(this.file);
    } catch (err) {
      const code = isGatewayError(err) ? err.code : "internal";
      logger.error({ file: this.file, code, err: messageOf(err) }, `${what} reload rejected; keeping the previous ${what}`);
      this.settled(false);
      await this.auditQuietly({ type: events.rejected, codes: [code], details: { file: this.file, message: messageOf(err) } });
      return false;
    }
    const previous = this.value;
    this.value = next;
    const details = { file: this.file, ...this.reloaded(next, previous) };
    logger.info(details, `${what} reloaded`);
    this.settled(true);
    await this.auditQuietly({ type: events.reloaded, details });
    return true;
  }

  /** A reload has no client to refuse: a failed audit write is logged and counted, never thrown. */
  private async auditQuietly(event: AuditEvent): Promise<void> {
    const { audit, logger, what } = this.reloadOptions;
    if (audit === undefined) return;
    try {
      await audit.append(event);
    } catch (err) {
      this.metrics.auditWriteFailed();
      logger.error({ err: messageOf(err) }, `audit append failed for a ${what} reload`);
    }
  }
}
