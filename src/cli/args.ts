import { parseArgs, type ParseArgsConfig } from "node:util";
import { GatewayError, messageOf } from "../errors";

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * node:util parseArgs with modelgate's conventions: unknown flags are a `usage` error, `--help`
 * is always accepted. Callers validate the values with zod.
 */
export function parseCommandArgs<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new GatewayError("usage", messageOf(err));
  }
}
