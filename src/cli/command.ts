/**
 * One CLI command. `run` returns the exit code: 0 success, 1 rejection (the artifact or
 * signature was refused), 2 usage or I/O error. Errors thrown as GatewayError are printed as one
 * line `modelgate <cmd>: <code>: <message>` by main.ts and mapped through exitCodes.ts.
 */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface Command {
  name: string;
  summary: string;
  /** Full usage text printed by `modelgate <name> --help`. */
  usage: string;
  run(args: string[], io: CliIo): Promise<number>;
}
