import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { RequestHandler } from "express";
import { gatewayUrl } from "../../src/cli/gatewayClient";
import { inspectFile } from "../../src/formats/inspectFile";
import { createApp } from "../../src/http/app";
import { GatewayError } from "../../src/errors";
import { artifactBytes, listFiles, makeEnv, type TestEnv } from "../http/helpers";
import { makePublisher, sha256Hex, signFor } from "../support/publisher";
import { runCli } from "../support/cli";
import { listen } from "../support/net";

const publisher = makePublisher();
const stranger = makePublisher();

describe("modelgate push", () => {
  let env: TestEnv;
  let server: { url: string; close(): Promise<void> };
  let file: string;
  let bytes: Buffer;

  beforeAll(async () => {
    env = await makeEnv({ sources: [{ id: "pub", keys: [{ pub: publisher }] }] });
    server = await listen(env.app);
    bytes = artifactBytes("push me", 2 * 1024 * 1024);
    file = path.join(env.dir, "model.safetensors");
    await fsp.writeFile(file, bytes);
    await fsp.writeFile(path.join(env.dir, "good.sig.json"), signFor(publisher, bytes, "models/push"));
    await fsp.writeFile(path.join(env.dir, "stranger.sig.json"), signFor(stranger, bytes, "models/push"));
    await fsp.writeFile(path.join(env.dir, "other.sig.json"), signFor(publisher, artifactBytes("other"), "models/push"));
  });
  afterAll(async () => {
    await server.close();
    await env.cleanup();
  });

  it("uploads signature first, prints the digest, and reports an existing artifact", async () => {
    const first = await runCli(["push", "model.safetensors", "--sig", "good.sig.json", "--url", server.url], { cwd: env.dir });
    expect(first.code).toBe(0);
    expect(first.stdout).toBe(`sha256:${sha256Hex(bytes)}\n`);
    expect(first.stderr).toContain("stored");
    // --url falls back to env MODELGATE_URL
    const again = await runCli(["push", "model.safetensors", "--sig", "good.sig.json", "--name", "models/push"], {
      env: { MODELGATE_URL: server.url },
      cwd: env.dir,
    });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("already stored");
  });

  it("uses the raw PUT route by default and multipart POST with --multipart, with the same outcome", async () => {
    const methods: string[] = [];
    const spy: RequestHandler = (req, _res, next) => {
      methods.push(req.method);
      next();
    };
    const e = await makeEnv({ sources: [{ id: "pub", keys: [{ pub: publisher }] }] });
    const s = await listen(createApp({ ...e.deps, middlewares: [spy] }));
    try {
      await fsp.writeFile(path.join(e.dir, "m.bin"), bytes);
      await fsp.writeFile(path.join(e.dir, "m.sig.json"), signFor(publisher, bytes, "models/push"));
      const raw = await runCli(["push", "m.bin", "--sig", "m.sig.json", "--name", "models/push", "--url", s.url], { cwd: e.dir });
      expect(raw.code).toBe(0);
      expect(raw.stdout).toBe(`sha256:${sha256Hex(bytes)}\n`);
      expect(raw.stderr).toContain("stored");
      const multipart = await runCli(["push", "m.bin", "--sig", "m.sig.json", "--multipart", "--url", s.url], { cwd: e.dir });
      expect(multipart.code).toBe(0);
      expect(multipart.stderr).toContain("already stored");
      await fsp.writeFile(path.join(e.dir, "stranger.sig.json"), signFor(stranger, bytes, "models/push"));
      const refused = await runCli(["push", "m.bin", "--sig", "stranger.sig.json", "--multipart", "--url", s.url], { cwd: e.dir });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(": untrusted_source: ");
      expect(methods).toEqual(["PUT", "POST", "POST"]);
    } finally {
      await s.close();
      await e.cleanup();
    }
  });

  it("exits 1 with the server's code on rejection (unknown key, tampered file)", async () => {
    const untrusted = await runCli(["push", file, "--sig", "stranger.sig.json", "--url", server.url], { cwd: env.dir });
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toContain(": untrusted_source: ");
    const tampered = await runCli(["push", file, "--sig", "other.sig.json", "--url", server.url], { cwd: env.dir });
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toContain(": digest_mismatch: ");
    expect((await listFiles(env.dataDir)).filter((f) => f.startsWith("tmp/"))).toEqual([]);
  });

  it("exits 2 on usage and I/O problems", async () => {
    expect((await runCli(["push", file, "--url", server.url], { cwd: env.dir })).code).toBe(2);
    expect((await runCli(["push", "missing.bin", "--sig", "good.sig.json", "--url", server.url], { cwd: env.dir })).code).toBe(2);
    expect((await runCli(["push", file, "--sig", "good.sig.json", "--url", "ftp://x"], { cwd: env.dir })).code).toBe(2);
    const unreachable = await runCli(["push", file, "--sig", "good.sig.json", "--url", "http://127.0.0.1:1"], { cwd: env.dir });
    expect(unreachable.code).toBe(2);
    expect(unreachable.stderr).toContain("io_error");
  });

  it("sends MODELGATE_TOKEN as a Bearer token", async () => {
    const seen: (string | undefined)[] = [];
    const access = {
      require: (): RequestHandler => (req, _res, next) => {
        seen.push(req.get("authorization"));
        next(req.get("authorization") === "Bearer s3cret" ? undefined : new GatewayError("unauthenticated", "token required"));
      },
    };
    const guarded = await listen(createApp({ ...env.deps, access }));
    try {
      const denied = await runCli(["push", file, "--sig", "good.sig.json", "--url", guarded.url], { cwd: env.dir });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain("unauthenticated");
      const ok = await runCli(["push", file, "--sig", "good.sig.json", "--url", guarded.url], { env: { MODELGATE_TOKEN: "s3cret" }, cwd: env.dir });
      expect(ok.code).toBe(0);
      expect(seen).toEqual([undefined, "Bearer s3cret"]);
    } finally {
      await guarded.close();
    }
  });
  it("frames the body itself: Content-Length on both routes, multipart with --name and an awkward file name", async () => {
    const seen: { method: string; length: string | undefined; type: string | undefined }[] = [];
    const spy: RequestHandler = (req, _res, next) => {
      seen.push({ method: req.method, length: req.get("content-length"), type: req.get("content-type") });
      next();
    };
    const e = await makeEnv({ sources: [{ id: "pub", keys: [{ pub: publisher }] }] });
    const s = await listen(createApp({ ...e.deps, middlewares: [spy] }));
    try {
      const awkward = 'we"ird\nname.safetensors';
      await fsp.writeFile(path.join(e.dir, awkward), bytes);
      await fsp.writeFile(path.join(e.dir, "m.sig.json"), signFor(publisher, bytes, "models/push"));
      const multipart = await runCli(["push", awkward, "--sig", "m.sig.json", "--name", "models/push", "--multipart", "--url", s.url], { cwd: e.dir });
      expect(multipart.code).toBe(0);
      expect(multipart.stdout).toBe(`sha256:${sha256Hex(bytes)}\n`);
      expect(multipart.stderr).toContain("stored: models/push");
      const raw = await runCli(["push", awkward, "--sig", "m.sig.json", "--url", s.url], { cwd: e.dir });
      expect(raw.code).toBe(0);
      expect(raw.stderr).toContain("already stored");
      expect(seen.map((r) => r.method)).toEqual(["POST", "PUT"]);
      expect(seen[0]?.type).toMatch(/^multipart\/form-data; boundary=----modelgate-[0-9a-f]{32}$/);
      expect(Number(seen[0]?.length)).toBeGreaterThan(bytes.length);
      expect(seen[1]).toEqual({ method: "PUT", length: String(bytes.length), type: "application/octet-stream" });
    } finally {
      await s.close();
      await e.cleanup();
    }
  });

  it("takes the URL from --url, then a non-empty MODELGATE_URL, then the local default", () => {
    const io = (env: NodeJS.ProcessEnv) => ({ stdout: () => undefined, stderr: () => undefined, env, cwd: "/" });
    expect(gatewayUrl("http://a:1", io({ MODELGATE_URL: "http://b:2" })).toString()).toBe("http://a:1/");
    expect(gatewayUrl(undefined, io({ MODELGATE_URL: "http://b:2" })).toString()).toBe("http://b:2/");
    expect(gatewayUrl(undefined, io({ MODELGATE_URL: "" })).toString()).toBe("http://127.0.0.1:8080/");
    expect(gatewayUrl(undefined, io({})).toString()).toBe("http://127.0.0.1:8080/");
    expect(() => gatewayUrl("ftp://x", io({}))).toThrow(GatewayError);
  });

  it("a missing server is io_error (exit 2), not a crash", async () => {
    const gone = await listen(env.app);
    const url = gone.url;
    await gone.close();
    const res = await runCli(["push", file, "--sig", "good.sig.json", "--url", url], { cwd: env.dir });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("io_error: cannot reach http://127.0.0.1:");
  });
});

describe("modelgate push of a large untrusted file", () => {
  it("gets the server's early refusal code, not a broken pipe", async () => {
    const env = await makeEnv({ sources: [{ id: "pub", keys: [{ pub: publisher }] }] });
    const server = await listen(env.app);
    try {
      const big = path.join(env.dir, "big.bin");
      await fsp.writeFile(big, "");
      await fsp.truncate(big, 96 * 1024 * 1024); // sparse: cheap to create
      await fsp.writeFile(path.join(env.dir, "big.sig.json"), signFor(stranger, Buffer.from("x"), "models/big"));
      for (const extra of [[], ["--multipart"]]) {
        const res = await runCli(["push", "big.bin", "--sig", "big.sig.json", "--url", server.url, ...extra], { cwd: env.dir });
        expect(res.stderr).toContain(": untrusted_source: ");
        expect(res.code).toBe(1);
      }
      expect(await listFiles(env.dataDir)).toEqual([]);
    } finally {
      await server.close();
      await env.cleanup();
    }
  });
});

describe("modelgate push refused by content inspection", () => {
  const FIXTURES = path.join(__dirname, "..", "fixtures");
  let env: TestEnv;
  let server: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    env = await makeEnv({ sources: [{ id: "pub", keys: [{ pub: publisher }] }], inspect: inspectFile });
    server = await listen(env.app);
    await fsp.writeFile(path.join(env.dir, "x.bin"), "x");
    await fsp.writeFile(path.join(env.dir, "x.sig.json"), signFor(publisher, Buffer.from("x"), "models/x"));
  });
  afterAll(async () => {
    await server.close();
    await env.cleanup();
  });

  async function pushFixture(fixture: string, extra: string[]): Promise<{ push: { code: number; stderr: string }; scanLines: string[] }> {
    const bytes = await fsp.readFile(path.join(FIXTURES, fixture));
    const base = path.basename(fixture);
    await fsp.writeFile(path.join(env.dir, base), bytes);
    await fsp.writeFile(path.join(env.dir, `${base}.sig.json`), signFor(publisher, bytes, `models/${base}`));
    const push = await runCli(["push", base, "--sig", `${base}.sig.json`, "--url", server.url, ...extra], { cwd: env.dir });
    const scan = await runCli(["scan", base], { cwd: env.dir });
    expect(scan.code).toBe(1);
    // scan's lines for the rejecting findings and the refused imports (innocuous ones are scan-only).
    const scanLines = scan.stdout.split("\n").filter((l) => l.startsWith("  ") && !l.startsWith("  innocuous "));
    return { push, scanLines };
  }

  it.each([[[]], [["--multipart"]]])("prints the rejecting findings (code, member path, import) as scan does %j", async (extra) => {
    const { push, scanLines } = await pushFixture("torch/malicious_data_pkl.pt", extra);
    expect(push.code).toBe(1);
    expect(push.stderr).toContain(": unsafe_artifact: ");
    expect(push.stderr).toMatch(/^ {2}dangerous dangerous_global archive\/data\.pkl#pickle\S*@\d+: .*os\.system/m);
    expect(push.stderr).toContain("  imports not allowed: os.system\n");
    expect(scanLines.length).toBeGreaterThan(1);
    for (const line of scanLines) expect(push.stderr).toContain(`${line}\n`);
    expect(push.stderr).not.toContain("  innocuous ");
  });

  it("a malformed artifact's findings too", async () => {
    const { push, scanLines } = await pushFixture("torch/legacy_truncated.pt", []);
    expect(push.code).toBe(1);
    expect(push.stderr).toContain(": malformed_artifact: ");
    expect(push.stderr).toMatch(/^ {2}malformed malformed_container /m);
    for (const line of scanLines) expect(push.stderr).toContain(`${line}\n`);
  });

  it("prints a server's findings with control characters escaped", async () => {
    const hostile = await listen((_req, res) => {
      const finding = { code: "dangerous_global", severity: "dangerous", message: "imports \u001b[2Jx", location: "a\u001b]0;title\u0007/data.pkl", offset: 3 };
      res.writeHead(422, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({ error: { code: "unsafe_artifact", message: "rejected\u001b[31m", details: { inspection: { findings: [finding], imports: [] } } } }),
      );
    });
    try {
      const res = await runCli(["push", "x.bin", "--sig", "x.sig.json", "--url", hostile.url], { cwd: env.dir });
      expect(res.code).toBe(1);
      // eslint-disable-next-line no-control-regex -- no raw control character may reach the terminal
      expect(res.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
      expect(res.stderr).toContain("  dangerous dangerous_global a\\u001b]0;title\\u0007/data.pkl@3: imports \\u001b[2Jx\n");
    } finally {
      await hostile.close();
    }
  });
});
