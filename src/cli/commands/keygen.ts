import { generateKeyPairSync } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, rmSync, writeSync } from "node:fs";
import * as path from "node:path";
import { GatewayError } from "../../errors";
import { keyIdOf, parsePublicKey } from "../../trust";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";

function writeNew(file: string, content: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(file, "wx", mode);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EEXIST") throw new GatewayError("io_error", `${file} already exists; refusing to overwrite a key`);
    throw new GatewayError("io_error", `cannot create ${file}: ${e.message}`, undefined, { cause: err });
  }
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export const keygenCommand: Command = {
  ...COMMAND_HELP.keygen,
  run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { out: { type: "string" } });
    if (positionals.length > 0) return Promise.reject(new GatewayError("usage", `unexpected argument '${positionals[0] ?? ""}'`));
    if (values.out === undefined || values.out === "") return Promise.reject(new GatewayError("usage", "keygen needs --out <prefix>"));
    const prefix = path.resolve(io.cwd, values.out);
    const keyFile = `${prefix}.key`;
    const pubFile = `${prefix}.pub`;
    for (const f of [keyFile, pubFile]) {
      if (existsSync(f)) return Promise.reject(new GatewayError("io_error", `${f} already exists; refusing to overwrite a key`));
    }
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const pubPem = publicKey.export({ type: "spki", format: "pem" }).toString();
    const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const keyId = keyIdOf(parsePublicKey(pubPem));
    writeNew(keyFile, keyPem, 0o600);
    try {
      writeNew(pubFile, pubPem, 0o644);
    } catch (err) {
      rmSync(keyFile, { force: true });
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    io.stdout(`key id: ${keyId}\nprivate key: ${keyFile} (mode 0600; keep it secret, never commit it)\npublic key: ${pubFile}\n`);
    return Promise.resolve(0);
  },
};
