import { composeGatewayServer } from "../../compose";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";

/**
 * `modelgate serve`: parse the flags, compose the gateway (src/compose.ts), listen, and map
 * signals: SIGHUP reloads the allowlist and the tokens file, SIGTERM/SIGINT stop gracefully.
 */
export const serveCommand: Command = {
  ...COMMAND_HELP.serve,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      host: { type: "string" },
      port: { type: "string" },
      data: { type: "string" },
      allowlist: { type: "string" },
    });
    const gateway = await composeGatewayServer(io.env, { host: values.host, port: values.port, dataDir: values.data, allowlistPath: values.allowlist });
    await gateway.start();
    await new Promise<void>((resolve, reject) => {
      gateway.server.on("error", reject);
      const onHup = (): void => {
        gateway.reload();
      };
      process.on("SIGHUP", onHup);
      const stop = (): void => {
        process.off("SIGHUP", onHup);
        gateway.stop().then(resolve, reject);
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    return 0;
  },
};
