import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { isGatewayError } from "../../src/errors";
import { MAX_ALLOWLIST_BYTES } from "../../src/limits";
import { loadAllowlist, parseAllowlist, publicKeyToPem } from "../../src/trust";
import { testKey } from "./helpers";

const a = testKey(1);
const b = testKey(2);
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "mg-allowlist-"));
  mkdirSync(path.join(dir, "keys"));
  writeFileSync(path.join(dir, "keys", "a.pub"), publicKeyToPem(a.publicKey));
  writeFileSync(path.join(dir, "keys", "b.b64"), `${Buffer.from(b.publicKey).toString("base64")}\n`);
  writeFileSync(path.join(dir, "keys", "bad.pub"), "not a key\n");
  writeFileSync(path.join(dir, "outside.pub"), publicKeyToPem(b.publicKey));
  writeFileSync(path.join(dir, "keys", "big.pub"), "A".repeat(17 * 1024));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function doc(sources: unknown[]): unknown {
  return { version: 1, sources };
}
function src(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id: "research", description: "d", keys: [{ path: "keys/a.pub" }], ...extra };
}

/** The JSON paths named by an invalid_allowlist error. */
function badPaths(json: unknown): string[] {
  try {
    parseAllowlist(json, path.join(dir, "keys", ".."));
  } catch (err) {
    if (isGatewayError(err) && err.code === "invalid_allowlist") return (err.details?.issues as { path: string }[]).map((i) => i.path);
    throw err;
  }
  throw new Error("expected invalid_allowlist");
}

describe("parseAllowlist", () => {
  it("loads key files (PEM and raw base64) and inline keys, with defaults", () => {
    const al = parseAllowlist(
      doc([
        src({
          keys: [
            { path: "keys/a.pub", notBefore: "2026-01-01T00:00:00Z", notAfter: "2026-06-01T00:00:00+02:00" },
            { path: "keys/b.b64", revoked: true },
          ],
        }),
        {
          id: "inline",
          description: "",
          keys: [{ publicKey: publicKeyToPem(b.publicKey), keyId: b.keyId }],
          names: ["x/**"],
          threshold: 1,
          pickle: { allowGlobals: ["collections.OrderedDict"] },
        },
      ]),
      dir,
    );
    const [research, inline] = al.sources;
    expect(research?.keys.map((k) => k.keyId)).toEqual([a.keyId, b.keyId]);
    expect(research?.keys[0]?.origin).toBe("keys/a.pub");
    expect(research?.keys[0]?.notBefore?.toISOString()).toBe("2026-01-01T00:00:00.000Z");
    expect(research?.keys[0]?.notAfter?.toISOString()).toBe("2026-05-31T22:00:00.000Z");
    expect(research?.keys[0]?.revoked).toBe(false);
    expect(research?.keys[1]?.revoked).toBe(true);
    expect(research?.threshold).toBe(1);
    expect(research?.names).toBeUndefined();
    expect(research?.pickle).toEqual({
      allowGlobals: [],
      allowTorchScript: false,
      allowEmbeddedCode: false,
      allowOpaqueMembers: false,
      allowDirectRequirements: false,
      allowRemoteCode: false,
    });
    expect(inline?.keys[0]?.origin).toBe("inline");
    expect(inline?.pickle.allowGlobals).toEqual(["collections.OrderedDict"]);
    expect(inline?.pickle.allowTorchScript).toBe(false);
  });

  it.each<[string, unknown, string[]]>([
    ["unknown top-level field", { version: 1, sources: [], extra: 1 }, ["(root)"]],
    ["wrong version", { version: 2, sources: [] }, ["version"]],
    ["unknown source field (typo)", doc([src({ treshold: 2 })]), ["sources.0"]],
    ["unknown key field", doc([src({ keys: [{ path: "keys/a.pub", revokd: true }] })]), ["sources.0.keys.0"]],
    ["unknown pickle field", doc([src({ pickle: { allowGlobal: ["x"] } })]), ["sources.0.pickle"]],
    ["bad source id", doc([src({ id: "has space" })]), ["sources.0.id"]],
    ["no keys", doc([src({ keys: [] })]), ["sources.0.keys"]],
    ["threshold 0", doc([src({ threshold: 0 })]), ["sources.0.threshold"]],
    ["threshold above key count", doc([src({ threshold: 2 })]), ["sources.0.threshold"]],
    ["bad timestamp", doc([src({ keys: [{ path: "keys/a.pub", notAfter: "next tuesday" }] })]), ["sources.0.keys.0.notAfter"]],
    [
      "notAfter before notBefore",
      doc([src({ keys: [{ path: "keys/a.pub", notBefore: "2026-02-01T00:00:00Z", notAfter: "2026-01-01T00:00:00Z" }] })]),
      ["sources.0.keys.0.notAfter"],
    ],
    ["revoked not boolean", doc([src({ keys: [{ path: "keys/a.pub", revoked: "yes" }] })]), ["sources.0.keys.0.revoked"]],
    ["both path and publicKey", doc([src({ keys: [{ path: "keys/a.pub", publicKey: "x" }] })]), ["sources.0.keys.0"]],
    ["neither path nor publicKey", doc([src({ keys: [{ revoked: false }] })]), ["sources.0.keys.0"]],
    ["duplicate source ids", doc([src(), src()]), ["sources.1.id"]],
    ["empty names", doc([src({ names: [] })]), ["sources.0.names"]],
    ["two bad fields in two sources", doc([src({ threshold: "1" }), src({ id: "other", description: 5 })]), ["sources.0.threshold", "sources.1.description"]],
  ])("rejects %s, naming the JSON path", (_label, json, paths) => {
    expect(badPaths(json).sort()).toEqual(paths.sort());
  });

  it.each<[string, unknown, string]>([
    ["missing key file", doc([src({ keys: [{ path: "keys/none.pub" }] })]), "sources.0.keys.0.path"],
    ["unparseable key file", doc([src({ keys: [{ path: "keys/bad.pub" }] })]), "sources.0.keys.0.path"],
    ["oversized key file", doc([src({ keys: [{ path: "keys/big.pub" }] })]), "sources.0.keys.0.path"],
    ["key file outside the allowlist's directory", doc([src({ keys: [{ path: "../outside.pub" }] })]), "sources.0.keys.0.path"],
    ["absolute key path", doc([src({ keys: [{ path: "/etc/passwd" }] })]), "sources.0.keys.0.path"],
    ["directory as key path", doc([src({ keys: [{ path: "keys" }] })]), "sources.0.keys.0.path"],
    ["bad inline key", doc([src({ keys: [{ publicKey: "AAAA" }] })]), "sources.0.keys.0.publicKey"],
    ["declared keyId that does not match", doc([src({ keys: [{ path: "keys/a.pub", keyId: b.keyId }] })]), "sources.0.keys.0.keyId"],
    [
      "same key twice in one source",
      doc([src({ keys: [{ path: "keys/a.pub" }, { publicKey: Buffer.from(a.publicKey).toString("base64") }] })]),
      "sources.0.keys.1",
    ],
  ])("rejects %s", (_label, json, where) => {
    expect(badPaths(json)).toEqual([where]);
  });

  it("allows the same key in two sources and an empty source list", () => {
    expect(parseAllowlist(doc([src(), src({ id: "second" })]), dir).sources).toHaveLength(2);
    expect(parseAllowlist(doc([]), dir).sources).toEqual([]);
  });

  it("accepts a key path through ./ and a subdirectory that comes back", () => {
    expect(parseAllowlist(doc([src({ keys: [{ path: "./keys/../keys/a.pub" }] })]), dir).sources[0]?.keys[0]?.keyId).toBe(a.keyId);
  });
});

describe("loadAllowlist", () => {
  it("resolves key paths against the file's directory", () => {
    const file = path.join(dir, "allow.json");
    writeFileSync(file, JSON.stringify(doc([src()])));
    expect(loadAllowlist(file).sources[0]?.keys[0]?.keyId).toBe(a.keyId);
  });

  it("io_error for a missing file, invalid_allowlist for bad JSON", () => {
    expect(() => loadAllowlist(path.join(dir, "missing.json"))).toFailWithCode("io_error");
    const file = path.join(dir, "broken.json");
    writeFileSync(file, "{ not json");
    expect(() => loadAllowlist(file)).toFailWithCode("invalid_allowlist");
  });
});

describe("loadAllowlist limits", () => {
  it("io_error for a directory; invalid_allowlist above MAX_ALLOWLIST_BYTES, accepted at it", () => {
    const d = mkdtempSync(path.join(tmpdir(), "mg-allowlist-limit-"));
    try {
      expect(() => loadAllowlist(d)).toFailWithCode("io_error");
      const base = JSON.stringify({ version: 1, sources: [] });
      const file = path.join(d, "allowlist.json");
      writeFileSync(file, base + " ".repeat(MAX_ALLOWLIST_BYTES - base.length));
      expect(loadAllowlist(file).sources).toEqual([]);
      writeFileSync(file, base + " ".repeat(MAX_ALLOWLIST_BYTES - base.length + 1));
      expect(() => loadAllowlist(file)).toFailWithCode("invalid_allowlist");
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
