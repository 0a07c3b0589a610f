import * as path from "node:path";
import { GatewayError } from "../../errors";
import { MAX_ENVELOPE_BYTES } from "../../limits";
import { formatDigest, sha256File } from "../../digest";
import { loadAllowlist, parseArtifactName, verifyPublish } from "../../trust";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";
import { readSmallFile, resolveAllowlistPath } from "./trust";

export const verifyCommand: Command = {
  ...COMMAND_HELP.verify,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { sig: { type: "string" }, name: { type: "string" }, allowlist: { type: "string" } });
    const [fileArg, ...extra] = positionals;
    if (fileArg === undefined || extra.length > 0) throw new GatewayError("usage", "verify needs exactly one <file>");
    if (values.sig === undefined) throw new GatewayError("usage", "verify needs --sig <sigfile>");
    // A bad --name is refused before any file is read (`invalid_name`, exit 1), as verifyPublish would.
    if (values.name !== undefined) parseArtifactName(values.name, "--name");
    const allowlist = loadAllowlist(resolveAllowlistPath(values.allowlist, io));
    const sigFile = path.resolve(io.cwd, values.sig);
    // An oversized envelope is a verdict on the signature (exit 1), not a local I/O problem.
    const envelope = readSmallFile(sigFile, MAX_ENVELOPE_BYTES, "signature", "malformed_signature");
    const { digestHex, size } = await sha256File(path.resolve(io.cwd, fileArg));
    const result = verifyPublish({
      envelope,
      digestHex,
      size,
      allowlist,
      now: new Date(),
      ...(values.name !== undefined ? { name: values.name } : {}),
    });
    io.stdout(`ok: '${result.name}' ${formatDigest(digestHex)} is trusted: source '${result.source.id}', key(s) ${result.keyIds.join(", ")}\n`);
    return 0;
  },
};
