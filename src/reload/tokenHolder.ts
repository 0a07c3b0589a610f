import type { Logger } from "pino";
import type { AuditSink } from "../audit/types";
import { ReloadableFile } from "./reloadableFile";
import type { GatewayMetrics } from "../metrics/types";
import { readTokensFile, TokenStore, type TokensFile, type TokenStoreProvider } from "../auth/tokens";

export type { TokenStoreProvider } from "../auth/tokens";

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
export class TokenHolder extends ReloadableFile<TokenStore> implements TokenStoreProvider {
  private everHeldTokens: boolean;

  private constructor(file: string, initial: TokenStore, options: TokenHolderOptions, load: (file: string) => Promise<TokensFile>) {
    super(file, initial, {
      what: "tokens file",
      logger: options.logger,
      audit: options.audit,
      metrics: options.metrics,
      load: async (f) => new TokenStore(await load(f)),
      events: { reloaded: "tokens.reloaded", rejected: "tokens.rejected" },
      debounceMs: options.debounceMs,
    });
    this.everHeldTokens = initial.size > 0;
  }

  /** Read the file once; throws `invalid_config` so `serve` refuses to start on a bad file. */
  static async open(file: string, options: TokenHolderOptions): Promise<TokenHolder> {
    const load = options.load ?? ((f: string) => readTokensFile(f));
    return new TokenHolder(file, new TokenStore(await load(file)), options, load);
  }

  /**
   * True once any token has been in force since start. A gateway that started open (loopback,
   * empty tokens file) closes as soon as tokens appear, and never reopens when they are all
   * revoked: an empty set then refuses everyone.
   */
  get enforcing(): boolean {
    return this.everHeldTokens;
  }

  protected reloaded(next: TokenStore, previous: TokenStore): Record<string, unknown> {
    if (next.size > 0) this.everHeldTokens = true;
    const before = new Set(previous.ids());
    const after = new Set(next.ids());
    // Token ids only: never the tokens or their hashes.
    return {
      tokens: next.size,
      added: [...after].filter((id) => !before.has(id)),
      removed: [...before].filter((id) => !after.has(id)),
    };
  }
}
