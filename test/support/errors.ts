import { GatewayError } from "../../src/errors";

/**
 * The code a call fails with: the GatewayError's code, a marker naming any other thrown value
 * (so a test shows what escaped the typed errors), or undefined when the call did not throw.
 */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not-a-gateway-error: ${String(err)}`;
  }
  return undefined;
}

/** codeOf for a promise: the code it rejects with, the marker of a non-GatewayError, or undefined when it resolves. */
export async function codeOfSettled(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return err instanceof GatewayError ? err.code : `not-a-gateway-error: ${String(err)}`;
  }
  return undefined;
}
