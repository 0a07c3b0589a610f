import request from "supertest";
import { buildPublishStatement, signEnvelope, type Envelope } from "../../src/trust";
import { rawEnvelope } from "../support/publisher";
import { acceptingInspector, artifactBytes, listFiles, makeEnv, makePublisher, sha256Hex, type Publisher, type TestEnv } from "./helpers";

/**
 * Red team, issue 10 family 6 (trust layer strictness), over HTTP on both upload routes:
 * names outside the name rule are 400 `invalid_name`, duplicate keys anywhere in the envelope
 * or the signed statement are 400 `malformed_signature`; nothing is stored, every refusal is audited.
 */

const teamA = makePublisher();
const SOURCES = [{ id: "team-a", keys: [{ pub: teamA }], names: ["team-a/**"] }];

/** Sign a statement for `name` without the name rule (buildPublishStatement would refuse it). */
function signRawName(pub: Publisher, bytes: Buffer, name: string): string {
  const valid = signEnvelope(buildPublishStatement({ name: "team-a/placeholder", digestHex: sha256Hex(bytes) }), pub.secretKey, pub.keyId);
  const statement = JSON.parse(Buffer.from(valid.payload, "base64").toString("utf8")) as { subject: { name: string }[] };
  const subject = statement.subject[0];
  if (subject === undefined) throw new Error("no subject");
  subject.name = name;
  return signText(pub, JSON.stringify(statement));
}

/** Sign statement text exactly as given (duplicate keys and all). */
function signText(pub: Publisher, payload: string): string {
  return JSON.stringify(rawEnvelope(Buffer.from(payload, "utf8"), [pub]));
}

function statementWithNames(bytes: Buffer, first: string, last: string): string {
  return `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"${first}","digest":{"sha256":"${sha256Hex(bytes)}"},"name":"${last}"}],"predicateType":"https://modelgate.dev/attestation/publish/v1","predicate":{}}`;
}

const post = (env: TestEnv, envelope: string, bytes: Buffer, name?: string) => {
  let req = request(env.app).post("/v1/artifacts").field("signature", envelope);
  if (name !== undefined) req = req.field("name", name);
  return req.attach("artifact", bytes, "m.bin");
};
const put = (env: TestEnv, envelope: string, bytes: Buffer, name?: string) => {
  let req = request(env.app)
    .put("/v1/artifacts")
    .set("Content-Type", "application/octet-stream")
    .set("Modelgate-Signature", Buffer.from(envelope).toString("base64"));
  if (name !== undefined) req = req.set("Modelgate-Name", name);
  return req.send(bytes);
};
const ROUTES = [
  ["POST multipart", post],
  ["PUT raw", put],
] as const;

const codeOf = (res: { body: unknown }): string | undefined => (res.body as { error?: { code?: string } }).error?.code;

describe("red team: trust layer strictness over HTTP", () => {
  let env: TestEnv;
  beforeEach(async () => {
    env = await makeEnv({ sources: SOURCES, inspect: acceptingInspector });
  });
  afterEach(async () => {
    await env.cleanup();
  });

  async function expectRefused(res: { status: number; body: unknown }, code: string): Promise<void> {
    expect(res.status).toBe(400);
    expect(codeOf(res)).toBe(code);
    expect(await listFiles(env.dataDir)).toEqual([]);
    expect(env.audit.events.map((e) => [e.type, e.codes])).toEqual([["upload.rejected", [code]]]);
  }

  describe.each(ROUTES)("%s", (_route, send) => {
    it("control: a clean team-a name is accepted", async () => {
      const bytes = artifactBytes("control");
      const res = await send(env, signRawName(teamA, bytes, "team-a/x/y.pkl"), bytes);
      expect(res.status).toBe(201);
    });

    // Each was signed by team-a's trusted key; before issue 10, `team-a/**` matched the raw text.
    it.each([
      ["a '..' segment (matched team-a/** before)", "team-a/../prod/model.pkl"],
      ["a '.' segment", "team-a/./model.pkl"],
      ["an empty segment", "team-a//model.pkl"],
      ["a trailing '/'", "team-a/"],
      ["a backslash", "team-a/..\\prod\\model.pkl"],
      ["a right-to-left override", "team-a/\u202elkp.ledom"],
      ["a zero-width space", "team-a/mo\u200bdel.pkl"],
      ["a byte order mark", "team-a/\ufeffmodel.pkl"],
      ["a NUL", "team-a/model\u0000.pkl"],
      ["a decomposed é (not NFC)", "team-a/cafe\u0301.pkl"],
      ["a FULLWIDTH SOLIDUS dot-dot (NFKC: team-a/../prod)", "team-a/\uff0e\uff0e\uff0fprod"],
    ])("a signed subject name with %s -> 400 invalid_name", async (_label, name) => {
      const bytes = artifactBytes(`signed-${name}`);
      await expectRefused(await send(env, signRawName(teamA, bytes, name), bytes), "invalid_name");
    });

    it.each([
      ["a '..' segment", "team-a/../team-a/x.pkl"],
      ["a leading '/'", "/team-a/x.pkl"],
      ["a '.' segment", "team-a/./x.pkl"],
      ["a backslash", "team-a\\x.pkl"],
    ])("a requested name (field / Modelgate-Name header) with %s -> 400 invalid_name", async (_label, name) => {
      const bytes = artifactBytes(`requested-${name}`);
      await expectRefused(await send(env, signRawName(teamA, bytes, "team-a/x.pkl"), bytes, name), "invalid_name");
    });

    it("a signed statement naming prod/… first and team-a/… last -> 400 malformed_signature", async () => {
      const bytes = artifactBytes("dup-name");
      await expectRefused(await send(env, signText(teamA, statementWithNames(bytes, "prod/model.pkl", "team-a/model.pkl")), bytes), "malformed_signature");
    });

    it("the same with the first key spelled na\\u006de -> 400 malformed_signature", async () => {
      const bytes = artifactBytes("dup-escaped");
      const payload = statementWithNames(bytes, "prod/model.pkl", "team-a/model.pkl").replace('"name"', '"na\\u006de"');
      await expectRefused(await send(env, signText(teamA, payload), bytes), "malformed_signature");
    });

    it("an envelope carrying two payloads -> 400 malformed_signature", async () => {
      const bytes = artifactBytes("dup-payload");
      const good = JSON.parse(signRawName(teamA, bytes, "team-a/x.pkl")) as Envelope;
      const other = Buffer.from(statementWithNames(bytes, "prod/model.pkl", "prod/model.pkl")).toString("base64");
      const envelope = `{"payloadType":"${good.payloadType}","payload":"${other}","payload":"${good.payload}","signatures":${JSON.stringify(good.signatures)}}`;
      await expectRefused(await send(env, envelope, bytes), "malformed_signature");
    });
  });

  it("an envelope that is not UTF-8 (header and file part) is malformed_signature, not decoded with U+FFFD", async () => {
    const bytes = artifactBytes("not-utf8");
    const envelope = Buffer.from(signRawName(teamA, bytes, "team-a/x.pkl"), "utf8");
    // An unknown key whose name is the byte 0xFF: Buffer#toString made it U+FFFD and the schema named it.
    const broken = Buffer.concat([envelope.subarray(0, envelope.length - 1), Buffer.from(',"\xff":1}', "latin1")]);
    const viaHeader = await request(env.app)
      .put("/v1/artifacts")
      .set("Content-Type", "application/octet-stream")
      .set("Modelgate-Signature", broken.toString("base64"))
      .send(bytes);
    expect(viaHeader.status).toBe(400);
    expect(viaHeader).toFailWithCode("malformed_signature");
    const viaFile = await request(env.app).post("/v1/artifacts").attach("signature", broken, "sig.json").attach("artifact", bytes, "m.bin");
    expect(viaFile.status).toBe(400);
    expect(viaFile).toFailWithCode("malformed_signature");
    expect(await listFiles(env.dataDir)).toEqual([]);
  });

  it("the multipart name field keeps the refused name in the audit entry, JSON-escaped", async () => {
    const bytes = artifactBytes("audit-name");
    const name = "team-a/\u202egnp.exe";
    const res = await post(env, signRawName(teamA, bytes, "team-a/x.pkl"), bytes, name);
    expect(res).toFailWithCode("invalid_name");
    expect(env.audit.events).toEqual([expect.objectContaining({ type: "upload.rejected", codes: ["invalid_name"], name })]);
  });

  it("GET /v1/artifacts?name= refuses a name outside the rule with 400 invalid_name", async () => {
    for (const name of ["team-a/../prod/model.pkl", "/team-a/x", "team-a/\u202ex"]) {
      const res = await request(env.app).get("/v1/artifacts").query({ name });
      expect(res.status).toBe(400);
      expect(res).toFailWithCode("invalid_name");
    }
    expect((await request(env.app).get("/v1/artifacts").query({ name: "team-a/x" })).status).toBe(200);
  });
});
