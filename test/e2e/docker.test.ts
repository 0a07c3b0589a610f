import { execFile, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { promises as fsp, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { BIN, ensureBuilt, ROOT } from "../support/binary";
import { waitForHttp } from "../support/net";

/**
 * The repository's Dockerfile, built and run as README.md ("Docker") says: a read-only /config
 * directory with allowlist.json, its keys and tokens.json; a published loopback port. Where no
 * Docker daemon answers (`docker info` fails: no CLI, no socket, no permission), the test prints
 * why it did not build anything and checks only that the daemon is indeed unreachable.
 */

const run = promisify(execFile);
const BUILD_TIMEOUT_MS = 15 * 60_000;

function docker(args: string[], timeoutMs = 120_000): Promise<{ stdout: string; stderr: string }> {
  return run("docker", args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
}

function cli(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], { cwd, env, timeout: 60_000 });
}

/** Why no daemon can be used here, or undefined when `docker info` answers. */
function dockerUnavailable(): { reason: string; status: number | null } | undefined {
  const info = spawnSync("docker", ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 30_000 });
  if (info.error !== undefined) return { reason: `docker CLI not usable (${info.error.message})`, status: null };
  if (info.status !== 0)
    return { reason: `no Docker daemon reachable (docker info: ${(info.stderr || info.stdout).trim().split("\n")[0] ?? ""})`, status: info.status };
  return undefined;
}

/** The README's section body under `### <title>`, up to the next heading of that level or higher. */
function readmeSection(title: string): string {
  const md = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const start = md.indexOf(`\n### ${title}\n`);
  if (start < 0) throw new Error(`README.md has no section ### ${title}`);
  const rest = md.slice(start + 1);
  const next = rest.slice(4).search(/\n#{1,3} /);
  return next < 0 ? rest : rest.slice(0, next + 4);
}

/** The Dockerfile's instructions of the runtime stage, continuation lines joined. */
function runtimeInstructions(): string[] {
  const text = readFileSync(path.join(ROOT, "Dockerfile"), "utf8").replace(/\\\n\s*/g, " ");
  const lines = text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
  const from = lines.findIndex((l) => / AS runtime$/.test(l));
  return lines.slice(from);
}

describe("Dockerfile and README agree (no daemon needed)", () => {
  it("the README's Docker section names the image's user, volume, entry point, health check and environment", () => {
    const docs = readmeSection("Docker");
    const runtime = runtimeInstructions();
    const env = runtime
      .filter((l) => l.startsWith("ENV "))
      .flatMap((l) => l.slice(4).trim().split(/\s+/))
      .filter((kv) => kv.includes("="));
    expect(env).toEqual(
      expect.arrayContaining([
        "HOST=0.0.0.0",
        "PORT=8080",
        "MODELGATE_DATA_DIR=/data",
        "MODELGATE_ALLOWLIST=/config/allowlist.json",
        "MODELGATE_TOKENS_FILE=/config/tokens.json",
      ]),
    );
    for (const kv of env.filter((e) => e !== "NODE_ENV=production")) expect(docs).toContain(kv);
    const instruction = (name: string): string => runtime.find((l) => l.startsWith(`${name} `)) ?? "";
    expect(instruction("USER")).toBe("USER node");
    expect(docs).toContain("`USER node`");
    expect(instruction("VOLUME")).toBe('VOLUME ["/data"]');
    expect(docs).toContain("`VOLUME /data`");
    expect(instruction("ENTRYPOINT")).toBe('ENTRYPOINT ["node", "bin/modelgate.js"]');
    expect(instruction("CMD")).toBe('CMD ["serve"]');
    expect(docs).toContain('`ENTRYPOINT ["node", "bin/modelgate.js"]`, `CMD ["serve"]`');
    expect(instruction("HEALTHCHECK")).toContain("/healthz");
    expect(docs).toContain("`HEALTHCHECK` on `GET /healthz`");
    // Nothing from the repository's configuration is baked in: /config is mounted.
    expect(runtime.filter((l) => /^COPY .*(allowlist|keys|tokens)/.test(l))).toEqual([]);
    expect(docs).toContain("/config:ro");
    const ignored = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n");
    expect(ignored).toEqual(expect.arrayContaining(["**/*.key", "**/*.pem", ".env", "data"]));
  });

  it("allowlist.json's $comment points at a README section that exists", () => {
    const allowlist = JSON.parse(readFileSync(path.join(ROOT, "allowlist.json"), "utf8")) as { $comment?: string };
    const m = /Format: README\.md, section ([^ ]+)/.exec(allowlist.$comment ?? "");
    expect(m?.[1]).toBe("allowlist.json");
    expect(readmeSection(m?.[1] ?? "")).toContain('"$comment"');
  });
});

describe("Docker image (README.md, Docker)", () => {
  it(
    "builds, runs as node with /config mounted, passes /healthz and /readyz, and round-trips a signed push and a fetch",
    async () => {
      const unavailable = dockerUnavailable();
      if (unavailable !== undefined) {
        process.stdout.write(`docker.test: image not built or run: ${unavailable.reason}\n`);
        // The one claim this branch makes: a daemon is really not reachable here.
        expect(unavailable.status).not.toBe(0);
        return;
      }
      ensureBuilt();
      const tag = `modelgate-test:${randomBytes(6).toString("hex")}`;
      const work = await fsp.mkdtemp(path.join(tmpdir(), "mg-docker-"));
      const config = path.join(work, "config");
      let container: string | undefined;
      try {
        await docker(["build", "--quiet", "-t", tag, ROOT], BUILD_TIMEOUT_MS);
        const inspected = JSON.parse((await docker(["image", "inspect", tag])).stdout) as {
          Config: { User: string; Healthcheck?: { Test: string[] }; Volumes?: Record<string, unknown>; Env: string[] };
        }[];
        const imageConfig = inspected[0]?.Config;
        expect(imageConfig?.User).toBe("node");
        expect(imageConfig?.Healthcheck?.Test.join(" ")).toContain("/healthz");
        expect(Object.keys(imageConfig?.Volumes ?? {})).toEqual(["/data"]);
        expect(imageConfig?.Env).toEqual(
          expect.arrayContaining(["HOST=0.0.0.0", "MODELGATE_ALLOWLIST=/config/allowlist.json", "MODELGATE_TOKENS_FILE=/config/tokens.json"]),
        );

        // /config as the README describes it: allowlist.json, keys/, tokens.json, readable by uid 1000.
        const env: NodeJS.ProcessEnv = { ...process.env, MODELGATE_LOG_LEVEL: "silent" };
        delete env.MODELGATE_URL;
        delete env.MODELGATE_TOKEN;
        delete env.MODELGATE_TOKENS_FILE;
        await fsp.mkdir(config);
        await cli(["keygen", "--out", "alice"], env, work);
        await cli(["trust", "add", "--source", "alice", "--pub", "alice.pub", "--allowlist", path.join(config, "allowlist.json")], env, work);
        const token = (
          await cli(["token", "create", "--id", "ci", "--scope", "publish,read", "--tokens", path.join(config, "tokens.json")], env, work)
        ).stdout.trim();
        // The file holds token hashes only; the container's user (node, uid 1000) must read it.
        await fsp.chmod(path.join(config, "tokens.json"), 0o644);

        container = (await docker(["run", "-d", "-p", "127.0.0.1::8080", "-v", `${config}:/config:ro`, tag])).stdout.trim();
        const mapped = (await docker(["port", container, "8080/tcp"])).stdout.trim().split("\n")[0] ?? "";
        const url = `http://127.0.0.1:${mapped.slice(mapped.lastIndexOf(":") + 1)}`;
        expect((await waitForHttp(`${url}/healthz`)).status).toBe(200);
        const ready = await fetch(`${url}/readyz`);
        expect(ready.status).toBe(200);
        // No token: a non-loopback gateway refuses to publish.
        expect((await fetch(`${url}/v1/artifacts`)).status).toBe(401);

        const artifact = path.join(work, "model.safetensors");
        await fsp.copyFile(path.join(ROOT, "test", "fixtures", "safetensors", "benign.safetensors"), artifact);
        await cli(["sign", artifact, "--key", "alice.key", "--name", "models/docker.safetensors"], env, work);
        const clientEnv = { ...env, MODELGATE_URL: url, MODELGATE_TOKEN: token };
        const digest = (await cli(["push", "model.safetensors", "--sig", "model.safetensors.sig.json"], clientEnv, work)).stdout.trim();
        const bytes = await fsp.readFile(artifact);
        expect(digest).toBe(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
        const fetched = await fetch(`${url}/v1/artifacts/${digest}`, { headers: { authorization: `Bearer ${token}` } });
        expect(fetched.status).toBe(200);
        expect(Buffer.from(await fetched.arrayBuffer()).equals(bytes)).toBe(true);
      } finally {
        if (container !== undefined) await docker(["rm", "-f", "-v", container]).catch(() => undefined);
        await docker(["rmi", "-f", tag]).catch(() => undefined);
        await fsp.rm(work, { recursive: true, force: true });
      }
    },
    BUILD_TIMEOUT_MS + 120_000,
  );
});
