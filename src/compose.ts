import * as http from "node:http";
import * as path from "node:path";
import pino, { type Logger } from "pino";
import { loadConfig, type Config, type ConfigOverrides } from "./config";
import { GatewayError, messageOf } from "./errors";
import { AllowlistHolder } from "./reload/allowlistHolder";
import { createApp } from "./http/app";
import { InspectWorkerPool } from "./inspect/workerPool";
import { createOps, opsAppDeps, type Ops } from "./ops";
import { FsArtifactStore } from "./store/fsStore";

/**
 * The composition root of the gateway server: the one place that builds everything `serve` runs
 * (configuration, logger, operations, the reloadable allowlist, the store, the inspection worker
 * pool, the express app and the HTTP server) and knows the order in which they start and stop.
 * `modelgate serve` parses its flags, composes, starts and maps signals; nothing else wires.
 */
export interface GatewayServer {
  readonly config: Config;
  readonly logger: Logger;
  readonly server: http.Server;
  readonly inspectors: InspectWorkerPool;
  /**
   * Bind, log "modelgate listening", then start watching the allowlist and tokens files.
   * Resolves with the bound port. A listen error (EADDRINUSE, EACCES) releases everything that
   * was built (nothing may keep the process up) and throws `io_error`.
   */
  start(): Promise<number>;
  /** Re-read the allowlist and the tokens file (SIGHUP). */
  reload(): void;
  /**
   * Graceful stop: stop accepting, let requests in flight finish within
   * MODELGATE_SHUTDOWN_TIMEOUT_MS (their inspections included), destroy the rest, close the audit
   * log, then terminate the inspection workers. Safe to call twice.
   */
  stop(): Promise<void>;
}

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

/** Build the gateway server from the environment and `serve`'s flags; nothing listens yet. */
export async function composeGatewayServer(env: NodeJS.ProcessEnv, overrides: ConfigOverrides = {}): Promise<GatewayServer> {
  const config = loadConfig(env, overrides);
  const logger = pino({ level: config.logLevel });
  const ops: Ops = await createOps(config.ops, logger);
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
  const inspectors = new InspectWorkerPool({
    size: config.inspect.workers,
    memoryMb: config.inspect.workerMemoryMb,
    // Decompressed members go under the store's tmp/ (the uploads' volume, emptied at start),
    // not os.tmpdir(): a crash mid-inspection leaves nothing behind after a restart, and a large
    // decompression does not land on a small or RAM-backed /tmp.
    tempRoot: path.join(config.dataDir, "tmp"),
    onWorkerLost: ({ reason, detail, file }) => {
      const log = { reason, file: path.basename(file), err: detail };
      if (reason === "crash") logger.error(log, "inspection worker lost; replaced");
      else logger.warn(log, "inspection worker stopped; artifact refused; replaced");
    },
  });
  // Aborted when the graceful stop's time is up: the upload route cancels the inspections of the
  // uploads still in flight (their workers are terminated), as when their client hangs up.
  const stopping = new AbortController();
  const app = createApp({
    config,
    logger,
    now: () => new Date(),
    store,
    allowlist: holder,
    inspect: inspectors.inspect,
    stopping: stopping.signal,
    ...opsAppDeps(ops),
  });
  const server = http.createServer(app);
  ops.applyServerTimeouts(server);

  let stopped: Promise<void> | undefined;
  return {
    config,
    logger,
    server,
    inspectors,
    async start() {
      let port: number;
      try {
        port = await listenOn(server, config.port, config.host);
      } catch (err) {
        // Port in use, or not ours to bind: nothing is served, so nothing may keep the process up
        // (no file watchers were started yet; the audit log is closed). One line, exit 2.
        holder.close();
        await ops.close();
        await inspectors.close();
        throw new GatewayError("io_error", `cannot listen on ${config.host}:${String(config.port)}: ${messageOf(err)}`);
      }
      logger.info({ host: config.host, port, dataDir: config.dataDir, inspectWorkers: config.inspect.workers }, "modelgate listening");
      holder.watch();
      ops.watchTokens();
      return port;
    },
    reload() {
      void holder.reload();
      void ops.reloadTokens();
    },
    stop() {
      stopped ??= (async () => {
        holder.close();
        // Stop accepting, let in-flight requests finish within MODELGATE_SHUTDOWN_TIMEOUT_MS, then
        // abort the rest: an aborted upload is only ever a temp file, never a visible artifact.
        // The workers go last: the requests that finished in time needed them.
        const deadline = setTimeout(() => {
          stopping.abort(new GatewayError("unavailable", "the server is stopping"));
        }, config.ops.shutdownTimeoutMs);
        deadline.unref();
        try {
          await ops.shutdown(server);
        } finally {
          clearTimeout(deadline);
          await inspectors.close();
        }
      })();
      return stopped;
    },
  };
}
