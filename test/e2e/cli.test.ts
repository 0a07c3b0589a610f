import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ensureBuilt, runBinary, startServeProcess, stopServeProcess, type BinaryRun, type ServeProcess } from "../support/binary";
import { makePublisher, writeAllowlist } from "../support/publisher";
import { fixturePath } from "./manifest";

/**
 * The real binary end to end: `modelgate serve` on an ephemeral port with a temp data dir and
 * allowlist; keygen -> trust add -> sign -> push -> pull -> scan -> audit verify, then the refusals.
 */

const ONE_LINE_ERROR = (cmd: string, code: string): RegExp => new RegExp(`^modelgate ${cmd}: ${code}: [^\\n]+\\n$`);
/** An inspection refusal: the one error line, then its rejecting findings indented, as `scan` prints them. */
const REFUSAL_WITH_FINDINGS = (cmd: string, code: string): RegExp => new RegExp(`^modelgate ${cmd}: ${code}: [^\\n]+\\n(  [^\\n]+\\n)+$`);

describe("modelgate binary end to end", () => {
  let dir: string;
  let dataDir: string;
  let server: ServeProcess;
  let url: string;
  const run = (...args: string[]): Promise<BinaryRun> => runBinary(dir, args, { MODELGATE_URL: url });

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(path.join(tmpdir(), "mg-e2e-cli-"));
    dataDir = path.join(dir, "data");
    // An allowlist made here (one tweetnacl key in source "ops"); `trust add` must extend it.
    writeAllowlist(path.join(dir, "allowlist.json"), [{ id: "ops", description: "another team", keys: [{ pub: makePublisher() }] }]);
    mkdirSync(path.join(dir, "models"));
    copyFileSync(fixturePath("torch/state_dict.pt"), path.join(dir, "models", "model.pt"));
    copyFileSync(fixturePath("joblib/malicious.joblib"), path.join(dir, "models", "evil.joblib"));
    copyFileSync(fixturePath("joblib/arrays.joblib.z"), path.join(dir, "models", "arrays.joblib.z"));
    copyFileSync(fixturePath("mlflow/sklearn_model.tar.gz"), path.join(dir, "models", "bundle.tar.gz"));

    const keygen = await runBinary(dir, ["keygen", "--out", "publisher"]);
    expect(keygen.status).toBe(0);
    const trust = await runBinary(dir, ["trust", "add", "--source", "research", "--pub", "publisher.pub", "--allowlist", "allowlist.json"]);
    expect([trust.status, trust.stderr]).toEqual([0, expect.any(String)]);
    // The server decompresses archive members under its data directory, never in os.tmpdir():
    // a TMPDIR that does not exist proves it (inspections would fail with io_error otherwise).
    server = await startServeProcess({ dataDir, allowlist: path.join(dir, "allowlist.json"), env: { TMPDIR: path.join(dir, "no-such-tmp") } });
    url = `http://127.0.0.1:${String(server.port)}`;
  }, 60_000);

  afterAll(async () => {
    await stopServeProcess(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it("sign, push, pull, scan --json and audit verify all succeed on a real torch file", async () => {
    const sign = await run("sign", "models/model.pt", "--key", "publisher.key", "--name", "research/model.pt");
    expect(sign.status).toBe(0);
    const digest = /^sha256:[0-9a-f]{64}$/m.exec(sign.stdout)?.[0];
    expect(digest).toBeDefined();

    const push = await run("push", "models/model.pt", "--sig", "models/model.pt.sig.json");
    expect([push.status, push.stdout]).toEqual([0, `${digest ?? ""}\n`]);
    expect(push.stderr).toContain("stored: research/model.pt");
    const again = await run("push", "models/model.pt", "--sig", "models/model.pt.sig.json");
    expect(again.status).toBe(0);
    expect(again.stderr).toContain("already stored");

    const pull = await run("pull", digest ?? "", "--out", "pulled.pt", "--allowlist", "allowlist.json");
    expect([pull.status, pull.stderr]).toEqual([0, expect.stringContaining("source research")]);
    expect(Buffer.compare(readFileSync(path.join(dir, "pulled.pt")), readFileSync(path.join(dir, "models", "model.pt")))).toBe(0);

    const scan = await run("scan", "--json", "pulled.pt");
    expect(scan.status).toBe(0);
    const doc = JSON.parse(scan.stdout) as { files: { path: string; verdict: string; format: string }[] };
    expect(doc.files).toEqual([expect.objectContaining({ path: "pulled.pt", verdict: "accept", format: "pytorch-zip" })]);

    const audit = await run("audit", "verify", path.join(dataDir, "audit.log"));
    expect([audit.status, audit.stderr]).toEqual([0, ""]);
  });

  it("pushes compressed artifacts whose inspection decompresses members (joblib zlib, gzip tar bundle)", async () => {
    for (const file of ["arrays.joblib.z", "bundle.tar.gz"]) {
      expect((await run("sign", `models/${file}`, "--key", "publisher.key", "--name", `research/${file}`)).status).toBe(0);
      const push = await run("push", `models/${file}`, "--sig", `models/${file}.sig.json`);
      // The bundle needs sklearn imports, which source research does not allow: refused as unsafe, not io_error.
      expect([file, push.status, push.stderr]).toEqual(
        file === "arrays.joblib.z"
          ? [file, 0, expect.stringContaining("stored: research/arrays.joblib.z")]
          : [file, 1, expect.stringMatching(REFUSAL_WITH_FINDINGS("push", "unsafe_artifact"))],
      );
    }
    expect(readdirSync(path.join(dataDir, "tmp"))).toEqual([]);
  });

  it("refuses a tampered file (digest_mismatch), an unknown key (untrusted_source) and a malicious pickle (unsafe_artifact), each exit 1", async () => {
    copyFileSync(path.join(dir, "models", "model.pt"), path.join(dir, "models", "tampered.pt"));
    appendFileSync(path.join(dir, "models", "tampered.pt"), "\0");
    const tampered = await run("push", "models/tampered.pt", "--sig", "models/model.pt.sig.json");
    expect(tampered.status).toBe(1);
    expect(tampered.stderr).toMatch(ONE_LINE_ERROR("push", "digest_mismatch"));

    expect((await run("keygen", "--out", "stranger")).status).toBe(0);
    expect((await run("sign", "models/model.pt", "--key", "stranger.key", "--name", "research/model.pt", "--out", "stranger.sig.json")).status).toBe(0);
    const unknown = await run("push", "models/model.pt", "--sig", "stranger.sig.json");
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(ONE_LINE_ERROR("push", "untrusted_source"));

    expect((await run("sign", "models/evil.joblib", "--key", "publisher.key", "--name", "research/evil.joblib")).status).toBe(0);
    const evil = await run("push", "models/evil.joblib", "--sig", "models/evil.joblib.sig.json");
    expect(evil.status).toBe(1);
    expect(evil.stderr).toMatch(REFUSAL_WITH_FINDINGS("push", "unsafe_artifact"));
    expect(evil.stderr).toContain("  imports not allowed: os.system\n");

    // Every refusal is in the hash-chained audit log, which still verifies.
    const lines = readFileSync(path.join(dataDir, "audit.log"), "utf8").trim().split("\n");
    const codes = lines
      .map((l) => JSON.parse(l) as { type?: string; codes?: string[] })
      .filter((e) => e.type === "upload.rejected")
      .map((e) => e.codes?.[0]);
    expect(codes.slice(-3)).toEqual(["digest_mismatch", "untrusted_source", "unsafe_artifact"]);
    const audit = await run("audit", "verify", path.join(dataDir, "audit.log"));
    expect(audit.status).toBe(0);
  });
  it("trust add while the server runs: the reloaded allowlist admits the once-unknown key", async () => {
    const auditLog = path.join(dataDir, "audit.log");
    const reloads = (): number =>
      readFileSync(auditLog, "utf8")
        .split("\n")
        .filter((l) => l.includes('"allowlist.reloaded"') && l.includes('"partners"')).length;
    expect(reloads()).toBe(0);
    const add = await run("trust", "add", "--source", "partners", "--pub", "stranger.pub", "--allowlist", "allowlist.json");
    expect(add.status).toBe(0);
    // The server watches the allowlist's directory; SIGHUP as well, in case the watch is slow.
    server.child.kill("SIGHUP");
    const deadline = Date.now() + 10_000;
    while (reloads() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(reloads()).toBeGreaterThan(0);

    const push = await run("push", "models/model.pt", "--sig", "stranger.sig.json");
    expect([push.status, push.stderr]).toEqual([0, expect.stringContaining("already stored")]);
    const audit = await run("audit", "verify", auditLog);
    expect(audit.status).toBe(0);
  });
  it("concurrent pushes (accepted and refused) keep the audit chain verifiable", async () => {
    const files = ["numpy/v1_f32.npy", "numpy/arrays.npz", "pickle/plain_p2.pkl", "torch/malicious_model.bin", "other/random.bin", "joblib/arrays.joblib.gz"];
    await Promise.all(
      files.map(async (f) => {
        const base = path.basename(f);
        copyFileSync(fixturePath(f), path.join(dir, "models", base));
        expect((await run("sign", `models/${base}`, "--key", "publisher.key", "--name", `research/${base}`)).status).toBe(0);
      }),
    );
    const before = readFileSync(path.join(dataDir, "audit.log"), "utf8").trim().split("\n").length;
    const pushes = await Promise.all(files.map((f) => run("push", `models/${path.basename(f)}`, "--sig", `models/${path.basename(f)}.sig.json`)));
    expect(pushes.map((p) => p.status)).toEqual([0, 0, 0, 1, 1, 0]);
    const after = readFileSync(path.join(dataDir, "audit.log"), "utf8").trim().split("\n").length;
    expect(after - before).toBe(files.length);
    const audit = await run("audit", "verify", path.join(dataDir, "audit.log"));
    expect([audit.status, audit.stderr]).toEqual([0, ""]);
  });
});

describe("modelgate binary with API tokens", () => {
  let dir: string;
  let dataDir: string;
  let server: ServeProcess | undefined;

  afterAll(async () => {
    await stopServeProcess(server);
    rmSync(dir, { recursive: true, force: true });
  });

  it("token create -> serve with the tokens file -> push and pull with MODELGATE_TOKEN, scopes enforced and audited", async () => {
    ensureBuilt();
    dir = mkdtempSync(path.join(tmpdir(), "mg-e2e-tokens-"));
    dataDir = path.join(dir, "data");
    const tokens = path.join(dir, "tokens.json");
    const publisher = await runBinary(dir, ["token", "create", "--id", "ci", "--scope", "publish", "--tokens", tokens]);
    const reader = await runBinary(dir, ["token", "create", "--id", "reader", "--scope", "read", "--tokens", tokens]);
    expect([publisher.status, reader.status]).toEqual([0, 0]);
    const ciToken = publisher.stdout.trim();
    const readToken = reader.stdout.trim();
    expect(ciToken).not.toBe(readToken);
    expect(readFileSync(tokens, "utf8")).not.toContain(ciToken);

    expect((await runBinary(dir, ["keygen", "--out", "publisher"])).status).toBe(0);
    expect((await runBinary(dir, ["trust", "add", "--source", "research", "--pub", "publisher.pub", "--allowlist", "allowlist.json"])).status).toBe(0);
    copyFileSync(fixturePath("safetensors/benign.safetensors"), path.join(dir, "w.safetensors"));
    expect((await runBinary(dir, ["sign", "w.safetensors", "--key", "publisher.key", "--name", "research/w.safetensors"])).status).toBe(0);

    server = await startServeProcess({ dataDir, allowlist: path.join(dir, "allowlist.json"), env: { MODELGATE_TOKENS_FILE: tokens } });
    const url = `http://127.0.0.1:${String(server.port)}`;
    const as = (token: string | undefined, ...args: string[]): Promise<BinaryRun> =>
      runBinary(dir, args, { MODELGATE_URL: url, ...(token !== undefined ? { MODELGATE_TOKEN: token } : {}) });

    const anonymous = await as(undefined, "push", "w.safetensors", "--sig", "w.safetensors.sig.json");
    expect([anonymous.status, anonymous.stderr]).toEqual([1, expect.stringMatching(ONE_LINE_ERROR("push", "unauthenticated"))]);
    const wrongScope = await as(readToken, "push", "w.safetensors", "--sig", "w.safetensors.sig.json");
    expect([wrongScope.status, wrongScope.stderr]).toEqual([1, expect.stringMatching(ONE_LINE_ERROR("push", "forbidden"))]);
    const push = await as(ciToken, "push", "w.safetensors", "--sig", "w.safetensors.sig.json");
    expect(push.status).toBe(0);
    const digest = push.stdout.trim();

    const pullNoRead = await as(ciToken, "pull", digest, "--out", "a.safetensors");
    expect([pullNoRead.status, pullNoRead.stderr]).toEqual([1, expect.stringMatching(ONE_LINE_ERROR("pull", "forbidden"))]);
    const pull = await as(readToken, "pull", digest, "--out", "b.safetensors", "--allowlist", "allowlist.json");
    expect(pull.status).toBe(0);
    expect(Buffer.compare(readFileSync(path.join(dir, "b.safetensors")), readFileSync(path.join(dir, "w.safetensors")))).toBe(0);

    const entries = readFileSync(path.join(dataDir, "audit.log"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type?: string; tokenId?: string; digest?: string });
    expect(entries.filter((e) => e.type === "upload.accepted")).toEqual([expect.objectContaining({ tokenId: "ci", digest })]);
    expect((await runBinary(dir, ["audit", "verify", path.join(dataDir, "audit.log")])).status).toBe(0);
  }, 60_000);
});
