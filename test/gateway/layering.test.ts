import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";

/**
 * The use cases live outside the transport: nothing under src/gateway imports express, multer
 * or anything under src/http, so the S3 store, the console and the CLI can call them as they are.
 */

const GATEWAY = path.join(__dirname, "..", "..", "src", "gateway");

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import|require\()\s*["']([^"']+)["']/g)].map((m) => m[1] ?? "");
}

describe("src/gateway", () => {
  const files = readdirSync(GATEWAY).filter((f) => f.endsWith(".ts"));

  it("holds the publish, fetch and reinspect use cases", () => {
    expect(files).toEqual(expect.arrayContaining(["publish.ts", "fetch.ts", "reinspect.ts"]));
  });

  it.each(files)("%s imports neither express, multer nor src/http", (file) => {
    const imports = importsOf(path.join(GATEWAY, file));
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((i) => i === "express" || i === "multer" || i.startsWith("express/") || /(^|\/)http(\/|$)/.test(i))).toEqual([]);
  });
});
