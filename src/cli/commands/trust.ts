import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { GatewayError, type ErrorCode } from "../../errors";
import {
  addKeyEntry,
  formatAllowlistJson,
  keyIdOf,
  keyIdsBySource,
  parseAllowlist,
  parsePublicKey,
  publicKeyToPem,
  readAllowlistJson,
  writeFileAtomicSync,
  type Allowlist,
  type TrustedKey,
} from "../../trust";
import { parseCommandArgs } from "../args";
import type { CliIo, Command } from "../command";
import { COMMAND_HELP } from "./help";
import { MAX_KEY_FILE_BYTES } from "../../limits";

/** `--allowlist`, else env MODELGATE_ALLOWLIST, else ./allowlist.json; relative to the CLI's cwd. */
export function resolveAllowlistPath(flag: string | undefined, io: CliIo): string {
  const chosen = flag ?? io.env.MODELGATE_ALLOWLIST ?? "allowlist.json";
  if (chosen === "") throw new GatewayError("usage", "--allowlist must not be empty");
  return path.resolve(io.cwd, chosen);
}

/** Read a small text file (keys, envelopes) with a size cap, without trusting its stat size. */
export function readSmallFile(file: string, maxBytes: number, what: string, tooLarge: ErrorCode = "io_error"): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO given by mistake must not hang the CLI; regular files are unaffected.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw new GatewayError("io_error", `cannot read ${what} ${file}: ${(err as Error).message}`, undefined, { cause: err });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new GatewayError("io_error", `${what} ${file} is not a regular file`);
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > maxBytes) throw new GatewayError(tooLarge, `${what} ${file} is larger than ${String(maxBytes)} bytes`);
    }
    return buf.subarray(0, n);
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError("io_error", `cannot read ${what} ${file}: ${(err as Error).message}`, undefined, { cause: err });
  } finally {
    closeSync(fd);
  }
}

/** A key's state; `revokedElsewhere` is true when another source revokes it (revocation is global). */
export function keyState(key: TrustedKey, now: Date, revokedElsewhere = false): string {
  if (key.revoked) return "revoked";
  if (revokedElsewhere) return "revoked-elsewhere";
  if (key.notBefore && now.getTime() < key.notBefore.getTime()) return "not-yet-valid";
  if (key.notAfter && now.getTime() >= key.notAfter.getTime()) return "expired";
  return "active";
}

function isMissing(err: unknown): boolean {
  return err instanceof GatewayError && err.code === "io_error" && (err.cause as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

function addKey(args: string[], io: CliIo): number {
  const { values, positionals } = parseCommandArgs(args, {
    source: { type: "string" },
    pub: { type: "string" },
    allowlist: { type: "string" },
  });
  if (positionals.length > 0) throw new GatewayError("usage", `unexpected argument '${positionals[0] ?? ""}'`);
  if (values.source === undefined || values.pub === undefined) throw new GatewayError("usage", "trust add needs --source <id> and --pub <pubfile>");
  const file = resolveAllowlistPath(values.allowlist, io);
  const baseDir = path.dirname(file);

  let doc: unknown;
  let created = false;
  try {
    doc = readAllowlistJson(file);
  } catch (err) {
    if (!isMissing(err)) throw err;
    doc = { version: 1, sources: [] };
    created = true;
  }
  const current = parseAllowlist(doc, baseDir);

  const pubFile = path.resolve(io.cwd, values.pub);
  const publicKey = parsePublicKey(readSmallFile(pubFile, MAX_KEY_FILE_BYTES, "public key").toString("utf8"));
  const keyId = keyIdOf(publicKey);

  // Reference the key where it is when it already lives under the allowlist's directory;
  // otherwise copy it (normalised to PEM) into keys/ so the allowlist and its keys move together.
  const rel = path.relative(baseDir, pubFile);
  let keyPath: string;
  let copyTo: string | undefined;
  if (rel !== "" && rel !== ".." && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel)) {
    keyPath = rel.split(path.sep).join("/");
  } else {
    keyPath = `keys/${values.source}-${keyId.slice(0, 16)}.pub`;
    copyTo = path.join(baseDir, ...keyPath.split("/"));
  }

  const { doc: next, outcome } = addKeyEntry(doc, { sourceId: values.source, keyId, entry: { path: keyPath, keyId, revoked: false } }, keyIdsBySource(current));
  if (outcome === "already-present") {
    const existing = current.sources.find((s) => s.id === values.source)?.keys.find((k) => k.keyId === keyId);
    io.stdout(
      `key ${keyId} is already in source '${values.source}' (${existing ? keyState(existing, new Date(), current.revokedKeyIds.has(keyId)) : "present"}); nothing changed\n`,
    );
    return 0;
  }
  if (copyTo !== undefined) {
    try {
      mkdirSync(path.dirname(copyTo), { recursive: true });
      writeFileSync(copyTo, publicKeyToPem(publicKey), { flag: "wx", mode: 0o644 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // An identical key file left by an earlier run is fine; anything else is not ours to overwrite.
      if (e.code !== "EEXIST" || !sameKeyFile(copyTo, keyId)) {
        throw new GatewayError("io_error", `cannot write ${copyTo}: ${e.message}`, undefined, { cause: err });
      }
    }
  }
  // Validate the whole new document (it reads the key files) before it replaces the old one.
  parseAllowlist(next, baseDir);
  writeFileAtomicSync(file, formatAllowlistJson(next));
  const what = outcome === "added-with-new-source" ? `new source '${values.source}'` : `source '${values.source}'`;
  io.stdout(`added key ${keyId} (${keyPath}) to ${what} in ${created ? "new " : ""}${file}\n`);
  return 0;
}

function sameKeyFile(file: string, keyId: string): boolean {
  try {
    return keyIdOf(parsePublicKey(readSmallFile(file, MAX_KEY_FILE_BYTES, "public key").toString("utf8"))) === keyId;
  } catch {
    return false;
  }
}

export function formatAllowlist(allowlist: Allowlist, now: Date): string {
  if (allowlist.sources.length === 0) return "no trusted sources\n";
  const lines: string[] = [];
  for (const s of allowlist.sources) {
    lines.push(`${s.id}: ${s.description}`);
    lines.push(`  threshold ${String(s.threshold)}; names ${s.names ? s.names.join(", ") : "(any)"}`);
    for (const k of s.keys) {
      const window = [k.notBefore ? `from ${k.notBefore.toISOString()}` : "", k.notAfter ? `until ${k.notAfter.toISOString()}` : ""].filter(Boolean).join(" ");
      lines.push(`  ${k.keyId}  ${keyState(k, now, allowlist.revokedKeyIds.has(k.keyId)).padEnd(17)}  ${k.origin}${window ? `  ${window}` : ""}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function listKeys(args: string[], io: CliIo): number {
  const { values, positionals } = parseCommandArgs(args, { allowlist: { type: "string" } });
  if (positionals.length > 0) throw new GatewayError("usage", `unexpected argument '${positionals[0] ?? ""}'`);
  const file = resolveAllowlistPath(values.allowlist, io);
  io.stdout(formatAllowlist(parseAllowlist(readAllowlistJson(file), path.dirname(file)), new Date()));
  return 0;
}

export const trustCommand: Command = {
  ...COMMAND_HELP.trust,
  run(args, io) {
    const [sub, ...rest] = args;
    try {
      if (sub === "add") return Promise.resolve(addKey(rest, io));
      if (sub === "list") return Promise.resolve(listKeys(rest, io));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return Promise.reject(new GatewayError("usage", sub === undefined ? "trust needs a subcommand: add or list" : `unknown trust subcommand '${sub}'`));
  },
};
