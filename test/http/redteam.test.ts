import * as http from "node:http";
import type { AddressInfo } from "node:net";
import request from "supertest";
import { promises as fsp } from "node:fs";
import type { Inspector } from "../../src/inspect/inspector";
import { acceptingInspector, allowlistJson, artifactBytes, listFiles, makeEnv, makePublisher, sha256Hex, signFor, type TestEnv } from "./helpers";

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

  it("X-Forwarded-For does not change the client address (no trust proxy)", async () => {
    const res = await request(env.app).get(`/v1/artifacts/sha256:${"0".repeat(64)}/metadata`).set("X-Forwarded-For", "203.0.113.9");
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
    ["bytes=0-99999999999999999", 416, "bytes */1000"],
    ["bytes=999999999999999-", 416, "bytes */1000"],
    ["bytes=0-1,2-3", 416, "bytes */1000"],
    ["bytes=-1001", 206, "bytes 0-999/1000"],
    ["bytes=1e3-", 416, "bytes */1000"],
    ["bytes=0x1-2", 416, "bytes */1000"],
    ["bytes=-", 416, "bytes */1000"],
    ["bytes=999-999", 206, "bytes 999-999/1000"],
    ["bytes=1000-", 416, "bytes */1000"],
    ["bytes=-9999999999999999999", 416, "bytes */1000"],
  ])("Range %s never leaks past the blob (%d)", async (range, status, contentRange) => {
    const bytes = artifactBytes("r", 1000);
    const up = await request(env.app).put("/v1/artifacts").set("Content-Type", "application/octet-stream").set("Modelgate-Signature", b64(signFor(pub, bytes, "r"))).send(bytes);
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
    request(env.app).put("/v1/artifacts").set("Content-Type", "application/octet-stream").set("Modelgate-Signature", b64(signFor(pub, bytes, name))).send(bytes);

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
      expect(res.status).toBe(403);
      expect((res.body as { error: { code: string } }).error.code).toBe("key_revoked");
      expect(await listFiles(env.dataDir)).toEqual([]);
      expect(env.audit.events.filter((e) => e.type.startsWith("upload."))).toEqual([expect.objectContaining({ type: "upload.rejected", codes: ["key_revoked"] })]);
    } finally {
      await env.cleanup();
    }
  });

  it("a source removed during inspection: untrusted_source, nothing stored", async () => {
    const other = makePublisher();
    const { env } = await envWith((e) => reloadWith(e, allowlistJson([{ id: "other", keys: [{ pub: other }] }])));
    try {
      const res = await put(env, artifactBytes("gone"), "gone");
      expect((res.body as { error: { code: string } }).error.code).toBe("untrusted_source");
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
      expect((res.body as { error: { code: string } }).error.code).toBe("key_revoked");
      expect(await listFiles(env.dataDir)).toEqual([]);
      expect(env.audit.events.filter((e) => e.type.startsWith("upload.")).map((e) => e.type)).toEqual(["upload.accepted", "upload.rejected"]);
    } finally {
      await env.cleanup();
    }
  });

  it("an unrelated reload during inspection does not re-inspect and the upload is stored", async () => {
    const other = makePublisher();
    const { env, policies } = await envWith((e) => reloadWith(e, allowlistJson([{ id: "acme", keys: [{ pub }] }, { id: "other", keys: [{ pub: other }] }])));
    try {
      const res = await put(env, artifactBytes("calm"), "calm");
      expect(res.status).toBe(201);
      expect(policies).toHaveLength(1);
    } finally {
      await env.cleanup();
    }
  });
});
