import pino from "pino";
import { loadConfig } from "../../config";
import { createApp } from "../../http/app";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";

export const serveCommand: Command = {
  name: "serve",
  summary: "run the gateway HTTP server",
  usage: [
    "usage: modelgate serve [--host <addr>] [--port <n>] [--data <dir>] [--allowlist <path>]",
    "",
    "  --host       address to bind (env HOST, default 127.0.0.1)",
    "  --port       port (env PORT, default 8080)",
    "  --data       data directory (env MODELGATE_DATA_DIR, default ./data)",
    "  --allowlist  allowlist.json (env MODELGATE_ALLOWLIST, default ./allowlist.json)",
  ].join("\n"),
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      host: { type: "string" },
      port: { type: "string" },
      data: { type: "string" },
      allowlist: { type: "string" },
    });
    const config = loadConfig(io.env, { host: values.host, port: values.port, dataDir: values.data, allowlistPath: values.allowlist });
    const logger = pino({ level: config.logLevel });
    const app = createApp({ config, logger, now: () => new Date() });
    await new Promise<void>((resolve, reject) => {
      const server = app.listen(config.port, config.host, () => {
        logger.info({ host: config.host, port: config.port }, "modelgate listening");
      });
      server.on("error", reject);
      const stop = () => server.close(() => { resolve(); });
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    return 0;
  },
};
