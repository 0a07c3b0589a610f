import { GatewayError, type ErrorCode } from "../../src/errors";

/**
 * `toFailWithCode`: "this fails with that GatewayError code", registered for every suite through
 * jest.config.js (setupFilesAfterEnv). Three forms, one meaning:
 *
 *   await expect(promise).toFailWithCode("digest_mismatch");   // rejects with GatewayError("digest_mismatch")
 *   expect(() => parse(text)).toFailWithCode("bad_request");    // throws GatewayError("bad_request")
 *   expect(res).toFailWithCode("untrusted_source", 403);        // an HTTP answer {error: {code}} (and status)
 *
 * A thrown value that is not a GatewayError never matches, whatever its `code` property says.
 */

interface HttpAnswer {
  status: number;
  body: unknown;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as { then?: unknown }).then === "function";
}

function isHttpAnswer(value: unknown): value is HttpAnswer {
  return typeof value === "object" && value !== null && typeof (value as { status?: unknown }).status === "number" && "body" in value;
}

/** The `error.code` of a gateway answer body (an object, or its JSON text), or undefined. */
function answerCode(body: unknown): unknown {
  let parsed = body;
  if (typeof body === "string" || Buffer.isBuffer(body)) {
    try {
      parsed = JSON.parse(body.toString());
    } catch {
      return undefined;
    }
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const error = (parsed as { error?: unknown }).error;
  return typeof error === "object" && error !== null ? (error as { code?: unknown }).code : undefined;
}

function judgeThrown(ctx: jest.MatcherContext, thrown: unknown, code: string, how: string): jest.CustomMatcherResult {
  const pass = thrown instanceof GatewayError && thrown.code === code;
  const found =
    thrown instanceof GatewayError ? `GatewayError ${ctx.utils.printReceived(thrown.code)}: ${thrown.message}` : `a non-GatewayError: ${String(thrown)}`;
  return {
    pass,
    message: () =>
      pass
        ? `expected ${how} not to fail with code ${ctx.utils.printExpected(code)}, but it did`
        : `expected ${how} to fail with code ${ctx.utils.printExpected(code)}, but it failed with ${found}`,
  };
}

function notFailed(ctx: jest.MatcherContext, code: string, how: string): jest.CustomMatcherResult {
  return { pass: false, message: () => `expected ${how} to fail with code ${ctx.utils.printExpected(code)}, but it did not fail` };
}

function toFailWithCode(
  this: jest.MatcherContext,
  received: unknown,
  code: ErrorCode,
  status?: number,
): jest.CustomMatcherResult | Promise<jest.CustomMatcherResult> {
  if (typeof received === "function") {
    let returned: unknown;
    try {
      returned = (received as () => unknown)();
    } catch (err) {
      return judgeThrown(this, err, code, "the call");
    }
    if (isThenable(returned)) {
      // Without this, a rejected promise would be "did not fail" and an unhandled rejection.
      returned.then(undefined, () => undefined);
      return { pass: false, message: () => "the function returned a promise: write `await expect(promise).toFailWithCode(...)`" };
    }
    return notFailed(this, code, "the call");
  }
  if (isThenable(received)) {
    return Promise.resolve(received).then(
      () => notFailed(this, code, "the promise"),
      (err: unknown) => judgeThrown(this, err, code, "the promise"),
    );
  }
  if (isHttpAnswer(received)) {
    const answered = answerCode(received.body);
    const pass = answered === code && (status === undefined || received.status === status);
    const wanted = status === undefined ? this.utils.printExpected(code) : `${this.utils.printExpected(code)} and status ${this.utils.printExpected(status)}`;
    return {
      pass,
      message: () =>
        `expected the answer ${pass ? "not " : ""}to fail with code ${wanted}; it answered status ${this.utils.printReceived(received.status)} with code ${this.utils.printReceived(answered)}`,
    };
  }
  return { pass: false, message: () => `toFailWithCode takes a function, a promise or an HTTP answer; got ${this.utils.printReceived(received)}` };
}

expect.extend({ toFailWithCode });

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- augmenting @types/jest's namespace
  namespace jest {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- must match @types/jest's declaration
    interface Matchers<R, T = {}> {
      /**
       * Fails with this GatewayError code: a function that throws, a promise that rejects (await
       * the expectation), or an HTTP answer whose body is `{error: {code}}` (and whose status is
       * `status`, when given).
       */
      toFailWithCode(code: ErrorCode, status?: number): T extends PromiseLike<unknown> ? Promise<R> : R;
    }
  }
}
