import type { ReadableStream as WebReadableStream } from "node:stream/web";

/**
 * The body of a gateway answer as text, read to at most `maxBytes`: a broken or hostile server
 * that sends an endless body must not exhaust the client's memory (CWE-400). Undefined when the
 * body is longer (the rest is cancelled, not read) or missing.
 */
export async function readBodyCapped(res: Response, maxBytes: number): Promise<string | undefined> {
  const body = res.body;
  if (body === null) return undefined;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body as WebReadableStream<Uint8Array>) {
    total += chunk.length;
    if (total > maxBytes) {
      await body.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** readBodyCapped, parsed as JSON; undefined when too long, missing or not JSON. */
export async function readJsonCapped(res: Response, maxBytes: number): Promise<unknown> {
  const text = await readBodyCapped(res, maxBytes);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
