import * as path from "node:path";
import { verifyAuditLog } from "../../audit/fileLog";
import { GatewayError } from "../../errors";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";
import { EXIT_OK, EXIT_REJECTED } from "../exitCodes";
import { isSha256Hex } from "../../digest";

export const auditCommand: Command = {
  ...COMMAND_HELP.audit,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(args, { head: { type: "string" } });
    const [action, fileArg, ...extra] = positionals;
    if (action !== "verify") throw new GatewayError("usage", action === undefined ? "missing action: verify" : `unknown action '${action}'`);
    if (extra.length > 0) throw new GatewayError("usage", `unexpected arguments: ${extra.join(" ")}`);
    if (values.head !== undefined && !isSha256Hex(values.head)) throw new GatewayError("usage", "--head must be 64 lowercase hex characters");
    const configured = io.env.MODELGATE_AUDIT_LOG;
    const fallback = path.join(io.env.MODELGATE_DATA_DIR ?? "./data", "audit.log");
    const file = path.resolve(io.cwd, fileArg ?? (configured !== undefined && configured !== "" ? configured : fallback));
    let result;
    try {
      result = await verifyAuditLog(file, values.head !== undefined ? { expectHead: values.head } : {});
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") throw new GatewayError("io_error", `no audit log at ${file}`);
      throw err;
    }
    if (result.ok) {
      io.stdout(`ok ${file}: ${result.count.toString()} entries, head ${result.head}\n`);
      return EXIT_OK;
    }
    io.stdout(`BROKEN ${file}: line ${result.line.toString()}: ${result.reason}: ${result.detail} (${result.count.toString()} entries before it verify)\n`);
    return EXIT_REJECTED;
  },
};
