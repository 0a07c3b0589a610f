import { createHash, randomBytes } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import type * as http from "node:http";
import { PassThrough } from "node:stream";
import { DownloadError, receiveToFile, type GatewayAnswer } from "../../src/cli/gatewayClient";

/**
 * receiveToFile gathers a download into a pool of buffers and writes them one at a time while the
 * next bytes arrive. A disk slower than the network fills the pool: the body must wait, and every
 * byte must still reach the file once, in order.
 */

/** A FileHandle stand-in that records what is written, each write taking `delayMs`. */
function slowFile(delayMs: number): { handle: FileHandle; written: () => Buffer; syncs: () => number } {
  const parts: Buffer[] = [];
  let syncs = 0;
  const handle = {
    write: async (buffer: Buffer, offset: number, length: number) => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      // Short writes: at most 100 000 bytes at a time, the caller must write the rest.
      const n = Math.min(length, 100_000);
      parts.push(Buffer.from(buffer.subarray(offset, offset + n)));
      return { bytesWritten: n, buffer };
    },
    datasync: async () => {
      syncs += 1;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    },
  };
  return { handle: handle as unknown as FileHandle, written: () => Buffer.concat(parts), syncs: () => syncs };
}

function answerOf(body: PassThrough): GatewayAnswer {
  return { status: 200, body: body as unknown as http.IncomingMessage };
}

/** Writes `bytes` into `body` in chunks of random sizes up to 200 KiB, honouring backpressure. */
async function feed(body: PassThrough, bytes: Buffer, end = true): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const n = Math.min(bytes.length - offset, 1 + Math.floor(Math.random() * 200 * 1024));
    if (!body.write(bytes.subarray(offset, offset + n))) await new Promise((resolve) => body.once("drain", resolve));
    offset += n;
  }
  if (end) body.end();
}

describe("receiveToFile", () => {
  it("writes every byte once and in order, and hashes them, when the disk is slower than the body", async () => {
    const bytes = randomBytes(9 * 1024 * 1024 + 77);
    const body = new PassThrough({ highWaterMark: 64 * 1024 });
    const file = slowFile(2);
    const hash = createHash("sha256");
    const receiving = receiveToFile(answerOf(body), file.handle, { maxBytes: bytes.length, hash });
    await feed(body, bytes);
    expect(await receiving).toBe(bytes.length);
    expect(Buffer.compare(file.written(), bytes)).toBe(0);
    expect(hash.digest("hex")).toBe(createHash("sha256").update(bytes).digest("hex"));
  });

  it("fails too_large as soon as more than maxBytes arrived, writing nothing past the bound", async () => {
    const bytes = randomBytes(3 * 1024 * 1024);
    const body = new PassThrough();
    const file = slowFile(0);
    const receiving = receiveToFile(answerOf(body), file.handle, { maxBytes: 1024 * 1024, hash: createHash("sha256") });
    void feed(body, bytes).catch(() => undefined);
    await expect(receiving).rejects.toMatchObject({ reason: "too_large" });
    expect(file.written().length).toBeLessThanOrEqual(1024 * 1024);
    expect(body.destroyed).toBe(true);
  });

  it("on an interrupted body, writes the bytes received before failing (a rerun resumes after them)", async () => {
    const bytes = randomBytes(1024 * 1024 + 5);
    const body = new PassThrough();
    const file = slowFile(1);
    const receiving = receiveToFile(answerOf(body), file.handle, { maxBytes: 4 * bytes.length, hash: createHash("sha256") });
    await feed(body, bytes, false);
    await new Promise((resolve) => setImmediate(resolve));
    body.destroy(new Error("connection reset"));
    const err: unknown = await receiving.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).reason).toBe("interrupted");
    expect(Buffer.compare(file.written(), bytes)).toBe(0);
  });
});
