/**
 * The environment an MLflow bundle asks for, read as pip and conda read it, for one question:
 * does restoring it (`mlflow models serve --env-manager virtualenv|conda`, `mlflow.pyfunc`
 * with a restored env) install code from anywhere but a package index, by name? A requirement
 * that is a URL, a VCS checkout, a local path or wheel (the bundle's own `wheels/` included),
 * an editable install, or an option that adds an index or a find-links location makes pip run
 * or install code nobody reviewed by name; so does a conda channel given as a URL or path.
 * Pure: text and parsed YAML in, problems out.
 */

/** One requirement pip would not take from its index by name, and why. */
export interface RequirementProblem {
  /** The entry as written (bounded). */
  entry: string;
  why: string;
}

/** A `-r` / `-c` include: another requirements file pip reads, relative to the including one. */
export interface RequirementInclude {
  option: "-r" | "-c";
  path: string;
}

export interface RequirementCheck {
  problems: RequirementProblem[];
  includes: RequirementInclude[];
}

/** PEP 508 name with optional extras, then version specifiers, markers or per-line --hash options. */
const NAMED_REQUIREMENT = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\s*(?:\[[A-Za-z0-9._,\s-]*\])?\s*(?:[<>=!~;(]|--hash[=\s]|$)/;
/** Options that only shape how named packages are chosen from the index. */
const HARMLESS_OPTIONS = new Set([
  "--pre",
  "--prefer-binary",
  "--only-binary",
  "--no-binary",
  "--require-hashes",
  "--use-pep517",
  "--no-build-isolation",
  "--hash",
]);
/** Options that name another requirements file: followed, not refused. */
const INCLUDE_OPTIONS: Readonly<Record<string, "-r" | "-c">> = { "-r": "-r", "--requirement": "-r", "-c": "-c", "--constraint": "-c" };
/** Options that make pip look somewhere else than its configured index, or install a path. */
const SOURCE_OPTIONS = new Set(["-e", "--editable", "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--no-index"]);

const bounded = (s: string): string => (s.length > 200 ? `${s.slice(0, 200)}...` : s);

/** requirements.txt as pip reads it: `\` continues a line, `#` after whitespace starts a comment. */
export function requirementLines(text: string): string[] {
  const joined = text.replace(/\\\r?\n/g, "");
  return joined
    .split(/\r?\n/)
    .map((l) => l.replace(/(^|\s)#.*$/, "").trim())
    .filter((l) => l !== "");
}

/** Check pip requirement entries (lines of a requirements file, or a YAML list's strings). */
export function checkPipRequirements(entries: readonly string[]): RequirementCheck {
  const problems: RequirementProblem[] = [];
  const includes: RequirementInclude[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === "") continue;
    if (entry.startsWith("-")) {
      const m = /^(-{1,2}[A-Za-z0-9-]+)(?:[=\s]\s*(.*))?$/.exec(entry);
      const option = m?.[1] ?? entry;
      const value = (m?.[2] ?? "").trim();
      const include = INCLUDE_OPTIONS[option];
      if (include !== undefined) {
        const why = unsafeIncludePath(value);
        if (why !== undefined) problems.push({ entry: bounded(entry), why });
        else includes.push({ option: include, path: value });
      } else if (SOURCE_OPTIONS.has(option)) {
        problems.push({ entry: bounded(entry), why: `${option} makes pip install from another place than its index by name` });
      } else if (!HARMLESS_OPTIONS.has(option)) {
        problems.push({ entry: bounded(entry), why: `pip option ${option} is not one modelgate knows to be harmless` });
      }
      continue;
    }
    const why = directReference(entry);
    if (why !== undefined) problems.push({ entry: bounded(entry), why });
  }
  return { problems, includes };
}

/** Why a requirement is not a plain named one (undefined when it is). */
function directReference(entry: string): string | undefined {
  if (/^(git|hg|svn|bzr)\+/i.test(entry)) return "a version-control checkout (pip builds and installs it)";
  if (entry.includes("://") || /^file:/i.test(entry)) return "a URL (pip downloads and installs whatever it serves)";
  if (/\s@\s|^[^\s;]+@/.test(entry.split(";")[0] ?? entry)) return "a direct reference (name @ URL)";
  if (/^[./~\\]/.test(entry) || /\.(whl|zip|tar\.gz|tgz|tar\.bz2|tar)$/i.test(entry.split(/[\s;]/)[0] ?? entry)) {
    return "a local path or archive (pip installs code from the bundle or the host)";
  }
  if (!NAMED_REQUIREMENT.test(entry)) return "not a requirement by name that modelgate can read";
  return undefined;
}

/** An include must be a relative path inside the bundle (resolved by the caller). */
function unsafeIncludePath(value: string): string | undefined {
  if (value === "") return "an include option without a file";
  if (value.includes("://") || /^file:/i.test(value)) return "an include of a URL (pip fetches requirements from it)";
  if (value.startsWith("/") || value.startsWith("~") || value.split(/[/\\]/).includes("..")) return "an include of a file outside the bundle";
  return undefined;
}

/**
 * conda.yaml: `channels` must be names (not URLs or paths); string dependencies must not be URLs
 * or paths; a `pip:` list is checked as pip requirements.
 */
export function checkCondaEnvironment(env: unknown): RequirementCheck {
  const problems: RequirementProblem[] = [];
  const includes: RequirementInclude[] = [];
  if (typeof env !== "object" || env === null || Array.isArray(env)) return { problems, includes };
  const { channels, dependencies } = env as Record<string, unknown>;
  for (const channel of Array.isArray(channels) ? channels : []) {
    const text = String(channel);
    if (text.includes("://") || /^[./~]/.test(text) || /^file:/i.test(text))
      problems.push({ entry: bounded(text), why: "a conda channel given as a URL or path (conda installs whatever it serves)" });
  }
  for (const dep of Array.isArray(dependencies) ? dependencies : []) {
    if (typeof dep === "string") {
      if (dep.includes("://") || /^[./~]/.test(dep) || /^file:/i.test(dep))
        problems.push({ entry: bounded(dep), why: "a conda dependency given as a URL or path" });
      continue;
    }
    if (typeof dep === "object" && dep !== null && !Array.isArray(dep)) {
      const pip = (dep as Record<string, unknown>).pip;
      if (Array.isArray(pip)) {
        const inner = checkPipRequirements(pip.map((p) => String(p)));
        problems.push(...inner.problems);
        includes.push(...inner.includes);
      }
    }
  }
  return { problems, includes };
}

/** python_env.yaml: `build_dependencies` and `dependencies` are pip requirement lists. */
export function checkPythonEnv(env: unknown): RequirementCheck {
  if (typeof env !== "object" || env === null || Array.isArray(env)) return { problems: [], includes: [] };
  const { build_dependencies: build, dependencies } = env as Record<string, unknown>;
  const listOf = (v: unknown): unknown[] => (Array.isArray(v) ? (v as unknown[]) : []);
  const entries = [...listOf(build), ...listOf(dependencies)].map((e) => String(e));
  return checkPipRequirements(entries);
}
