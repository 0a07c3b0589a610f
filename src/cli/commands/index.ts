import type { Command } from "../command";
import { COMMAND_HELP, type CommandHelp } from "./help";

/**
 * One row of the command table: the help texts (from help.ts, light) and a loader that brings
 * in the command's module, and so its module graph, only when that command runs. Importing every
 * command up front cost every `scan`/`push`/`pull` the ~590 modules of express, multer,
 * prom-client, pino and lzma-native that only `serve` (and xz/lzma decoding) use.
 */
export interface CommandEntry extends CommandHelp {
  load(): Promise<Command>;
}

export const commands: readonly CommandEntry[] = [
  { ...COMMAND_HELP.serve, load: async () => (await import("./serve")).serveCommand },
  { ...COMMAND_HELP.keygen, load: async () => (await import("./keygen")).keygenCommand },
  { ...COMMAND_HELP.sign, load: async () => (await import("./sign")).signCommand },
  { ...COMMAND_HELP.verify, load: async () => (await import("./verify")).verifyCommand },
  { ...COMMAND_HELP.trust, load: async () => (await import("./trust")).trustCommand },
  { ...COMMAND_HELP.push, load: async () => (await import("./push")).pushCommand },
  { ...COMMAND_HELP.pull, load: async () => (await import("./pull")).pullCommand },
  { ...COMMAND_HELP.scan, load: async () => (await import("./scan")).scanCommand },
  { ...COMMAND_HELP.token, load: async () => (await import("./token")).tokenCommand },
  { ...COMMAND_HELP.audit, load: async () => (await import("./audit")).auditCommand },
];
