import { promises as fsp } from "node:fs";
import * as path from "node:path";

/** Every regular file under dir, relative, sorted (what a data directory holds after a request). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}
