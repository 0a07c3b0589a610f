import type { ArtifactRecord } from "./types";

/**
 * Every name the record's signatures signed, the record's first name first. Records written
 * before names were kept have neither `names` nor per-signature names: their one name is `name`.
 */
export function namesOf(record: ArtifactRecord): string[] {
  return [...new Set([record.name, ...(record.names ?? []), ...record.signatures.map((s) => s.name ?? record.name)])];
}
