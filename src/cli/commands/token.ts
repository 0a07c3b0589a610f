import { open, rm } from "node:fs/promises";
import * as path from "node:path";
import { z } from "zod";
import { generateToken, hashToken, readTokensFile, TOKEN_ID_PATTERN, writeTokensFileAtomic } from "../../auth/tokens";
import { SCOPES, type Scope } from "../../auth/types";
import { GatewayError, messageOf } from "../../errors";
import { parseCommandArgs } from "../args";
import type { CliIo, Command } from "../command";
import { COMMAND_HELP } from "./help";

const ScopeList = z
  .string()
  .transform((s) =>
    s
      .split(",")
      .map((x) => x.trim())
      .filter((x) => x !== ""),
  )
  .pipe(z.array(z.enum(SCOPES as [Scope, ...Scope[]])).min(1));

function tokensPath(flag: string | undefined, io: CliIo): string {
  const file = flag ?? io.env.MODELGATE_TOKENS_FILE;
  if (file === undefined || file === "") throw new GatewayError("usage", "no tokens file: pass --tokens <file> or set MODELGATE_TOKENS_FILE");
  return path.resolve(io.cwd, file);
}

/** One writer at a time: two concurrent `token create` must not lose each other's token. */
async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  let handle;
  try {
    handle = await open(lock, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new GatewayError("io_error", `${lock} exists: another token command is running (remove the file if it is stale)`);
    }
    throw new GatewayError("io_error", `cannot lock ${file}: ${messageOf(err)}`, undefined, { cause: err });
  }
  try {
    return await fn();
  } finally {
    await handle.close();
    await rm(lock, { force: true });
  }
}

export const tokenCommand: Command = {
  ...COMMAND_HELP.token,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, {
      id: { type: "string" },
      scope: { type: "string" },
      tokens: { type: "string" },
    });
    const [action, ...extra] = positionals;
    if (extra.length > 0) throw new GatewayError("usage", `unexpected arguments: ${extra.join(" ")}`);
    const file = tokensPath(values.tokens, io);

    if (action === "list") {
      const content = await readTokensFile(file, { missingOk: true });
      if (content.tokens.length === 0) io.stderr(`no tokens in ${file}\n`);
      for (const t of content.tokens) io.stdout(`${t.id}\t${t.scopes.join(",")}\t${t.createdAt}\n`);
      return 0;
    }

    if (action === "create" || action === "revoke") {
      const id = values.id;
      if (id === undefined || !TOKEN_ID_PATTERN.test(id)) {
        throw new GatewayError("usage", "--id is required: 1-64 characters of letters, digits, '.', '_' or '-'");
      }
      if (action === "revoke") {
        return withLock(file, async () => {
          const content = await readTokensFile(file);
          const kept = content.tokens.filter((t) => t.id !== id);
          if (kept.length === content.tokens.length) throw new GatewayError("not_found", `no token with id '${id}' in ${file}`);
          await writeTokensFileAtomic(file, { version: 1, tokens: kept });
          io.stderr(`revoked token '${id}' in ${file}; a running gateway reloads its tokens file on change or SIGHUP\n`);
          return 0;
        });
      }
      if (values.scope === undefined) throw new GatewayError("usage", `--scope is required (comma-separated: ${SCOPES.join(", ")})`);
      const scopes = ScopeList.safeParse(values.scope);
      if (!scopes.success) throw new GatewayError("usage", `--scope must list scopes among ${SCOPES.join(", ")}`);
      return withLock(file, async () => {
        const content = await readTokensFile(file, { missingOk: true });
        if (content.tokens.some((t) => t.id === id)) {
          throw new GatewayError("invalid_config", `a token with id '${id}' already exists in ${file}; revoke it first or pick another id`);
        }
        const token = generateToken();
        const record = { id, sha256: hashToken(token), scopes: [...new Set(scopes.data)], createdAt: new Date().toISOString() };
        await writeTokensFileAtomic(file, { version: 1, tokens: [...content.tokens, record] });
        io.stdout(`${token}\n`);
        io.stderr(`created token '${id}' (${record.scopes.join(",")}) in ${file}; it is shown only this once\n`);
        return 0;
      });
    }
    throw new GatewayError("usage", action === undefined ? "missing action: create, list or revoke" : `unknown action '${action}'`);
  },
};
