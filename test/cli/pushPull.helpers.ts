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
