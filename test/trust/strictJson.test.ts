import { MAX_ENVELOPE_BYTES, MAX_TRUST_JSON_DEPTH } from "../../src/limits";
import { scanStrictJson } from "../../src/trust/strictJson";
import { parseEnvelope, parseStrictJson, verifyPublish } from "../../src/trust";
import { allowlistOf, codeOf, DIGEST, NOW, rawEnvelope, source, testKey, trusted } from "./helpers";

const OTHER_DIGEST = "b".repeat(64);
const PUBLISH = "https://modelgate.dev/attestation/publish/v1";
const STATEMENT = "https://in-toto.io/Statement/v1";

/** A statement written by hand, so a key can appear twice (JSON.stringify never writes that). */
function statementText(parts: { type?: string; subject?: string; predicateType?: string; predicate?: string } = {}): string {
  const subject = parts.subject ?? `[{"name":"team-a/model.pkl","digest":{"sha256":"${DIGEST}"}}]`;
  return `{${parts.type ?? `"_type":"${STATEMENT}"`},"subject":${subject},${parts.predicateType ?? `"predicateType":"${PUBLISH}"`},"predicate":${parts.predicate ?? "{}"}}`;
}

const k = testKey(51);
const other = testKey(52);
/** team-a may publish team-a/**; nobody may publish prod/**. */
const allowlist = allowlistOf(source("team-a", [trusted(k)], { names: ["team-a/**"] }));

/** The text signed as it is, in an envelope JSON.stringify writes (no duplicate there). */
function signedText(payload: string, keys = [k]): string {
  return JSON.stringify(rawEnvelope(new Uint8Array(Buffer.from(payload, "utf8")), keys));
}

function verify(envelope: string): string {
  return codeOf(() => verifyPublish({ envelope, digestHex: DIGEST, allowlist, now: NOW }));
}

describe("strict JSON scan (src/trust/strictJson.ts)", () => {
  it.each([
    ['{"a":1,"a":2}', "same key twice"],
    ['{"a":1,"b":{"c":1},"a":2}', "repeated after a nested object"],
    ['{"a":{"b":1,"b":1}}', "nested object"],
    ['[{"b":1},{"b":1,"b":2}]', "object in an array"],
    ['{"name":1,"na\\u006de":2}', "\\u escape spelling of the same key"],
    ['{"\\u006e\\u0061\\u006d\\u0065":1,"name":2}', "all-escaped first spelling"],
    ['{"a/b":1,"a\\/b":2}', "escaped solidus"],
    ['{"\\ud83d\\ude00":1,"😀":2}', "surrogate-pair escape vs the literal character"],
    ['{"\\ud800":1}', "lone surrogate escape in a key"],
    ['["\\udc00"]', "lone surrogate escape in a value"],
    ['{"a":1,}', "trailing comma"],
    ["[1,]", "trailing comma in an array"],
    ["{'a':1}", "single quotes"],
    ['{"a":01}', "leading zero"],
    ['{"a":1} x', "trailing data"],
    ['"\t"', "raw control character in a string"],
    ["", "empty text"],
    ["\ufeff{}", "a byte order mark"],
    ['{"a" 1}', "missing colon"],
    ["[1 2]", "missing comma"],
    ["[", "unclosed array"],
  ])("refuses %s (%s) as malformed_signature", (text) => {
    expect(() => parseStrictJson(text, "test")).toFailWithCode("malformed_signature");
  });

  it.each([
    ['{"a":{"a":{"a":1}}}', "the same key in different objects"],
    ['{"name":1,"Name":2,"NAME":3}', "keys differing by case"],
    ['{"e\\u0301":1,"\\u00e9":2}', "canonically equivalent but different keys (not duplicates for any JSON parser)"],
    [' { "x" : [ true , false , null , -1.5e3 , 0 , "\\"\\\\\\/\\b\\f\\n\\r\\t" ] } ', "every token kind with whitespace"],
    ["[]", "empty array"],
    ["{}", "empty object"],
    ["42", "a bare number"],
  ])("accepts %s (%s), as JSON.parse reads it", (text) => {
    expect(parseStrictJson(text, "test")).toEqual(JSON.parse(text));
  });

  it(`bounds nesting at MAX_TRUST_JSON_DEPTH (${String(MAX_TRUST_JSON_DEPTH)}): at the limit ok, one past refused`, () => {
    const nest = (n: number): string => "[".repeat(n) + "]".repeat(n);
    const nestObjects = (n: number): string => '{"a":'.repeat(n - 1) + "{}" + "}".repeat(n - 1);
    expect(() => {
      scanStrictJson(nest(MAX_TRUST_JSON_DEPTH), "test");
    }).not.toThrow();
    expect(() => {
      scanStrictJson(nest(MAX_TRUST_JSON_DEPTH + 1), "test");
    }).toFailWithCode("malformed_signature");
    expect(() => {
      scanStrictJson(nestObjects(MAX_TRUST_JSON_DEPTH), "test");
    }).not.toThrow();
    expect(() => {
      scanStrictJson(nestObjects(MAX_TRUST_JSON_DEPTH + 1), "test");
    }).toFailWithCode("malformed_signature");
    // A JSON bomb of the largest envelope size stops at the bound, without recursion.
    expect(() => parseEnvelope("[".repeat(MAX_ENVELOPE_BYTES))).toFailWithCode("malformed_signature");
  });

  it("scans a maximum-size envelope in linear time", () => {
    const big = JSON.stringify({ a: "x".repeat(MAX_ENVELOPE_BYTES - 100_000), b: Array.from({ length: 8000 }, () => "\\u00e9") });
    const t0 = process.hrtime.bigint();
    expect(() => {
      scanStrictJson(big, "test");
    }).not.toThrow();
    expect(Number(process.hrtime.bigint() - t0) / 1e6).toBeLessThan(2000);
  });
});

describe("red team: duplicate keys in validly signed envelopes and statements -> malformed_signature", () => {
  it("the control: the hand-written statement verifies", () => {
    expect(verifyPublish({ envelope: signedText(statementText()), digestHex: DIGEST, allowlist, now: NOW }).name).toBe("team-a/model.pkl");
  });

  // Each statement is signed by a trusted key; JSON.parse (last wins) would read the LAST value,
  // a first-wins reader the FIRST. Before the strict scan, each of these was accepted.
  it.each<[string, string]>([
    [
      "subject name (first-wins reader: prod/model.pkl)",
      statementText({ subject: `[{"name":"prod/model.pkl","digest":{"sha256":"${DIGEST}"},"name":"team-a/model.pkl"}]` }),
    ],
    [
      "subject name spelled with an escape",
      statementText({ subject: `[{"na\\u006de":"prod/model.pkl","name":"team-a/model.pkl","digest":{"sha256":"${DIGEST}"}}]` }),
    ],
    [
      "predicateType (first-wins reader: SLSA provenance)",
      statementText({ predicateType: `"predicateType":"https://slsa.dev/provenance/v1","predicateType":"${PUBLISH}"` }),
    ],
    [
      "predicateType spelled with escapes",
      statementText({ predicateType: `"\\u0070redicateType":"https://slsa.dev/provenance/v1","predicateType":"${PUBLISH}"` }),
    ],
    ["_type", statementText({ type: `"_type":"https://in-toto.io/Statement/v0.1","_type":"${STATEMENT}"` })],
    [
      "the whole subject list",
      statementText({
        subject: `[{"name":"prod/model.pkl","digest":{"sha256":"${OTHER_DIGEST}"}}],"subject":[{"name":"team-a/model.pkl","digest":{"sha256":"${DIGEST}"}}]`,
      }),
    ],
    [
      "the digest (first-wins reader: another artifact)",
      statementText({ subject: `[{"name":"team-a/model.pkl","digest":{"sha256":"${OTHER_DIGEST}","sha256":"${DIGEST}"}}]` }),
    ],
    [
      "the digest, escaped",
      statementText({ subject: `[{"name":"team-a/model.pkl","digest":{"sha\\u0032\\u0035\\u0036":"${OTHER_DIGEST}","sha256":"${DIGEST}"}}]` }),
    ],
    ["a predicate field", statementText({ predicate: '{"version":"0.1","version":"1.0"}' })],
    ["the predicate size", statementText({ predicate: '{"size":1,"size":2}' })],
    ["the whole predicate", statementText({ predicate: '{"size":1},"predicate":{}' })],
  ])("in the statement: %s", (_label, payload) => {
    // The same text is plain JSON: JSON.parse takes it without complaint.
    expect(() => JSON.parse(payload) as unknown).not.toThrow();
    expect(verify(signedText(payload))).toBe("malformed_signature");
  });

  const prodPayload = Buffer.from(statementText({ subject: `[{"name":"prod/model.pkl","digest":{"sha256":"${DIGEST}"}}]` })).toString("base64");
  const good = rawEnvelope(new Uint8Array(Buffer.from(statementText())), [k]);
  const goodSig = good.signatures[0];
  if (goodSig === undefined) throw new Error("no signature");

  it.each<[string, string]>([
    [
      "payload (first-wins reader: an unsigned prod statement)",
      `{"payloadType":"${good.payloadType}","payload":"${prodPayload}","payload":"${good.payload}","signatures":[${JSON.stringify(goodSig)}]}`,
    ],
    [
      "payload spelled with an escape",
      `{"payloadType":"${good.payloadType}","p\\u0061yload":"${prodPayload}","payload":"${good.payload}","signatures":[${JSON.stringify(goodSig)}]}`,
    ],
    [
      "payloadType",
      `{"payloadType":"application/json","payloadType":"${good.payloadType}","payload":"${good.payload}","signatures":[${JSON.stringify(goodSig)}]}`,
    ],
    ["signatures", `{"payloadType":"${good.payloadType}","payload":"${good.payload}","signatures":[],"signatures":[${JSON.stringify(goodSig)}]}`],
    [
      "a signature's keyid",
      `{"payloadType":"${good.payloadType}","payload":"${good.payload}","signatures":[{"keyid":"${other.keyId}","keyid":"${goodSig.keyid}","sig":"${goodSig.sig}"}]}`,
    ],
    [
      "a signature's sig",
      `{"payloadType":"${good.payloadType}","payload":"${good.payload}","signatures":[{"keyid":"${goodSig.keyid}","sig":"${"A".repeat(86)}==","sig":"${goodSig.sig}"}]}`,
    ],
  ])("in the envelope: %s", (_label, envelope) => {
    expect(() => JSON.parse(envelope) as unknown).not.toThrow();
    expect(verify(envelope)).toBe("malformed_signature");
  });

  it("a signed statement starting with a UTF-8 byte order mark is refused (TextDecoder stripped it; Python and Go refuse it)", () => {
    const payload = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(statementText(), "utf8")]);
    expect(verify(JSON.stringify(rawEnvelope(new Uint8Array(payload), [k])))).toBe("malformed_signature");
  });

  it("an envelope file starting with a byte order mark is refused", () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(signedText(statementText()), "utf8")]);
    expect(() => parseEnvelope(new Uint8Array(bytes))).toFailWithCode("malformed_signature");
  });

  it("a lone surrogate escaped in a signed predicate field is refused", () => {
    expect(verify(signedText(statementText({ predicate: '{"description":"x\\ud800y"}' })))).toBe("malformed_signature");
  });
});
