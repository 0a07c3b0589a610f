import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import * as path from "node:path";
import { GatewayError } from "../errors";
import { parseAllowlistFile, SOURCE_ID_PATTERN, type Allowlist } from "./allowlist";

/** The JSON of an allowlist file as read, edited as plain data so fields the operator wrote survive. */
type Json = Record<string, unknown>;

export type AddKeyOutcome = "added" | "added-with-new-source" | "already-present";

function isRecord(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Add a key entry to a source of an allowlist document (creating the source when new) and return
 * the new document. The input must already be a structurally valid allowlist; the key is matched
 * by id (entries without `keyId` are matched by loading, see callers). Pure: no I/O.
 */
export function addKeyEntry(
  doc: unknown,
  input: { sourceId: string; keyId: string; entry: Json; description?: string },
  existingKeyIds: (sourceId: string) => string[],
): { doc: Json; outcome: AddKeyOutcome } {
  if (!SOURCE_ID_PATTERN.test(input.sourceId)) {
    throw new GatewayError("usage", `source id '${input.sourceId}' is invalid: letters, digits, '.', '_', '-' (at most 128)`);
  }
  parseAllowlistFile(doc);
  if (!isRecord(doc) || !Array.isArray(doc.sources)) throw new GatewayError("invalid_allowlist", "allowlist has no sources array");
  const sources = doc.sources as unknown[];
  const index = sources.findIndex((s) => isRecord(s) && s.id === input.sourceId);
  if (index < 0) {
    const source: Json = {
      id: input.sourceId,
      description: input.description ?? `added by modelgate trust add`,
      keys: [input.entry],
      threshold: 1,
    };
    return { doc: { ...doc, sources: [...sources, source] }, outcome: "added-with-new-source" };
  }
  if (existingKeyIds(input.sourceId).includes(input.keyId)) return { doc, outcome: "already-present" };
  const source = sources[index] as Json;
  const keys = Array.isArray(source.keys) ? (source.keys as unknown[]) : [];
  const updated = sources.map((s, i) => (i === index ? { ...source, keys: [...keys, input.entry] } : s));
  return { doc: { ...doc, sources: updated }, outcome: "added" };
}

/** Key ids per source of a loaded allowlist. */
export function keyIdsBySource(allowlist: Allowlist): (sourceId: string) => string[] {
  return (id) => allowlist.sources.find((s) => s.id === id)?.keys.map((k) => k.keyId) ?? [];
}

/** Serialize as the repository formats allowlist.json: 2-space JSON and a final newline. */
export function formatAllowlistJson(doc: unknown): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * Replace a file atomically: write a temp file beside it, fsync, rename over, fsync the directory.
 * A crash leaves either the old or the new content, never a torn allowlist.
 */
export function writeFileAtomicSync(file: string, content: string, mode = 0o644): void {
  const dir = path.dirname(path.resolve(file));
  const temp = path.join(dir, `.${path.basename(file)}.${String(process.pid)}.${Date.now().toString(36)}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, "wx", mode);
    writeSync(fd, content);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, file);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temp, { force: true });
    throw new GatewayError("io_error", `cannot write ${file}: ${(err as Error).message}`, undefined, { cause: err });
  }
  try {
    const dfd = openSync(dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Directory fsync is not supported everywhere (e.g. some network filesystems); the rename stands.
  }
}
