import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { Request, RequestHandler, Response } from "express";
import { z } from "zod";
import type { AuditSink } from "../audit/types";
import { Sha256HexSchema } from "../digest";
import { GatewayError, messageOf } from "../errors";
import { MAX_TOKEN_LENGTH, MAX_TOKENS_FILE_BYTES } from "../limits";
import { SCOPES, type AccessControl, type Scope } from "./types";

/**
 * API tokens. The tokens file stores only SHA-256 hashes (a leaked file grants nothing); the
 * token itself is printed once by `modelgate token create`. Tokens are 32 random bytes, so a
 * plain SHA-256 is enough: there is nothing to brute-force as with passwords.
 */

export const TOKEN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const TOKEN_PREFIX = "mgt_";
/** RFC 6750 b64token characters. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

const ScopeSchema = z.enum(SCOPES as [Scope, ...Scope[]]);

export const TokenRecordSchema = z
  .object({
    id: z.string().regex(TOKEN_ID_PATTERN),
    sha256: Sha256HexSchema,
    scopes: z.array(ScopeSchema).min(1),
    createdAt: z.string().min(1),
  })
  .strict();

export const TokensFileSchema = z
  .object({
    version: z.literal(1),
    tokens: z.array(TokenRecordSchema),
  })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    for (const t of file.tokens) {
      if (seen.has(t.id)) ctx.addIssue({ code: "custom", message: `duplicate token id '${t.id}'` });
      seen.add(t.id);
    }
  });

export type TokenRecord = z.infer<typeof TokenRecordSchema>;
export type TokensFile = z.infer<typeof TokensFileSchema>;

export const EMPTY_TOKENS_FILE: TokensFile = Object.freeze({ version: 1 as const, tokens: [] });

/** Hex SHA-256 of a token's UTF-8 bytes: what the tokens file stores. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A fresh token: prefix (so secret scanners can spot leaks) + 32 random bytes, base64url. */
export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString("base64url");
}

export function parseTokensFile(text: string, where = "tokens file"): TokensFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GatewayError("invalid_config", `${where} is not valid JSON: ${messageOf(err)}`);
  }
  const parsed = TokensFileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new GatewayError("invalid_config", `${where} is invalid: ${problems}`);
  }
  return parsed.data;
}

/**
 * Read and validate a tokens file. A missing file is `invalid_config` unless `missingOk`
 * (token create starts a new file): an operator who configured tokens must not silently get an
 * open server.
 */
export async function readTokensFile(file: string, opts: { missingOk?: boolean } = {}): Promise<TokensFile> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" && opts.missingOk === true) return { version: 1, tokens: [] };
    throw new GatewayError("invalid_config", `cannot read tokens file ${file}: ${messageOf(err)}`, undefined, { cause: err });
  }
  try {
    const { size } = await handle.stat();
    if (size > MAX_TOKENS_FILE_BYTES) {
      throw new GatewayError("invalid_config", `tokens file ${file} is ${size.toString()} bytes; at most ${MAX_TOKENS_FILE_BYTES.toString()} allowed`);
    }
    const text = await handle.readFile({ encoding: "utf8" });
    return parseTokensFile(text, `tokens file ${file}`);
  } finally {
    await handle.close();
  }
}

/**
 * Write a tokens file atomically: temp file in the same directory (mode 0600), fsync, rename,
 * fsync the directory. A reader never sees a half-written file.
 */
export async function writeTokensFileAtomic(file: string, content: TokensFile): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await fs.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid.toString()}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await fs.open(tmp, "wx", 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(content, null, 2)}\n`, "utf8");
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}

async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, "r");
    await handle.sync();
  } catch {
    // Some platforms cannot fsync a directory; the rename itself is still atomic.
  } finally {
    await handle?.close();
  }
}

/** Holds the token hashes and answers "which token is this?" in constant time per record. */
export class TokenStore {
  private readonly records: readonly { record: TokenRecord; digest: Buffer }[];

  constructor(file: TokensFile) {
    this.records = file.tokens.map((record) => ({ record, digest: Buffer.from(record.sha256, "hex") }));
  }

  get size(): number {
    return this.records.length;
  }

  /** The token ids (not secret), in file order. */
  ids(): string[] {
    return this.records.map(({ record }) => record.id);
  }

  /**
   * The record whose hash matches the token, or undefined. Compares the presented digest with
   * every record with timingSafeEqual (equal-length digests) and never exits early, so timing
   * reveals neither which record matched nor how many bytes did.
   */
  authenticate(token: string): TokenRecord | undefined {
    const presented = createHash("sha256").update(token, "utf8").digest();
    let found: TokenRecord | undefined;
    for (const { record, digest } of this.records) {
      if (timingSafeEqual(presented, digest) && found === undefined) found = record;
    }
    return found;
  }
}

/** The token set in force right now; a reloading holder (src/reload/tokenHolder.ts) swaps it. */
export interface TokenStoreProvider {
  current(): TokenStore;
}

export type BearerResult = { kind: "none" } | { kind: "malformed" } | { kind: "token"; token: string };

/** Parse `Authorization: Bearer <token>` (RFC 6750 section 2.1). Case-insensitive scheme. */
export function parseBearer(header: string | undefined): BearerResult {
  if (header === undefined || header === "") return { kind: "none" };
  const match = /^Bearer +(\S+) *$/i.exec(header);
  const token = match?.[1];
  if (token === undefined || token.length > MAX_TOKEN_LENGTH || !B64TOKEN.test(token)) return { kind: "malformed" };
  return { kind: "token", token };
}

export interface TokenAccessOptions {
  /** Let requests without any Authorization header use `read` routes. */
  anonymousRead: boolean;
  /** When given, every successful use of the `admin` scope is audited before the route runs. */
  audit?: AuditSink;
}

const WWW_AUTHENTICATE = 'Bearer realm="modelgate"';

/**
 * AccessControl over a TokenStore. Answers through GatewayError (`unauthenticated` 401,
 * `forbidden` 403) so the app's one error handler renders the response. A presented but
 * invalid token is always 401, even where anonymous reads are allowed: fail closed.
 * Given a provider, each request reads the store in force once and decides on that one store,
 * so a reload swapping the set mid-request is atomic for it.
 */
export class TokenAccessControl implements AccessControl {
  private readonly provider: TokenStoreProvider;

  constructor(
    store: TokenStore | TokenStoreProvider,
    private readonly options: TokenAccessOptions,
  ) {
    this.provider = store instanceof TokenStore ? { current: () => store } : store;
  }

  /** Token id of a valid bearer token on the request, else undefined (used to key rate limits). */
  identify(req: Request): string | undefined {
    const bearer = parseBearer(req.headers.authorization);
    if (bearer.kind !== "token") return undefined;
    return this.provider.current().authenticate(bearer.token)?.id;
  }

  require(scope: Scope): RequestHandler {
    return (req, res, next) => {
      const bearer = parseBearer(req.headers.authorization);
      if (bearer.kind === "none") {
        if (scope === "read" && this.options.anonymousRead) {
          next();
          return;
        }
        unauthenticated(res, next, "this route needs a bearer token (Authorization: Bearer <token>)");
        return;
      }
      if (bearer.kind === "malformed") {
        unauthenticated(res, next, "the Authorization header is not 'Bearer <token>' with a well-formed token");
        return;
      }
      const record = this.provider.current().authenticate(bearer.token);
      if (record === undefined) {
        unauthenticated(res, next, "the bearer token is not known to this gateway (revoked or mistyped)");
        return;
      }
      res.locals.tokenId = record.id;
      if (!record.scopes.includes(scope)) {
        next(new GatewayError("forbidden", `token '${record.id}' lacks the '${scope}' scope (it has: ${record.scopes.join(", ")})`));
        return;
      }
      if (scope === "admin" && this.options.audit !== undefined) {
        this.options.audit
          .append({
            type: "admin.action",
            tokenId: record.id,
            client: req.ip,
            details: { method: req.method, path: req.path },
          })
          .then(
            () => {
              next();
            },
            (err: unknown) => {
              next(new GatewayError("unavailable", "the admin action could not be audited; refusing it", undefined, { cause: err }));
            },
          );
        return;
      }
      next();
    };
  }
}

function unauthenticated(res: Response, next: (err: unknown) => void, message: string): void {
  res.setHeader("WWW-Authenticate", WWW_AUTHENTICATE);
  next(new GatewayError("unauthenticated", message));
}
