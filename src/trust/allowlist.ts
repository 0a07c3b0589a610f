import { readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { z } from "zod";
import { Sha256HexSchema } from "../digest";
import { GatewayError } from "../errors";
import { ContentPolicySchema, DEFAULT_CONTENT_POLICY, type ContentPolicy } from "../inspect/policy";
import { MAX_ALLOWLIST_BYTES, MAX_ALLOWLIST_KEYS_PER_SOURCE, MAX_ALLOWLIST_SOURCES, MAX_KEY_FILE_BYTES } from "../limits";
import { namePatternProblem } from "./glob";
import { keyIdOf, parsePublicKey } from "./keys";

export interface TrustedKey {
  keyId: string;
  publicKey: Uint8Array;
  /** First instant the key is valid (inclusive). */
  notBefore?: Date;
  /** First instant the key is no longer valid (exclusive upper bound). */
  notAfter?: Date;
  revoked: boolean;
  /** The key file's path as written in allowlist.json, or "inline". */
  origin: string;
}

export interface TrustedSource {
  id: string;
  description: string;
  keys: TrustedKey[];
  /** Name globs this source may publish; undefined means any name. */
  names?: string[];
  threshold: number;
  pickle: ContentPolicy;
}

export interface Allowlist {
  sources: TrustedSource[];
  /**
   * Key ids that some source marks `revoked: true`. Revocation is global: a key revoked by any
   * source counts for no source, even one that lists it unrevoked (see revokedKeyIdsOf).
   */
  revokedKeyIds: ReadonlySet<string>;
}

/** Every key id that any source marks revoked; computed once when the allowlist is built. */
export function revokedKeyIdsOf(sources: readonly TrustedSource[]): ReadonlySet<string> {
  const revoked = new Set<string>();
  for (const source of sources) for (const key of source.keys) if (key.revoked) revoked.add(key.keyId);
  return revoked;
}

export const SOURCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const Timestamp = z.iso.datetime({ offset: true });

export const AllowlistKeySchema = z.strictObject({
  /** Path of a public key file, relative to allowlist.json's directory. */
  path: z.string().min(1).max(1024).optional(),
  /** Inline public key: PEM SPKI or base64 of the raw 32 bytes. */
  publicKey: z.string().min(1).max(4096).optional(),
  /** Optional, for humans and as a check: must equal sha256 of the raw key. */
  keyId: Sha256HexSchema.optional(),
  notBefore: Timestamp.optional(),
  notAfter: Timestamp.optional(),
  revoked: z.boolean().default(false),
  comment: z.string().max(1024).optional(),
});
export type AllowlistKeyEntry = z.infer<typeof AllowlistKeySchema>;

export const AllowlistSourceSchema = z.strictObject({
  id: z.string().regex(SOURCE_ID_PATTERN, "letters, digits, '.', '_', '-' (at most 128, starting with a letter or digit)"),
  description: z.string().max(1024),
  keys: z.array(AllowlistKeySchema).min(1).max(MAX_ALLOWLIST_KEYS_PER_SOURCE),
  names: z
    .array(
      z.string().superRefine((pattern, ctx) => {
        const problem = namePatternProblem(pattern);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: `not a name glob: ${problem}` });
      }),
    )
    .min(1)
    .max(1000)
    .optional(),
  threshold: z.number().int().min(1).max(MAX_ALLOWLIST_KEYS_PER_SOURCE).default(1),
  pickle: ContentPolicySchema.optional(),
});
export type AllowlistSourceEntry = z.infer<typeof AllowlistSourceSchema>;

export const AllowlistFileSchema = z.strictObject({
  $comment: z.string().max(4096).optional(),
  version: z.literal(1),
  sources: z.array(AllowlistSourceSchema).max(MAX_ALLOWLIST_SOURCES),
});
/** allowlist.json as written (before key files are read). */
export type AllowlistFile = z.infer<typeof AllowlistFileSchema>;

interface Issue {
  path: string;
  message: string;
}

function jsonPath(parts: readonly PropertyKey[]): string {
  return parts.length === 0 ? "(root)" : parts.map((p) => (typeof p === "symbol" ? p.toString() : String(p))).join(".");
}

function fail(issues: Issue[]): never {
  const shown = issues.slice(0, 20).map((i) => `${i.path}: ${i.message}`);
  if (issues.length > shown.length) shown.push(`… and ${String(issues.length - shown.length)} more`);
  throw new GatewayError("invalid_allowlist", `allowlist is invalid: ${shown.join("; ")}`, { issues });
}

/** Validate the file's structure only (zod + cross-field rules), without reading key files. */
export function parseAllowlistFile(json: unknown): AllowlistFile {
  const parsed = AllowlistFileSchema.safeParse(json);
  if (!parsed.success) fail(parsed.error.issues.map((i) => ({ path: jsonPath(i.path), message: i.message })));
  const issues: Issue[] = [];
  const seen = new Set<string>();
  parsed.data.sources.forEach((s, si) => {
    if (seen.has(s.id)) issues.push({ path: `sources.${String(si)}.id`, message: `duplicate source id '${s.id}'` });
    seen.add(s.id);
    if (s.threshold > s.keys.length) {
      issues.push({
        path: `sources.${String(si)}.threshold`,
        message: `threshold ${String(s.threshold)} exceeds the ${String(s.keys.length)} key(s) of the source`,
      });
    }
    s.keys.forEach((k, ki) => {
      const at = `sources.${String(si)}.keys.${String(ki)}`;
      if ((k.path === undefined) === (k.publicKey === undefined)) {
        issues.push({ path: at, message: "exactly one of 'path' or 'publicKey' is required" });
      }
      if (k.notBefore !== undefined && k.notAfter !== undefined && Date.parse(k.notBefore) >= Date.parse(k.notAfter)) {
        issues.push({ path: `${at}.notAfter`, message: "notAfter must be later than notBefore" });
      }
    });
  });
  if (issues.length > 0) fail(issues);
  return parsed.data;
}

/** Resolve a key path: relative to baseDir and never outside it (the allowlist and its keys move as one unit). */
function resolveKeyPath(baseDir: string, keyPath: string): { file: string } | { problem: string } {
  if (path.isAbsolute(keyPath)) return { problem: "key paths are relative to the allowlist's directory; absolute paths are refused" };
  const base = path.resolve(baseDir);
  const file = path.resolve(base, keyPath);
  const rel = path.relative(base, file);
  if (rel === "" || rel === ".." || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    return { problem: "key path escapes the allowlist's directory" };
  }
  return { file };
}

function readKeyFile(file: string): string {
  const st = statSync(file);
  if (!st.isFile()) throw new Error("not a regular file");
  if (st.size > MAX_KEY_FILE_BYTES) throw new Error(`file is ${String(st.size)} bytes, a public key file is at most ${String(MAX_KEY_FILE_BYTES)}`);
  return readFileSync(file, "utf8");
}

/**
 * Validate allowlist.json content and load its keys (key files relative to baseDir, read
 * synchronously: this runs once at start or reload). Every problem is collected and reported
 * with its JSON path in one `invalid_allowlist` error; details.issues lists them.
 */
export function parseAllowlist(json: unknown, baseDir: string): Allowlist {
  const file = parseAllowlistFile(json);
  const issues: Issue[] = [];
  const sources: TrustedSource[] = file.sources.map((s, si) => {
    const keys: TrustedKey[] = [];
    const seenKeys = new Set<string>();
    s.keys.forEach((k, ki) => {
      const at = `sources.${String(si)}.keys.${String(ki)}`;
      let text: string;
      let origin: string;
      if (k.path !== undefined) {
        const resolved = resolveKeyPath(baseDir, k.path);
        if ("problem" in resolved) {
          issues.push({ path: `${at}.path`, message: resolved.problem });
          return;
        }
        try {
          text = readKeyFile(resolved.file);
        } catch (err) {
          issues.push({ path: `${at}.path`, message: `cannot read key file '${k.path}': ${(err as Error).message}` });
          return;
        }
        origin = k.path;
      } else {
        text = k.publicKey ?? "";
        origin = "inline";
      }
      let publicKey: Uint8Array;
      try {
        publicKey = parsePublicKey(text);
      } catch (err) {
        issues.push({ path: `${at}.${k.path !== undefined ? "path" : "publicKey"}`, message: (err as Error).message });
        return;
      }
      const keyId = keyIdOf(publicKey);
      if (k.keyId !== undefined && k.keyId !== keyId) {
        issues.push({ path: `${at}.keyId`, message: `declared key id ${k.keyId} does not match the key (sha256 ${keyId})` });
        return;
      }
      if (seenKeys.has(keyId)) {
        issues.push({ path: at, message: `key ${keyId} is listed twice in source '${s.id}'` });
        return;
      }
      seenKeys.add(keyId);
      keys.push({
        keyId,
        publicKey,
        revoked: k.revoked,
        origin,
        ...(k.notBefore !== undefined ? { notBefore: new Date(k.notBefore) } : {}),
        ...(k.notAfter !== undefined ? { notAfter: new Date(k.notAfter) } : {}),
      });
    });
    return {
      id: s.id,
      description: s.description,
      keys,
      threshold: s.threshold,
      pickle: s.pickle ?? { ...DEFAULT_CONTENT_POLICY, allowGlobals: [] },
      ...(s.names !== undefined ? { names: s.names } : {}),
    };
  });
  if (issues.length > 0) fail(issues);
  return { sources, revokedKeyIds: revokedKeyIdsOf(sources) };
}

/** Read and validate an allowlist file; key paths are relative to its directory. */
export function loadAllowlist(file: string): Allowlist {
  return parseAllowlist(readAllowlistJson(file), path.dirname(path.resolve(file)));
}

/** Read allowlist.json as JSON (size-capped); `io_error` if unreadable, `invalid_allowlist` if not JSON. */
export function readAllowlistJson(file: string): unknown {
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new GatewayError("io_error", `allowlist ${file} is not a regular file`);
    if (st.size > MAX_ALLOWLIST_BYTES) {
      throw new GatewayError("invalid_allowlist", `${file} is ${String(st.size)} bytes, more than the limit of ${String(MAX_ALLOWLIST_BYTES)}`);
    }
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError("io_error", `cannot read allowlist ${file}: ${(err as Error).message}`, undefined, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new GatewayError("invalid_allowlist", `${file} is not valid JSON: ${(err as Error).message}`, {
      issues: [{ path: "(root)", message: "not valid JSON" }],
    });
  }
}
