import * as path from "node:path";
import { GatewayError } from "../../errors";
import { MAX_ENVELOPE_BYTES } from "../../limits";
import { sha256File } from "../../digest";
import { loadAllowlist, parseArtifactName, verifyPublish } from "../../trust";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { readSmallFile, resolveAllowlistPath } from "./trust";

export const verifyCommand: Command = {
  name: "verify",
  summary: "check a model file and its signature against the allowlist",
  usage: [
    "usage: modelgate verify <file> --sig <sigfile> [--name <name>] [--allowlist <path>]",
    "",
    "  --sig        DSSE envelope (as written by modelgate sign)",
    "  --name       expected artifact name (default: the statement's subject name)",
    "  --allowlist  allowlist.json (env MODELGATE_ALLOWLIST, default ./allowlist.json)",
    "",
    "  exit 0: trusted and valid (prints the source); 1: rejected (prints the code); 2: usage or I/O error",
  ].join("\n"),
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
    io.stdout(`ok: '${result.name}' sha256:${digestHex} is trusted: source '${result.source.id}', key(s) ${result.keyIds.join(", ")}\n`);
    return 0;
  },
};
