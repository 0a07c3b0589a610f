import * as http from "node:http";
import * as path from "node:path";
import pino from "pino";
import { loadConfig } from "../../config";
import { GatewayError, messageOf } from "../../errors";
import { inspectPath } from "../../formats/inspectFile";
import { AllowlistHolder } from "../../reload/allowlistHolder";
import { createApp } from "../../http/app";
import { createOps, opsAppDeps } from "../../ops";
import { FsArtifactStore } from "../../store/fsStore";
import { parseCommandArgs } from "../args";
import type { Command } from "../command";
import { COMMAND_HELP } from "./help";

/**
 * Bind and resolve with the bound port once the server listens; reject on a listen error
 * (EADDRINUSE, EACCES). Not express's app.listen: in express 5 its callback also runs on an
 * error (it is registered with server.once("error")), which logged "listening" for a port
 * another process held.
 */
function listenOn(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(err);
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const address = server.address();
      resolve(typeof address === "object" && address !== null ? address.port : port);
    });
  });
}

export const serveCommand: Command = {
  ...COMMAND_HELP.serve,
  async run(args, io) {
    const { values } = parseCommandArgs(args, {
      host: { type: "string" },
      port: { type: "string" },
      data: { type: "string" },
      allowlist: { type: "string" },
    });
    const config = loadConfig(io.env, { host: values.host, port: values.port, dataDir: values.data, allowlistPath: values.allowlist });
    const logger = pino({ level: config.logLevel });
    const ops = await createOps(config.ops, logger);
    let holder: AllowlistHolder;
    try {
      const startup = ops.startupCheck(config.host);
      // Invalid allowlist at start: refuse to run (exit 2) rather than serve with no trust at all.
      holder = new AllowlistHolder(config.allowlistPath, { logger, audit: ops.audit, metrics: ops.metrics });
      logger.info({ allowlist: config.allowlistPath, sources: holder.current().sources.map((s) => s.id) }, startup);
    } catch (err) {
      await ops.close();
      throw err;
    }
    const store = new FsArtifactStore(config.dataDir);
    await store.init();
    const app = createApp({
      config,
      logger,
      now: () => new Date(),
      store,
      allowlist: holder,
      // Decompressed members go under the store's tmp/ (the uploads' volume, emptied at start),
      // not os.tmpdir(): a crash mid-inspection leaves nothing behind after a restart, and a large
      // decompression does not land on a small or RAM-backed /tmp.
      inspect: (file, options) => inspectPath(file, { ...options, tempRoot: path.join(config.dataDir, "tmp") }),
      ...opsAppDeps(ops),
    });
    const server = http.createServer(app);
    ops.applyServerTimeouts(server);
    let port: number;
    try {
      port = await listenOn(server, config.port, config.host);
    } catch (err) {
      // Port in use, or not ours to bind: nothing is served, so nothing may keep the process up
      // (no file watchers were started yet; the audit log is closed). One line, exit 2.
      holder.close();
      await ops.close();
      throw new GatewayError("io_error", `cannot listen on ${config.host}:${String(config.port)}: ${messageOf(err)}`);
    }
    logger.info({ host: config.host, port, dataDir: config.dataDir }, "modelgate listening");
    holder.watch();
    ops.watchTokens();
    await new Promise<void>((resolve, reject) => {
      server.on("error", reject);
      const onHup = (): void => {
        void holder.reload();
        void ops.reloadTokens();
      };
      process.on("SIGHUP", onHup);
      const stop = (): void => {
        process.off("SIGHUP", onHup);
        holder.close();
        // Stop accepting, let in-flight requests finish within MODELGATE_SHUTDOWN_TIMEOUT_MS, then
        // abort the rest: an aborted upload is only ever a temp file, never a visible artifact.
        ops.shutdown(server).then(() => {
          resolve();
        }, reject);
      };
      process.once("SIGTERM", stop);
      process.once("SIGINT", stop);
    });
    return 0;
  },
};
