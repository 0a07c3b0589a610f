import { randomBytes } from "node:crypto";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { promises as fsp } from "node:fs";
import { FileAuditLog, verifyAuditLog } from "../../src/audit/fileLog";
import { generateToken, hashToken, TokenAccessControl, TokenStore } from "../../src/auth/tokens";
import { createApp } from "../../src/http/app";
import { createUploadGate } from "../../src/http/middleware/concurrentUploads";
import { applyServerTimeouts } from "../../src/http/middleware/timeouts";
import type { Inspector } from "../../src/inspect/inspector";
import {
  acceptingInspector,
  allowlistJson,
  dangerousInspector,
  artifactBytes,
  listFiles,
  makeEnv,
  makePublisher,
  sha256Hex,
  signFor,
  type TestEnv,
} from "./helpers";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

async function withServer<T>(env: TestEnv, fn: (port: number) => Promise<T>): Promise<T> {
  const server = env.app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  try {
    return await fn((server.address() as AddressInfo).port);
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

function auditedOnce(env: TestEnv): Promise<void> {
  return new Promise<void>((resolve) => {
    const append = env.audit.append.bind(env.audit);
    env.audit.append = async (event) => {
      await append(event);
      resolve();
    };
  });
}

describe("red team: fetch and upload probes that held", () => {
  const pub = makePublisher();
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("multipart: a client that disconnects mid-artifact leaves nothing behind", async () => {
    const bytes = artifactBytes("cut", 4 * 1024 * 1024);
    const env2 = env;
    const audited = auditedOnce(env2);
    await withServer(env2, async (port) => {
      const boundary = "XyZ";
      const head = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="signature"\r\n\r\n${signFor(pub, bytes, "m")}\r\n--${boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      );
      const req = http.request({
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/v1/artifacts",
        headers: { "Content-Type": `multipart/form-data; boundary=${boundary}`, "Content-Length": String(head.length + bytes.length + 100) },
      });
      req.on("error", () => undefined);
      req.write(head);
      req.write(bytes.subarray(0, 1024 * 1024), () => {
        setTimeout(() => req.destroy(), 50);
      });
      await audited;
    });
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected" })]);
    expect(await listFiles(env.dataDir)).toEqual([]);
  });

  it("slowloris: an upload body that stalls is cut by the idle timeout and leaves nothing behind", async () => {
    const bytes = artifactBytes("slow", 2 * 1024 * 1024);
    const audited = auditedOnce(env);
    const server = env.app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    applyServerTimeouts(server, { requestTimeoutMs: 60_000, headersTimeoutMs: 1_000, keepAliveTimeoutMs: 1_000, idleTimeoutMs: 200 });
    try {
      const { port } = server.address() as AddressInfo;
      const closed = new Promise<void>((resolve) => {
        const req = http.request({
          host: "127.0.0.1",
          port,
          method: "PUT",
          path: "/v1/artifacts",
          headers: {
            "Content-Type": "application/octet-stream",
            "Content-Length": String(bytes.length),
            "Modelgate-Signature": b64(signFor(pub, bytes, "slow")),
          },
        });
        req.on("error", () => {
          resolve();
        });
        req.on("close", () => {
          resolve();
        });
        req.write(bytes.subarray(0, 64 * 1024)); // then nothing: the server must give up
      });
      await closed;
      await audited;
      expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected" })]);
      expect(await listFiles(env.dataDir)).toEqual([]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it("X-Forwarded-For does not change the client address (no trust proxy)", async () => {
    const res = await request(env.app)
      .get(`/v1/artifacts/sha256:${"0".repeat(64)}/metadata`)
      .set("X-Forwarded-For", "203.0.113.9");
    expect(res.status).toBe(404);
    expect(env.app.get("trust proxy")).toBeFalsy();
  });

  it.each([
    "sha256:..%2f..%2fetc",
    "sha256:" + "A".repeat(64),
    "sha256:" + "0".repeat(63) + "%00",
    "%2e%2e%2f" + "0".repeat(64),
    "sha256%3a" + "0".repeat(64),
    "sha256:" + "0".repeat(64) + "%0a",
    "sha256:" + "0".repeat(64) + " ",
    "sha256:%EF%BC%90" + "0".repeat(63),
    "..",
  ])("digest %s is refused or unknown, never a path", async (d) => {
    const res = await request(env.app).get("/v1/artifacts/" + d);
    expect([400, 404]).toContain(res.status);
  });

  it.each([
    ["bytes=0-", 206, "bytes 0-999/1000"],
    ["bytes=-0", 416, "bytes */1000"],
    ["bytes=0-99999999999999999", 206, "bytes 0-999/1000"],
    ["bytes=999999999999999-", 416, "bytes */1000"],
    ["bytes=0-1,2-3", 416, "bytes */1000"],
    ["bytes=-1001", 206, "bytes 0-999/1000"],
    ["bytes=1e3-", 416, "bytes */1000"],
    ["bytes=0x1-2", 416, "bytes */1000"],
    ["bytes=-", 416, "bytes */1000"],
    ["bytes=999-999", 206, "bytes 999-999/1000"],
    ["bytes=1000-", 416, "bytes */1000"],
    ["bytes=-9999999999999999999", 206, "bytes 0-999/1000"],
  ])("Range %s never leaks past the blob (%d)", async (range, status, contentRange) => {
    const bytes = artifactBytes("r", 1000);
    const up = await request(env.app)
      .put("/v1/artifacts")
      .set("Content-Type", "application/octet-stream")
      .set("Modelgate-Signature", b64(signFor(pub, bytes, "r")))
      .send(bytes);
    expect(up.status).toBe(201);
    const res = await request(env.app)
      .get(`/v1/artifacts/sha256:${sha256Hex(bytes)}`)
      .set("Range", range)
      .buffer(true)
      .parse((resp, cb) => {
        const chunks: Buffer[] = [];
        resp.on("data", (c: Buffer) => chunks.push(c));
        resp.on("end", () => {
          cb(null, Buffer.concat(chunks));
        });
      });
    expect(res.status).toBe(status);
    expect(res.headers["content-range"]).toBe(contentRange);
    if (status === 206) {
      const m = /^bytes (\d+)-(\d+)\//.exec(contentRange);
      expect((res.body as Buffer).equals(bytes.subarray(Number(m?.[1]), Number(m?.[2]) + 1))).toBe(true);
    }
  });
});

describe("red team: the allowlist changes while an upload is inspected", () => {
  const pub = makePublisher();
  const put = (env: TestEnv, bytes: Buffer, name: string) =>
    request(env.app)
      .put("/v1/artifacts")
      .set("Content-Type", "application/octet-stream")
      .set("Modelgate-Signature", b64(signFor(pub, bytes, name)))
      .send(bytes);

  /** An accepting inspector that first runs `during` (once), recording the policies it saw. */
  function envWith(during: (env: TestEnv) => Promise<void>): Promise<{ env: TestEnv; policies: unknown[] }> {
    const policies: unknown[] = [];
    let ran = false;
    let self: TestEnv | undefined;
    const inspect: Inspector = async (p, o) => {
      policies.push(o.policy);
      if (!ran && self) {
        ran = true;
        await during(self);
      }
      return acceptingInspector(p, o);
    };
    return makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }], inspect }).then((env) => {
      self = env;
      return { env, policies };
    });
  }

  const reloadWith = async (env: TestEnv, text: string): Promise<void> => {
    await fsp.writeFile(env.allowlistPath, text);
    expect(await env.holder.reload()).toBe(true);
  };

  it("a key revoked during inspection: the upload is refused key_revoked and nothing is stored", async () => {
    const { env } = await envWith((e) => reloadWith(e, allowlistJson([{ id: "acme", keys: [{ pub, revoked: true }] }])));
    try {
      const res = await put(env, artifactBytes("race"), "race");
      expect(res).toFailWithCode("key_revoked", 403);
      expect(await listFiles(env.dataDir)).toEqual([]);
      expect(env.audit.events.filter((e) => e.type.startsWith("upload."))).toEqual([
        expect.objectContaining({ type: "upload.rejected", codes: ["key_revoked"] }),
      ]);
    } finally {
      await env.cleanup();
    }
  });

  it("a source removed during inspection: untrusted_source, nothing stored", async () => {
    const other = makePublisher();
    const { env } = await envWith((e) => reloadWith(e, allowlistJson([{ id: "other", keys: [{ pub: other }] }])));
    try {
      const res = await put(env, artifactBytes("gone"), "gone");
      expect(res).toFailWithCode("untrusted_source");
      expect(await listFiles(env.dataDir)).toEqual([]);
    } finally {
      await env.cleanup();
    }
  });

  it("a pickle policy changed during inspection: the artifact is inspected again under the new one", async () => {
    const stricter = JSON.parse(allowlistJson([{ id: "acme", keys: [{ pub }] }])) as { sources: Record<string, unknown>[] };
    const first = stricter.sources[0];
    if (first === undefined) throw new Error("no source");
    first.pickle = { allowGlobals: ["collections.OrderedDict"] };
    const { env, policies } = await envWith((e) => reloadWith(e, JSON.stringify(stricter)));
    try {
      const res = await put(env, artifactBytes("policy"), "policy");
      expect(res.status).toBe(201);
      expect(policies).toHaveLength(2);
      expect(policies[1]).toEqual(expect.objectContaining({ allowGlobals: ["collections.OrderedDict"] }));
    } finally {
      await env.cleanup();
    }
  });

  it("a key revoked while the accepted entry is audited: refused before promotion, audited as rejected", async () => {
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
    try {
      const append = env.audit.append.bind(env.audit);
      env.audit.append = async (event) => {
        await append(event);
        if (event.type === "upload.accepted") await reloadWith(env, allowlistJson([{ id: "acme", keys: [{ pub, revoked: true }] }]));
      };
      const res = await put(env, artifactBytes("late"), "late");
      expect(res).toFailWithCode("key_revoked");
      expect(await listFiles(env.dataDir)).toEqual([]);
      expect(env.audit.events.filter((e) => e.type.startsWith("upload.")).map((e) => e.type)).toEqual(["upload.accepted", "upload.rejected"]);
    } finally {
      await env.cleanup();
    }
  });

  it("an unrelated reload during inspection does not re-inspect and the upload is stored", async () => {
    const other = makePublisher();
    const { env, policies } = await envWith((e) =>
      reloadWith(
        e,
        allowlistJson([
          { id: "acme", keys: [{ pub }] },
          { id: "other", keys: [{ pub: other }] },
        ]),
      ),
    );
    try {
      const res = await put(env, artifactBytes("calm"), "calm");
      expect(res.status).toBe(201);
      expect(policies).toHaveLength(1);
    } finally {
      await env.cleanup();
    }
  });
});

describe("red team: malformed multipart leaves nothing behind", () => {
  const pub = makePublisher();
  const stranger = makePublisher();
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  const B = "rtB0undary";
  const field = (name: string, value: string): string => `--${B}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const file = (name: string, bytes: Buffer): Buffer =>
    Buffer.concat([
      Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="${name}"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`),
      bytes,
      Buffer.from("\r\n"),
    ]);
  const end = `--${B}--\r\n`;
  const post = (body: Buffer) => request(env.app).post("/v1/artifacts").set("Content-Type", `multipart/form-data; boundary=${B}`).send(body);
  const codeOf = (res: { body: unknown }): string | undefined => (res.body as { error?: { code?: string } }).error?.code;

  const bytes = artifactBytes("mp");
  it.each<[string, () => Buffer, string]>([
    [
      "artifact twice",
      () => Buffer.concat([Buffer.from(field("signature", signFor(pub, bytes, "mp"))), file("artifact", bytes), file("artifact", bytes), Buffer.from(end)]),
      "bad_request",
    ],
    [
      "signature after the artifact, by an unknown key",
      () => Buffer.concat([file("artifact", bytes), Buffer.from(field("signature", signFor(stranger, bytes, "mp"))), Buffer.from(end)]),
      "untrusted_source",
    ],
    [
      "signature twice (field and file)",
      () =>
        Buffer.concat([
          Buffer.from(field("signature", signFor(pub, bytes, "mp"))),
          file("signature", Buffer.from(signFor(pub, bytes, "mp"))),
          file("artifact", bytes),
          Buffer.from(end),
        ]),
      "bad_request",
    ],
    ["no closing boundary", () => Buffer.concat([Buffer.from(field("signature", signFor(pub, bytes, "mp"))), file("artifact", bytes)]), "bad_request"],
    [
      "a name field that differs from the signed name",
      () =>
        Buffer.concat([
          Buffer.from(field("signature", signFor(pub, bytes, "mp"))),
          Buffer.from(field("name", 'mp\n{"type":"upload.accepted"}')),
          file("artifact", bytes),
          Buffer.from(end),
        ]),
      "invalid_name",
    ],
    [
      "an unexpected file part",
      () => Buffer.concat([Buffer.from(field("signature", signFor(pub, bytes, "mp"))), file("artifact", bytes), file("../../evil", bytes), Buffer.from(end)]),
      "bad_request",
    ],
  ])("%s", async (_label, build, code) => {
    const res = await post(build());
    expect(codeOf(res)).toBe(code);
    expect(await listFiles(env.dataDir)).toEqual([]);
    expect(env.audit.events.map((e) => e.type)).toEqual(["upload.rejected"]);
  });
});

describe("red team: threshold and key id spelling tricks", () => {
  const k1 = makePublisher();
  const k2 = makePublisher();
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({
      sources: [
        { id: "two", keys: [{ pub: k1 }, { pub: k2 }], threshold: 2 },
        { id: "also", keys: [{ pub: k1, revoked: true }] },
      ],
    });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it("one key's signature repeated under other key id spellings does not meet a threshold of 2", async () => {
    const bytes = artifactBytes("thr");
    const env1 = JSON.parse(signFor(k2, bytes, "thr")) as { payloadType: string; payload: string; signatures: { keyid: string; sig: string }[] };
    const sig = env1.signatures[0];
    if (sig === undefined) throw new Error("no signature");
    env1.signatures.push({ keyid: sig.keyid.toUpperCase(), sig: sig.sig }, { keyid: `sha256:${sig.keyid}`, sig: sig.sig }, { keyid: sig.keyid, sig: sig.sig });
    const res = await request(env.app)
      .put("/v1/artifacts")
      .set("Content-Type", "application/octet-stream")
      .set("Modelgate-Signature", b64(JSON.stringify(env1)))
      .send(bytes);
    const error = (res.body as { error: { code: string; details: { reasons: unknown[] } } }).error;
    // k2 (unrevoked, only in "two"): "two" saw one distinct key.
    expect(error.code).toBe("threshold_not_met");
    expect(error.details.reasons).toContainEqual(expect.objectContaining({ code: "threshold_not_met", source: "two" }));
    expect(await listFiles(env.dataDir)).toEqual([]);
  });

  it("a key id with whitespace is a malformed envelope, not an unknown key", async () => {
    const bytes = artifactBytes("ws");
    const env1 = JSON.parse(signFor(k1, bytes, "ws")) as { signatures: { keyid: string; sig: string }[] };
    const sig = env1.signatures[0];
    if (sig === undefined) throw new Error("no signature");
    env1.signatures.push({ keyid: ` ${sig.keyid}`, sig: sig.sig });
    const res = await request(env.app)
      .put("/v1/artifacts")
      .set("Content-Type", "application/octet-stream")
      .set("Modelgate-Signature", b64(JSON.stringify(env1)))
      .send(bytes);
    expect(res).toFailWithCode("malformed_signature");
  });

  it("a key revoked in one source counts for no source: the threshold source listing it unrevoked is not met", async () => {
    const bytes = artifactBytes("both");
    const one = JSON.parse(signFor(k1, bytes, "both")) as { signatures: { keyid: string; sig: string }[] };
    const two = JSON.parse(signFor(k2, bytes, "both")) as { signatures: { keyid: string; sig: string }[] };
    one.signatures.push(...two.signatures);
    const res = await request(env.app)
      .put("/v1/artifacts")
      .set("Content-Type", "application/octet-stream")
      .set("Modelgate-Signature", b64(JSON.stringify(one)))
      .send(bytes);
    expect(res.status).toBe(403);
    const error = (res.body as { error: { code: string; details: { reasons: unknown[] } } }).error;
    expect(error.code).toBe("key_revoked");
    expect(error.details.reasons).toContainEqual(expect.objectContaining({ code: "key_revoked", source: "two" }));
    expect(await listFiles(env.dataDir)).toEqual([]);
  });
});

describe("red team: concurrent uploads of one digest, one refused by inspection", () => {
  it("the refused one neither removes nor adds to the accepted one's blob and record", async () => {
    const lax = makePublisher();
    const strict = makePublisher();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let arrived = 0;
    let bothArrivedNow: () => void = () => undefined;
    const bothArrived = new Promise<void>((resolve) => {
      bothArrivedNow = resolve;
    });
    const inspect: Inspector = async (p, o) => {
      arrived += 1;
      if (arrived === 2) bothArrivedNow();
      await gate;
      return o.policy.allowGlobals.includes("strict.Marker") ? dangerousInspector(p, o) : acceptingInspector(p, o);
    };
    const env = await makeEnv({
      sources: [
        { id: "lax", keys: [{ pub: lax }] },
        { id: "strict", keys: [{ pub: strict }] },
      ],
      inspect,
    });
    try {
      const text = JSON.parse(await fsp.readFile(env.allowlistPath, "utf8")) as { sources: Record<string, unknown>[] };
      const strictSource = text.sources[1];
      if (strictSource === undefined) throw new Error("no source");
      strictSource.pickle = { allowGlobals: ["strict.Marker"] };
      await fsp.writeFile(env.allowlistPath, JSON.stringify(text));
      expect(await env.holder.reload()).toBe(true);

      const bytes = artifactBytes("both-ways");
      const put = (pub: typeof lax, name: string) =>
        request(env.app)
          .put("/v1/artifacts")
          .set("Content-Type", "application/octet-stream")
          .set("Modelgate-Signature", b64(signFor(pub, bytes, name)))
          .send(bytes)
          .then((r) => r);
      const a = put(lax, "lax/m");
      const b = put(strict, "strict/m");
      await bothArrived;
      release();
      const [ra, rb] = await Promise.all([a, b]);
      expect(ra.status).toBe(201);
      expect(rb).toFailWithCode("unsafe_artifact");
      const hex = sha256Hex(bytes);
      expect(await listFiles(env.dataDir)).toEqual([`blobs/sha256/${hex.slice(0, 2)}/${hex}`, `blobs/sha256/${hex.slice(0, 2)}/${hex}.json`]);
      const meta = await request(env.app).get(`/v1/artifacts/sha256:${hex}/metadata`);
      expect((meta.body as { signatures: { source: string }[] }).signatures.map((x) => x.source)).toEqual(["lax"]);
      const got = await request(env.app).get(`/v1/artifacts/sha256:${hex}`);
      expect(got.status).toBe(200);
    } finally {
      await env.cleanup();
    }
  });
});

describe("red team: a blob left without a record", () => {
  it("is replaced by the verified bytes of the next identical upload, not kept as it is", async () => {
    const pub = makePublisher();
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
    try {
      const bytes = artifactBytes("orphan", 1000);
      const hex = sha256Hex(bytes);
      const blob = env.store.blobPath(hex);
      await fsp.mkdir(path.dirname(blob), { recursive: true });
      await fsp.writeFile(blob, Buffer.alloc(1000, 0x41)); // same size, other bytes, no record
      const up = await request(env.app)
        .put("/v1/artifacts")
        .set("Content-Type", "application/octet-stream")
        .set("Modelgate-Signature", b64(signFor(pub, bytes, "orphan")))
        .send(bytes);
      expect(up.status).toBe(200); // the blob existed: completed, not created
      expect((await fsp.readFile(blob)).equals(bytes)).toBe(true);
      const part = await request(env.app)
        .get(`/v1/artifacts/sha256:${hex}`)
        .set("Range", "bytes=0-5")
        .buffer(true)
        .parse((resp, cb) => {
          const chunks: Buffer[] = [];
          resp.on("data", (c: Buffer) => chunks.push(c));
          resp.on("end", () => {
            cb(null, Buffer.concat(chunks));
          });
        });
      expect(part.status).toBe(206);
      expect((part.body as Buffer).equals(bytes.subarray(0, 6))).toBe(true);
    } finally {
      await env.cleanup();
    }
  });
});

describe("red team: an unexpected error after the body is received", () => {
  it.each(["POST", "PUT"] as const)("%s: is a 500 internal without its message, not a 400 'malformed multipart body'", async (method) => {
    const pub = makePublisher();
    const crashing: Inspector = () => Promise.reject(new TypeError("Cannot read properties of undefined (reading '/srv/modelgate/secret')"));
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }], inspect: crashing });
    try {
      const bytes = artifactBytes("crash");
      const res =
        method === "POST"
          ? await request(env.app)
              .post("/v1/artifacts")
              .field("signature", signFor(pub, bytes, "crash"))
              .attach("artifact", bytes, "m.bin")
          : await request(env.app)
              .put("/v1/artifacts")
              .set("Content-Type", "application/octet-stream")
              .set("Modelgate-Signature", b64(signFor(pub, bytes, "crash")))
              .send(bytes);
      expect(res).toFailWithCode("internal", 500);
      expect(JSON.stringify(res.body)).not.toContain("/srv/modelgate");
      expect(await listFiles(env.dataDir)).toEqual([]);
      expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([["upload.rejected", ["internal"]]]);
    } finally {
      await env.cleanup();
    }
  });
});

describe("red team: audit entries carry attacker-chosen names", () => {
  it("a rejected upload's name with newlines, a forged entry and U+2028 stays one line and the chain verifies", async () => {
    const pub = makePublisher();
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
    const file = path.join(env.dir, "audit.log");
    const log = await FileAuditLog.open(file);
    const app = createApp({ ...env.deps, audit: log });
    try {
      const bytes = artifactBytes("inject");
      const forged = `x\n{"seq":2,"time":"2026-01-01T00:00:00.000Z","prev":"${"0".repeat(64)}","type":"upload.accepted"}\r\u2028\u001b[2J`;
      const res = await request(app)
        .post("/v1/artifacts")
        .field("signature", signFor(pub, bytes, "inject"))
        .field("name", forged)
        .attach("artifact", bytes, "m.bin");
      expect(res).toFailWithCode("invalid_name");
      await log.close();
      const lines = (await fsp.readFile(file, "utf8")).split("\n").filter((l) => l !== "");
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? "")).toEqual(expect.objectContaining({ type: "upload.rejected", name: forged }));
      expect(await verifyAuditLog(file)).toEqual(expect.objectContaining({ ok: true, count: 1 }));
    } finally {
      await env.cleanup();
    }
  });
});

describe("red team: a Range spanning the whole blob", () => {
  it.each(["bytes=0-", "bytes=-99999999", "bytes=0-99999999"])(
    "%s on a corrupted blob is cut before its last byte and quarantined, like a full GET",
    async (range) => {
      const pub = makePublisher();
      const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
      try {
        const bytes = randomBytes(3 * 1024 * 1024 + 5);
        const up = await request(env.app)
          .put("/v1/artifacts")
          .set("Content-Type", "application/octet-stream")
          .set("Modelgate-Signature", b64(signFor(pub, bytes, "whole")))
          .send(bytes);
        expect(up.status).toBe(201);
        const hex = sha256Hex(bytes);
        const corrupted = Buffer.from(bytes);
        corrupted[0] = (corrupted[0] ?? 0) ^ 0x01;
        await fsp.writeFile(env.store.blobPath(hex), corrupted);
        const audited = auditedOnce(env);
        const got = await withServer(
          env,
          (port) =>
            new Promise<{ status: number; received: number; complete: boolean }>((resolve) => {
              let received = 0;
              let status = 0;
              const req = http.get({ host: "127.0.0.1", port, path: `/v1/artifacts/sha256:${hex}`, headers: { Range: range } }, (res) => {
                status = res.statusCode ?? 0;
                res.on("data", (c: Buffer) => (received += c.length));
                res.on("end", () => {
                  resolve({ status, received, complete: res.complete });
                });
                res.on("error", () => {
                  resolve({ status, received, complete: false });
                });
                res.on("aborted", () => {
                  resolve({ status, received, complete: false });
                });
              });
              req.on("error", () => {
                resolve({ status, received, complete: false });
              });
            }),
        );
        expect(got.status).toBe(206);
        expect(got.complete).toBe(false);
        expect(got.received).toBeLessThan(bytes.length);
        await audited;
        expect(await env.store.stat(hex)).toBeUndefined();
      } finally {
        await env.cleanup();
      }
    },
  );
});

describe("red team: re-serialized copies of a public envelope", () => {
  it("do not grow the record: a re-upload with the same source, name and keys adds no signature", async () => {
    const pub = makePublisher();
    const env = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
    try {
      const bytes = artifactBytes("bloat");
      const original = signFor(pub, bytes, "bloat");
      const put = (envelope: string) =>
        request(env.app).put("/v1/artifacts").set("Content-Type", "application/octet-stream").set("Modelgate-Signature", b64(envelope)).send(bytes);
      expect((await put(original)).status).toBe(201);
      // Anyone can read the envelope from /metadata and re-spell its JSON; each spelling verifies.
      const parsed = JSON.parse(original) as unknown;
      for (const indent of [1, 2, 3, 4]) expect((await put(JSON.stringify(parsed, null, indent))).status).toBe(200);
      const record = await env.store.readRecord(sha256Hex(bytes));
      expect(record?.signatures).toHaveLength(1);
    } finally {
      await env.cleanup();
    }
  });
});

describe("red team: hanging up after the body does not free an upload slot", () => {
  it("the slot stays taken until the inspection of the abandoned upload ends", async () => {
    const pub = makePublisher();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let started: () => void = () => undefined;
    const inspecting = new Promise<void>((r) => {
      started = r;
    });
    let calls = 0;
    const inspect: Inspector = async (p, o) => {
      calls += 1;
      if (calls === 1) {
        started();
        await gate;
      }
      return acceptingInspector(p, o);
    };
    const base = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }], inspect });
    const uploadGate = createUploadGate({ max: 1 });
    const app = createApp({ ...base.deps, uploadGate: uploadGate.middleware });
    const env: TestEnv = { ...base, app };
    try {
      const first = artifactBytes("first");
      await withServer(env, async (port) => {
        const req = http.request({
          host: "127.0.0.1",
          port,
          method: "PUT",
          path: "/v1/artifacts",
          headers: {
            "Content-Type": "application/octet-stream",
            "Content-Length": String(first.length),
            "Modelgate-Signature": b64(signFor(pub, first, "first")),
          },
        });
        req.on("error", () => undefined);
        req.end(first);
        await inspecting;
        req.destroy(); // hang up while the server inspects
        await new Promise((r) => setImmediate(r));
        expect(uploadGate.inFlight).toBe(1);
        const second = artifactBytes("second");
        const shed = await request(`http://127.0.0.1:${String(port)}`)
          .put("/v1/artifacts")
          .set("Content-Type", "application/octet-stream")
          .set("Modelgate-Signature", b64(signFor(pub, second, "second")))
          .send(second);
        expect(shed).toFailWithCode("unavailable");
        release();
        for (let i = 0; i < 100 && uploadGate.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
        expect(uploadGate.inFlight).toBe(0);
        const after = await request(`http://127.0.0.1:${String(port)}`)
          .put("/v1/artifacts")
          .set("Content-Type", "application/octet-stream")
          .set("Modelgate-Signature", b64(signFor(pub, second, "second")))
          .send(second);
        expect(after.status).toBe(201);
      });
    } finally {
      release();
      await base.cleanup();
    }
  });
});

describe("red team: token scope confusion", () => {
  it("admin is not publish, read is not publish, a bad token is 401 even where anonymous reads are allowed", async () => {
    const pub = makePublisher();
    const base = await makeEnv({ sources: [{ id: "acme", keys: [{ pub }] }] });
    const tokens = { admin: generateToken(), reader: generateToken(), publisher: generateToken() };
    const store = new TokenStore({
      version: 1,
      tokens: [
        { id: "admin", sha256: hashToken(tokens.admin), scopes: ["admin", "read"], createdAt: "2026-01-01" },
        { id: "reader", sha256: hashToken(tokens.reader), scopes: ["read"], createdAt: "2026-01-01" },
        { id: "publisher", sha256: hashToken(tokens.publisher), scopes: ["publish"], createdAt: "2026-01-01" },
      ],
    });
    const app = createApp({ ...base.deps, access: new TokenAccessControl(store, { anonymousRead: true }) });
    try {
      const bytes = artifactBytes("scoped");
      const put = (token: string | undefined) => {
        const r = request(app)
          .put("/v1/artifacts")
          .set("Content-Type", "application/octet-stream")
          .set("Modelgate-Signature", b64(signFor(pub, bytes, "scoped")));
        return (token === undefined ? r : r.set("Authorization", `Bearer ${token}`)).send(bytes);
      };
      expect(await put(tokens.admin)).toFailWithCode("forbidden");
      expect(await put(tokens.reader)).toFailWithCode("forbidden");
      expect(await put(undefined)).toFailWithCode("unauthenticated");
      expect(await put(`${tokens.publisher}x`)).toFailWithCode("unauthenticated");
      expect(await put(tokens.publisher.toUpperCase())).toFailWithCode("unauthenticated");
      expect(await listFiles(base.dataDir)).toEqual([]);
      expect((await put(tokens.publisher)).status).toBe(201);
      const digest = `sha256:${sha256Hex(bytes)}`;
      expect((await request(app).get(`/v1/artifacts/${digest}`)).status).toBe(200);
      expect(await request(app).get(`/v1/artifacts/${digest}`).set("Authorization", "Bearer nope")).toFailWithCode("unauthenticated");
      expect(await request(app).get(`/v1/artifacts/${digest}`).set("Authorization", `Bearer ${tokens.publisher}`)).toFailWithCode("forbidden");
    } finally {
      await base.cleanup();
    }
  });
});
