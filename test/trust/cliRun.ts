import { isGatewayError } from "../../src/errors";
import type { CliIo, Command } from "../../src/cli/command";
import { exitCodeFor } from "../../src/cli/exitCodes";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The GatewayError code printed on stderr, if any. */
  errorCode: string | undefined;
}

/**
 * Run one command in-process the way src/cli/main.ts does (one-line error, exit code from the
 * error code), without importing main.ts and with it every other command.
 */
export async function runCommand(command: Command, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env, cwd };
  try {
    const code = await command.run(args, io);
    return { code, stdout, stderr, errorCode: undefined };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    stderr += `modelgate ${command.name}: ${err.code}: ${err.message}\n`;
    return { code: exitCodeFor(err.code), stdout, stderr, errorCode: err.code };
  }
}
