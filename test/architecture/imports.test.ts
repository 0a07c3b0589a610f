import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";

/**
 * The import graph of src/ (README "Development > Layout"): no import circles anywhere, and the
 * layering the README states. Read from the sources by regex (static `import` / `export ... from`
 * at the start of a line, type-only ones included, side-effect imports, and dynamic `import()` /
 * `require()`): a circle of types still ties two modules together, and a lazy import still
 * loads the transport.
 */

const ROOT = join(__dirname, "..", "..");
const SRC = join(ROOT, "src");

/** Repo-relative, "/"-separated path: "src/formats/dispatch.ts". */
function repoPath(abs: string): string {
  return relative(ROOT, abs).split(sep).join("/");
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

const STATIC_FROM = /^[ \t]*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm;
const SIDE_EFFECT = /^[ \t]*import\s*["']([^"']+)["']/gm;
const DYNAMIC = /\b(?:import|require)\(\s*["']([^"']+)["']\s*\)/g;

/** The module specifiers one source file names. */
function specifiersOf(text: string): string[] {
  const out: string[] = [];
  for (const re of [STATIC_FROM, SIDE_EFFECT, DYNAMIC]) for (const m of text.matchAll(re)) if (m[1] !== undefined) out.push(m[1]);
  return out;
}

/** A relative specifier as the file it loads (repo path), or a bare one as its package name ("express", "node:fs"). */
function targetOf(fromAbs: string, spec: string): string {
  if (!spec.startsWith(".")) return spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] ?? spec);
  const base = join(dirname(fromAbs), spec);
  for (const candidate of [`${base}.ts`, join(base, "index.ts"), base]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return repoPath(candidate);
  }
  throw new Error(`${repoPath(fromAbs)}: cannot resolve ${spec}`);
}

const GRAPH = new Map<string, string[]>();
for (const file of sourceFiles(SRC)) {
  const targets = specifiersOf(readFileSync(file, "utf8")).map((spec) => targetOf(file, spec));
  GRAPH.set(repoPath(file), [...new Set(targets)]);
}

/** Every import circle, each once, as "a -> b -> a" (depth-first search over the source files). */
function circles(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const found = new Set<string>();
  const done = new Set<string>();
  const onPath: string[] = [];
  const visit = (node: string): void => {
    onPath.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      const at = onPath.indexOf(next);
      if (at >= 0) found.add([...onPath.slice(at), next].join(" -> "));
      else if (!done.has(next)) visit(next);
    }
    onPath.pop();
    done.add(node);
  };
  for (const node of graph.keys()) if (!done.has(node)) visit(node);
  return [...found];
}

/** A path of imports from `from` to a module `forbidden` accepts, or undefined when none exists. */
function pathTo(from: string, forbidden: (target: string) => boolean): string[] | undefined {
  const previous = new Map<string, string>();
  const queue = [from];
  const seen = new Set(queue);
  while (queue.length > 0) {
    const node = queue.shift() as string;
    for (const next of GRAPH.get(node) ?? []) {
      if (seen.has(next)) continue;
      seen.add(next);
      previous.set(next, node);
      if (forbidden(next)) {
        const path = [next];
        for (let p = previous.get(next); p !== undefined; p = previous.get(p)) path.unshift(p);
        return path;
      }
      if (GRAPH.has(next)) queue.push(next);
    }
  }
  return undefined;
}

const TRANSPORT = (target: string): boolean => target.startsWith("src/http/") || target === "express" || target === "multer";
const TRANSPORT_OR_STORE = (target: string): boolean => TRANSPORT(target) || target.startsWith("src/store/");

/**
 * The layering rules of README "Development > Layout": parsers and byte sources never reach the
 * transport or the store (directly or through another module); the use cases in src/gateway/ never
 * reach the transport. A folder that does not exist yet has no file to check.
 */
const RULES: readonly { layer: string; forbidden: (target: string) => boolean; what: string }[] = [
  { layer: "src/formats/", forbidden: TRANSPORT_OR_STORE, what: "src/http, express, multer or src/store" },
  { layer: "src/pickle/", forbidden: TRANSPORT_OR_STORE, what: "src/http, express, multer or src/store" },
  { layer: "src/bytes/", forbidden: TRANSPORT_OR_STORE, what: "src/http, express, multer or src/store" },
  { layer: "src/gateway/", forbidden: TRANSPORT, what: "src/http, express or multer" },
];

describe("the import graph of src/", () => {
  it("is read from the sources (the walker sees the files and their imports)", () => {
    expect(GRAPH.size).toBeGreaterThan(100);
    expect(GRAPH.get("src/formats/dispatch.ts")).toContain("src/formats/members.ts");
    expect(GRAPH.get("src/formats/models/torch.ts")).toContain("src/formats/members.ts");
    expect(GRAPH.get("src/http/app.ts")).toContain("express");
    // The circle finder finds a circle when there is one.
    expect(
      circles(
        new Map([
          ["a", ["b"]],
          ["b", ["c"]],
          ["c", ["a"]],
        ]),
      ),
    ).toEqual(["a -> b -> c -> a"]);
    expect(pathTo("src/http/app.ts", (t) => t === "express")).toEqual(["src/http/app.ts", "express"]);
  });

  it("has no import circles (type-only and lazy imports included)", () => {
    expect(circles(GRAPH)).toEqual([]);
  });

  it("models/ layouts never import the dispatcher (they recurse through the FormatContext)", () => {
    const offenders = [...GRAPH].filter(([file, targets]) => file.startsWith("src/formats/models/") && targets.includes("src/formats/dispatch.ts"));
    expect(offenders.map(([file]) => file)).toEqual([]);
  });

  it("codecs/ and containers/ never reach a model format or the dispatcher", () => {
    const aboveThem = (target: string): boolean => target.startsWith("src/formats/models/") || target === "src/formats/dispatch.ts";
    const violations = [...GRAPH.keys()]
      .filter((file) => file.startsWith("src/formats/codecs/") || file.startsWith("src/formats/containers/"))
      .map((file) => pathTo(file, aboveThem))
      .filter((path) => path !== undefined)
      .map((path) => path.join(" -> "));
    expect(violations).toEqual([]);
  });

  it.each(RULES.map((r) => [r.layer, r] as const))("%s never reaches the transport (nor the store, for parsers)", (layer, rule) => {
    const violations: string[] = [];
    for (const file of GRAPH.keys()) {
      if (!file.startsWith(layer)) continue;
      const path = pathTo(file, rule.forbidden);
      if (path !== undefined) violations.push(`${path.join(" -> ")} (${layer} must not import ${rule.what})`);
    }
    expect(violations).toEqual([]);
  });
});
