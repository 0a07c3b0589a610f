import * as path from "node:path";
import { GatewayError } from "../../errors";
import { formatDigest, sha256File } from "../../digest";
import { buildPublishStatement, keyIdOf, parseArtifactName, readPrivateKey, signEnvelope, writeFileAtomicSync } from "../../trust";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";
import { MAX_KEY_FILE_BYTES } from "../../limits";
import { readSmallFile } from "./trust";

export const signCommand: Command = {
  ...COMMAND_HELP.sign,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { key: { type: "string" }, name: { type: "string" }, out: { type: "string" } });
    const [fileArg, ...extra] = positionals;
    if (fileArg === undefined || extra.length > 0) throw new GatewayError("usage", "sign needs exactly one <file>");
    if (values.key === undefined) throw new GatewayError("usage", "sign needs --key <keyfile>");
    const file = path.resolve(io.cwd, fileArg);
    // Checked before the key is read or the file hashed: `invalid_name`, as the server would answer.
    const name = parseArtifactName(values.name ?? path.basename(file), values.name !== undefined ? "--name" : "the file's base name (use --name)");
    const { secretKey, publicKey } = readPrivateKey(readSmallFile(path.resolve(io.cwd, values.key), MAX_KEY_FILE_BYTES, "private key").toString("utf8"));
    const { digestHex, size } = await sha256File(file);
    const keyId = keyIdOf(publicKey);
    const envelope = signEnvelope(buildPublishStatement({ name, digestHex, predicate: { size } }), secretKey, keyId);
    secretKey.fill(0);
    const out = values.out !== undefined ? path.resolve(io.cwd, values.out) : `${file}.sig.json`;
    writeFileAtomicSync(out, `${JSON.stringify(envelope, null, 2)}\n`);
    io.stdout(`${formatDigest(digestHex)}\nsigned '${name}' (${String(size)} bytes) with key ${keyId}; envelope written to ${out}\n`);
    return 0;
  },
};
