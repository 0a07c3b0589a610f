import type { Logger } from "pino";
import type { AuditEvent, AuditSink } from "../audit/types";
import { isGatewayError, messageOf } from "../errors";
import { watchReplacedFile, type FileWatch } from "../fs/watchReplacedFile";
import type { GatewayMetrics } from "../metrics/types";
import { NOOP_METRICS } from "../metrics/types";
import { readTokensFile, TokenStore, type TokensFile, type TokenStoreProvider } from "./tokens";

export type { TokenStoreProvider } from "./tokens";

export interface TokenHolderOptions {
  logger: Logger;
  /** When given, reloads are audited (`tokens.reloaded` / `tokens.rejected`). */
  audit?: AuditSink;
  metrics?: GatewayMetrics;
  /** Injected for tests; defaults to readTokensFile. */
  load?: (file: string) => Promise<TokensFile>;
  /** Coalesces the burst of change events an editor's save (or `token revoke`'s rename) produces. */
  debounceMs?: number;
}

/**
 * Holds the token set in force and replaces it on SIGHUP (the caller wires the signal to
 * `reload()`) and when the tokens file changes, so `modelgate token revoke` takes effect without
 * a restart. The swap replaces one reference: a request authenticates against exactly one
 * store, the old or the new, never a mix. A new file that does not validate never replaces a good
 * one: the old set stays, an error is logged and `tokens.rejected` is audited (a typo must not
 * lock every client out, nor let anyone in).
 */
export class TokenHolder implements TokenStoreProvider {
  private value: TokenStore;
  private everHeldTokens: boolean;
  private watcher: FileWatch | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly load: (file: string) => Promise<TokensFile>;
  private readonly metrics: GatewayMetrics;

  private constructor(
    readonly file: string,
    initial: TokenStore,
    private readonly options: TokenHolderOptions,
  ) {
    this.value = initial;
    this.everHeldTokens = initial.size > 0;
    this.load = options.load ?? ((f) => readTokensFile(f));
    this.metrics = options.metrics ?? NOOP_METRICS;
  }

  /** Read the file once; throws `invalid_config` so `serve` refuses to start on a bad file. */
  static async open(file: string, options: TokenHolderOptions): Promise<TokenHolder> {
    const load = options.load ?? ((f: string) => readTokensFile(f));
    return new TokenHolder(file, new TokenStore(await load(file)), options);
  }

  current(): TokenStore {
    return this.value;
  }

  /**
   * True once any token has been in force since start. A gateway that started open (loopback,
   * empty tokens file) closes as soon as tokens appear, and never reopens when they are all
   * revoked: an empty set then refuses everyone.
   */
  get enforcing(): boolean {
    return this.everHeldTokens;
  }

  /** Re-read the file; resolves true when the new set is in force, false when the old one was kept. */
  reload(): Promise<boolean> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Watch the file's directory (`token revoke` and editors replace the file by rename). */
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
          this.options.logger.error({ err: messageOf(err), file: this.file }, "tokens file watch failed; SIGHUP still reloads");
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
    let next: TokenStore;
    try {
      next = new TokenStore(await this.load(this.file));
    } catch (err) {
      const code = isGatewayError(err) ? err.code : "internal";
      logger.error({ file: this.file, code, err: messageOf(err) }, "tokens file reload rejected; keeping the previous tokens");
      await this.auditQuietly({ type: "tokens.rejected", codes: [code], details: { file: this.file, message: messageOf(err) } });
      return false;
    }
    const before = new Set(this.value.ids());
    const after = new Set(next.ids());
    this.value = next;
    if (next.size > 0) this.everHeldTokens = true;
    // Token ids only: never the tokens or their hashes.
    const details = {
      file: this.file,
      tokens: next.size,
      added: [...after].filter((id) => !before.has(id)),
      removed: [...before].filter((id) => !after.has(id)),
    };
    logger.info(details, "tokens file reloaded");
    await this.auditQuietly({ type: "tokens.reloaded", details });
    return true;
  }

  /** A reload has no client to refuse: a failed audit write is logged and counted, never thrown. */
  private async auditQuietly(event: AuditEvent): Promise<void> {
    if (this.options.audit === undefined) return;
    try {
      await this.options.audit.append(event);
    } catch (err) {
      this.metrics.auditWriteFailed();
      this.options.logger.error({ err: messageOf(err) }, "audit append failed for a tokens file reload");
    }
  }
}
