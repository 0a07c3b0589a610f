import type { Command } from "../command";
import { auditCommand } from "./audit";
import { keygenCommand } from "./keygen";
import { pullCommand } from "./pull";
import { pushCommand } from "./push";
import { scanCommand } from "./scan";
import { serveCommand } from "./serve";
import { signCommand } from "./sign";
import { tokenCommand } from "./token";
import { trustCommand } from "./trust";
import { verifyCommand } from "./verify";

export const commands: readonly Command[] = [
  serveCommand,
  keygenCommand,
  signCommand,
  verifyCommand,
  trustCommand,
  pushCommand,
  pullCommand,
  scanCommand,
  tokenCommand,
  auditCommand,
];
