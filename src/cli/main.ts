import { GatewayError, isGatewayError, messageOf } from "../errors";
import type { CliIo } from "./command";
import { EXIT_USAGE, exitCodeFor } from "./exitCodes";
import { commands, type CommandEntry } from "./commands";

function topUsage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return ["usage: modelgate <command> [options]", "", "commands:", ...lines, "", "Run `modelgate <command> --help` for a command's options.", ""].join("\n");
}

export function defaultIo(): CliIo {
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    cwd: process.cwd(),
  };
}

/** Entry point of the `modelgate` binary; returns the process exit code. */
export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout(topUsage());
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command: CommandEntry | undefined = commands.find((c) => c.name === name);
  if (!command) {
    io.stderr(`modelgate: unknown command '${name}'\n${topUsage()}`);
    return EXIT_USAGE;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(command.usage.endsWith("\n") ? command.usage : `${command.usage}\n`);
    return 0;
  }
  try {
    // Only the chosen command's module graph is loaded (see commands/index.ts).
    return await (await command.load()).run(rest, io);
  } catch (err) {
    if (isGatewayError(err)) {
      io.stderr(`modelgate ${name}: ${err.code}: ${err.message}\n`);
      if (err.code === "usage") io.stderr(`${command.usage.split("\n")[0] ?? ""}\n`);
      return exitCodeFor(err.code);
    }
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code === "string" && typeof e.syscall === "string") {
      io.stderr(`modelgate ${name}: io_error: ${messageOf(err)}\n`);
      return EXIT_USAGE;
    }
    io.stderr(`modelgate ${name}: internal: ${messageOf(err)}\n`);
    return EXIT_USAGE;
  }
}

export { GatewayError };
