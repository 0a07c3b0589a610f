import { createHash, generateKeyPairSync } from "node:crypto";
import nacl from "tweetnacl";
import { keyIdOf, parsePublicKey, privateKeyToPem, publicKeyToPem, readPrivateKey, verifyEd25519 } from "../../src/trust";
import { testKey } from "./helpers";

function ed25519Pems(): { pub: string; priv: string; raw: Uint8Array } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = publicKey.export({ type: "spki", format: "pem" }).toString();
  const der = publicKey.export({ type: "spki", format: "der" });
  return { pub, priv: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), raw: new Uint8Array(der.subarray(der.length - 32)) };
}

describe("public keys", () => {
  it("parses PEM SubjectPublicKeyInfo (openssl pkey -pubout form)", () => {
    const { pub, raw } = ed25519Pems();
    expect(Array.from(parsePublicKey(pub))).toEqual(Array.from(raw));
    expect(Array.from(parsePublicKey(`\n  ${pub}\n\n`))).toEqual(Array.from(raw));
    expect(Array.from(parsePublicKey(pub.replace(/\n/g, "\r\n")))).toEqual(Array.from(raw));
  });

  it("parses base64 of the raw 32 bytes, surrounding whitespace ignored", () => {
    const k = testKey(3);
    const b64 = Buffer.from(k.publicKey).toString("base64");
    expect(Array.from(parsePublicKey(b64))).toEqual(Array.from(k.publicKey));
    expect(Array.from(parsePublicKey(`${b64}\n`))).toEqual(Array.from(k.publicKey));
  });

  it("computes the key id as lowercase hex sha256 of the raw key", () => {
    const k = testKey(4);
    expect(keyIdOf(k.publicKey)).toBe(createHash("sha256").update(k.publicKey).digest("hex"));
    expect(keyIdOf(k.publicKey)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("round-trips raw -> PEM -> raw", () => {
    const k = testKey(5);
    expect(Array.from(parsePublicKey(publicKeyToPem(k.publicKey)))).toEqual(Array.from(k.publicKey));
  });

  it.each([
    ["31 raw bytes", Buffer.alloc(31, 7).toString("base64")],
    ["33 raw bytes", Buffer.alloc(33, 7).toString("base64")],
    ["url-safe base64", Buffer.from(testKey(6).publicKey).toString("base64url")],
    ["empty", ""],
    ["garbage", "not a key"],
    ["hex instead of base64", Buffer.from(testKey(6).publicKey).toString("hex")],
    ["identity point", Buffer.from("0100000000000000000000000000000000000000000000000000000000000000", "hex").toString("base64")],
    ["order-8 point", Buffer.from("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", "hex").toString("base64")],
    ["corrupt PEM body", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"],
    ["PEM with trailing junk", `${ed25519Pems().pub}junk`],
  ])("rejects %s with invalid_key", (_label, text) => {
    expect(() => parsePublicKey(text)).toFailWithCode("invalid_key");
  });

  it("rejects other algorithms and private keys given as public", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
    const x25519 = generateKeyPairSync("x25519").publicKey.export({ type: "spki", format: "pem" }).toString();
    expect(() => parsePublicKey(rsa)).toFailWithCode("invalid_key");
    expect(() => parsePublicKey(ec)).toFailWithCode("invalid_key");
    expect(() => parsePublicKey(x25519)).toFailWithCode("invalid_key");
    expect(() => parsePublicKey(ed25519Pems().priv)).toFailWithCode("invalid_key");
  });
});

describe("private keys", () => {
  it("reads PKCS#8 PEM into tweetnacl form that signs verifiably", () => {
    const { priv, raw } = ed25519Pems();
    const { secretKey, publicKey } = readPrivateKey(priv);
    expect(Array.from(publicKey)).toEqual(Array.from(raw));
    const sig = nacl.sign.detached(Buffer.from("m"), secretKey);
    expect(nacl.sign.detached.verify(Buffer.from("m"), sig, raw)).toBe(true);
  });

  it("round-trips tweetnacl -> PEM -> tweetnacl", () => {
    const k = testKey(9);
    expect(Array.from(readPrivateKey(privateKeyToPem(k.secretKey)).secretKey)).toEqual(Array.from(k.secretKey));
  });

  it("rejects encrypted, public, foreign and garbage keys", () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const encrypted = privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" }).toString();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(() => readPrivateKey(encrypted)).toFailWithCode("invalid_key");
    expect(() => readPrivateKey(ed25519Pems().pub)).toFailWithCode("invalid_key");
    expect(() => readPrivateKey(rsa)).toFailWithCode("invalid_key");
    expect(() => readPrivateKey("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")).toFailWithCode("invalid_key");
    expect(() => readPrivateKey("")).toFailWithCode("invalid_key");
  });
});

describe("verifyEd25519", () => {
  const k = testKey(12);
  const msg = Buffer.from("DSSEv1 1 a 1 b");
  const sig = nacl.sign.detached(msg, k.secretKey);

  it("accepts tweetnacl signatures and rejects changed messages, keys and signatures", () => {
    expect(verifyEd25519(msg, sig, k.publicKey)).toBe(true);
    expect(verifyEd25519(Buffer.from("DSSEv1 1 a 1 c"), sig, k.publicKey)).toBe(false);
    expect(verifyEd25519(msg, sig, testKey(13).publicKey)).toBe(false);
    const flipped = Uint8Array.from(sig);
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(verifyEd25519(msg, flipped, k.publicKey)).toBe(false);
    expect(verifyEd25519(msg, sig.subarray(0, 63), k.publicKey)).toBe(false);
  });

  it("rejects the malleable twin S + L that tweetnacl itself accepts", () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] ?? 0);
    let twinS = s + L;
    const twin = Uint8Array.from(sig);
    for (let i = 32; i < 64; i++) {
      twin[i] = Number(twinS & 0xffn);
      twinS >>= 8n;
    }
    expect(twinS).toBe(0n); // S + L still fits in 256 bits
    expect(nacl.sign.detached.verify(msg, twin, k.publicKey)).toBe(true);
    expect(verifyEd25519(msg, twin, k.publicKey)).toBe(false);
  });
});
