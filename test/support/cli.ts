import type { CliIo } from "../../src/cli/command";
import { commands } from "../../src/cli/commands";
import { exitCodeFor } from "../../src/cli/exitCodes";
import { isGatewayError } from "../../src/errors";

export interface CliRun {
  /** The exit code the binary would return. */
  code: number;
  stdout: string;
  stderr: string;
  /** The GatewayError code printed on stderr, if the command failed with one. */
  errorCode: string | undefined;
}

export interface CliOptions {
  /** The command's whole environment (nothing of the test process leaks in); default empty. */
  env?: NodeJS.ProcessEnv;
  /** The working directory relative paths resolve against; default the test process's. */
  cwd?: string;
}

/**
 * Run `modelgate <argv>` in-process, the way src/cli/main.ts does: the command is looked up in
 * main's command table and loaded alone (commands/index.ts), a GatewayError becomes the one
 * line `modelgate <cmd>: <code>: <message>` and its exit code (exitCodes.ts). Any other thrown
 * value is rethrown, so that a bug fails the test instead of becoming main's "internal" exit 2.
 */
export async function runCli(argv: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  const [name, ...args] = argv;
  const entry = commands.find((c) => c.name === name);
  if (!entry) throw new Error(`no such command: ${String(name)}`);
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
  };
  const command = await entry.load();
  try {
    const code = await command.run(args, io);
    return { code, stdout, stderr, errorCode: undefined };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    stderr += `modelgate ${command.name}: ${err.code}: ${err.message}\n`;
    return { code: exitCodeFor(err.code), stdout, stderr, errorCode: err.code };
  }
}
