import type { Command } from "../../src/cli/command";
import { exitCodeFor } from "../../src/cli/exitCodes";
import { auditCommand } from "../../src/cli/commands/audit";
import { tokenCommand } from "../../src/cli/commands/token";
import { isGatewayError } from "../../src/errors";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

const COMMANDS: readonly Command[] = [tokenCommand, auditCommand];

/**
 * Run one command in-process the way src/cli/main.ts does (GatewayError -> one line + exit code
 * through exitCodes.ts), without importing every other command.
 */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}, cwd = process.cwd()): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const io = { stdout: (t: string) => (stdout += t), stderr: (t: string) => (stderr += t), env, cwd };
  const [name, ...rest] = argv;
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new Error(`no such command in harness: ${String(name)}`);
  let code: number;
  try {
    code = await command.run(rest, io);
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    io.stderr(`modelgate ${command.name}: ${err.code}: ${err.message}\n`);
    code = exitCodeFor(err.code);
  }
  return { code, stdout, stderr };
}
