import * as http from "node:http";
import type { AddressInfo } from "node:net";
import type { Command } from "../../src/cli/command";
import { exitCodeFor } from "../../src/cli/exitCodes";
import { isGatewayError } from "../../src/errors";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run one command in-process the way src/cli/main.ts does (one-line error, code -> exit code). */
export async function runCli(command: Command, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const io = {
    stdout: (t: string) => {
      stdout += t;
    },
    stderr: (t: string) => {
      stderr += t;
    },
    env,
    cwd,
  };
  try {
    const code = await command.run(args, io);
    return { code, stdout, stderr };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    stderr += `modelgate ${command.name}: ${err.code}: ${err.message}\n`;
    return { code: exitCodeFor(err.code), stdout, stderr };
  }
}

/** A real server on an ephemeral loopback port. */
export async function listen(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${String(port)}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/**
 * Answer with `status` and a body that never ends (up to 1 GiB of `fill` bytes after `prefix`),
 * for clients that must stop reading; `sent()` tells how many bytes of the endless part went out.
 */
export function endlessAnswer(
  status: number,
  headers: http.OutgoingHttpHeaders,
  options: { fill?: number; prefix?: string } = {},
): { handler: http.RequestListener; sent: () => number } {
  let sent = 0;
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    res.writeHead(status, headers); // no Content-Length: chunked
    if (options.prefix !== undefined) res.write(options.prefix);
    const chunk = Buffer.alloc(64 * 1024, options.fill ?? 7);
    const pump = (): void => {
      while (!res.destroyed && sent < 1024 * 1024 * 1024) {
        sent += chunk.length;
        if (!res.write(chunk)) {
          res.once("drain", pump);
          return;
        }
      }
      res.end();
    };
    res.on("close", () => {
      res.destroy();
    });
    pump();
  };
  return { handler, sent: () => sent };
}
