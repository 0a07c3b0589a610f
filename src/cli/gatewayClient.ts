/**
 * The HTTP client of `modelgate push` and `pull`: the gateway's URL and the API paths under it,
 * the bearer token, requests and uploads over node's http/https (not fetch), multipart framing,
 * bounded reads of the server's answers, the server's error codes, and a download written to a
 * file while it is hashed. The commands keep only their arguments and their output.
 *
 * Not fetch and not web streams: undici's fetch streams a file-backed Blob or FormData at 265-365
 * MB/s with 2.8-4.0 s of client CPU per GiB on loopback, and a download through fetch and a web
 * stream cost 3.8 CPU-s per GiB (bench/gateway.ts, issue 11); node's own http streams, with
 * buffers reused instead of allocated per read, do the same work for a fraction of that.
 * Loading only node:http (node:https for https URLs) also keeps undici out of the start-up.
 */
import { randomBytes, type Hash } from "node:crypto";
import { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import * as http from "node:http";
import * as https from "node:https";
import { z } from "zod";
import { GatewayError, messageOf, type ErrorCode } from "../errors";
import { HTTP_STATUS } from "../http/errorStatus";
import { MAX_CLIENT_REDIRECTS, MAX_SERVER_ANSWER_BYTES, MAX_SERVER_ERROR_BODY_BYTES, SERVER_IDLE_TIMEOUT_MS } from "../limits";
import type { CliIo } from "./command";
import { findingLines, printable } from "./findingLines";

// ---- URLs and credentials ----------------------------------------------------------------------

const DEFAULT_URL = "http://127.0.0.1:8080";

/** --url, else env MODELGATE_URL, else the local default; only http(s) URLs. */
export function gatewayUrl(flag: string | undefined, io: Pick<CliIo, "env">): URL {
  // An empty MODELGATE_URL (`MODELGATE_URL= modelgate push ...`) means unset, as for other tools.
  const fromEnv = io.env.MODELGATE_URL !== undefined && io.env.MODELGATE_URL !== "" ? io.env.MODELGATE_URL : undefined;
  const text = flag ?? fromEnv ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new GatewayError("usage", `--url must be an http(s) URL, got '${text}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new GatewayError("usage", `--url must be http or https, got '${url.protocol}'`);
  return url;
}

/** The API path under the base URL (a base with a path prefix, e.g. behind a proxy, is kept). */
export function apiUrl(base: URL, apiPath: string): URL {
  const url = new URL(base.toString());
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${apiPath}`;
  return url;
}

/** Bearer token from env MODELGATE_TOKEN (never from a flag: flags end up in shell history). */
export function authHeaders(io: Pick<CliIo, "env">): Record<string, string> {
  const token = io.env.MODELGATE_TOKEN;
  return token !== undefined && token !== "" ? { Authorization: `Bearer ${token}` } : {};
}

// ---- Answers -----------------------------------------------------------------------------------

/** A server's answer: status, headers, and the body as node's stream (read it, or `discard` it). */
export interface GatewayAnswer {
  readonly status: number;
  readonly body: http.IncomingMessage;
}

/** A 2xx answer. */
export function isSuccess(answer: GatewayAnswer): boolean {
  return answer.status >= 200 && answer.status < 300;
}

/** One header of the answer (the first, when repeated); undefined when absent. */
export function headerOf(answer: GatewayAnswer, name: string): string | undefined {
  const value = answer.body.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Stop reading an answer's body and close its connection (nothing more of it is wanted). */
export function discard(answer: GatewayAnswer): void {
  answer.body.destroy();
}

/**
 * The body of an answer as text, read to at most `maxBytes`: a broken or hostile server that sends
 * an endless body must not exhaust the client's memory (CWE-400). Undefined when the body is
 * longer (the connection is closed, the rest not read).
 */
export function readBodyCapped(answer: GatewayAnswer, maxBytes: number): Promise<string | undefined> {
  const body = answer.body;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > maxBytes) {
        cleanup();
        body.destroy();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks).toString("utf8"));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new GatewayError("io_error", `the server's answer was cut off: ${messageOf(err)}`));
    };
    const cleanup = (): void => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
    };
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("error", onError);
  });
}

/** readBodyCapped, parsed as JSON; undefined when too long, missing, cut off or not JSON. */
export async function readJsonCapped(answer: GatewayAnswer, maxBytes: number): Promise<unknown> {
  const text = await readBodyCapped(answer, maxBytes).catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

const ErrorBodySchema = z.object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) });

/** The part of an inspection report (a 422's `details.inspection`) the finding lines print. */
const InspectionDetailsSchema = z.object({
  inspection: z.object({
    findings: z.array(
      z.object({
        code: z.string(),
        severity: z.enum(["innocuous", "suspicious", "dangerous", "malformed"]),
        message: z.string(),
        location: z.string().optional(),
        offset: z.number().optional(),
      }),
    ),
    imports: z.array(z.object({ module: z.string(), name: z.string(), safety: z.enum(["innocuous", "unknown", "dangerous"]) })).default([]),
    omittedFindings: z.object({ count: z.number(), byCode: z.record(z.string(), z.number()) }).optional(),
  }),
});

/** An inspection refusal (422) carries the report, as large as an upload answer's; others are small. */
const INSPECTION_REFUSAL_STATUS = HTTP_STATUS.unsafe_artifact;

/**
 * Turn a non-2xx answer into the server's own code (unknown codes become `internal`). An
 * inspection refusal also lists its rejecting findings (code, member path, import), as `scan`
 * prints them, one per line after the message.
 */
export async function serverError(answer: GatewayAnswer): Promise<GatewayError> {
  const cap = answer.status === INSPECTION_REFUSAL_STATUS ? MAX_SERVER_ANSWER_BYTES : MAX_SERVER_ERROR_BODY_BYTES;
  const result = ErrorBodySchema.safeParse(await readJsonCapped(answer, cap));
  const parsed = result.success ? result.data : undefined;
  if (parsed === undefined) return new GatewayError("internal", `server answered HTTP ${String(answer.status)} without an error body`);
  const known = Object.prototype.hasOwnProperty.call(HTTP_STATUS, parsed.error.code);
  const code = (known ? parsed.error.code : "internal") as ErrorCode;
  const inspection = InspectionDetailsSchema.safeParse(parsed.error.details);
  const lines = inspection.success ? findingLines(inspection.data.inspection, { rejectingOnly: true }) : [];
  return new GatewayError(code, [printable(`${parsed.error.message} (HTTP ${String(answer.status)})`), ...lines].join("\n"));
}

const UploadResultSchema = z.object({ digest: z.string(), size: z.number(), name: z.string(), source: z.string() });

/** The answer to an accepted upload (201 stored, 200 already stored). */
export type UploadResult = z.infer<typeof UploadResultSchema> & { created: boolean };

/** The upload result of a 2xx answer, read to MAX_SERVER_ANSWER_BYTES (it carries the report); `internal` when it is not one. */
export async function readUploadResult(answer: GatewayAnswer): Promise<UploadResult> {
  const body = UploadResultSchema.safeParse(await readJsonCapped(answer, MAX_SERVER_ANSWER_BYTES));
  if (!body.success) throw new GatewayError("internal", "the server's answer is not an upload result");
  return { ...body.data, created: answer.status === 201 };
}

// ---- Requests ----------------------------------------------------------------------------------

/**
 * Bytes of one allocation made and dropped before the first request (see keepFreedHeap); at most
 * glibc's DEFAULT_MMAP_THRESHOLD_MAX (32 MiB on 64-bit), above which the threshold is not moved.
 */
const MALLOC_THRESHOLD_RAISER_BYTES = 24 * 1024 * 1024;
let heapKept = false;

/**
 * node's http client allocates two buffers per socket read of a response (the read buffer, and
 * the body chunk the parser copies out of it: 128 KiB per 64 KiB read). With glibc's default
 * malloc settings, the heap top is handed back to the kernel (trimmed) as soon as more than 128
 * KiB of it is free, so each allocation after a garbage collection faults fresh pages in again:
 * receiving 256 MiB and discarding it took 92-99k page faults and 2.6 s of CPU on this VM,
 * against 12k and 0.6 s once the heap stays (curl: 0.6k and 0.13 s). glibc raises its mmap
 * threshold to the size of a freed mmapped block, and its trim threshold to twice that
 * (mallopt(3), M_MMAP_THRESHOLD "dynamic adjustment"): one 24 MiB block, allocated and dropped
 * here, is collected at the first garbage collection and from then on the heap keeps up to 48
 * MiB of free memory. Elsewhere (musl, other allocators) it is an unused allocation, never
 * touched (allocUnsafeSlow: no page is written).
 */
function keepFreedHeap(): void {
  if (heapKept) return;
  heapKept = true;
  Buffer.allocUnsafeSlow(MALLOC_THRESHOLD_RAISER_BYTES);
}

function transportFor(url: URL): typeof http | typeof https {
  return url.protocol === "https:" ? https : http;
}

function unreachable(url: URL, err: unknown): GatewayError {
  return err instanceof GatewayError ? err : new GatewayError("io_error", `cannot reach ${url.origin}: ${messageOf(err)}`);
}

/**
 * A GET on which nothing arrives for SERVER_IDLE_TIMEOUT_MS fails, as fetch's own 300 s header and
 * body timeouts did for pull: a stalled server must not hang the CLI forever.
 */
function failWhenIdle(req: http.ClientRequest): void {
  req.setTimeout(SERVER_IDLE_TIMEOUT_MS, () => {
    req.destroy(new Error(`no data for ${String(SERVER_IDLE_TIMEOUT_MS / 1000)} s`));
  });
}

function getOnce(url: URL, headers: Record<string, string>): Promise<GatewayAnswer> {
  keepFreedHeap();
  return new Promise((resolve, reject) => {
    const req = transportFor(url).request(url, { method: "GET", headers });
    failWhenIdle(req);
    req.on("response", (res) => {
      resolve({ status: res.statusCode ?? 500, body: res });
    });
    req.on("error", (err) => {
      reject(unreachable(url, err));
    });
    req.end();
  });
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/**
 * GET `url`, following redirects as fetch did (at most MAX_CLIENT_REDIRECTS, http(s) targets
 * only; the Authorization header is not sent to another origin, as fetch drops it on a
 * cross-origin redirect). A 3xx without a Location is returned as it is.
 */
export async function getFollowingRedirects(url: URL, headers: Record<string, string>): Promise<GatewayAnswer> {
  let current = url;
  let sent = { ...headers };
  for (let redirects = 0; ; redirects += 1) {
    const answer = await getOnce(current, sent);
    const location = headerOf(answer, "location");
    if (!REDIRECT_STATUSES.has(answer.status) || location === undefined) return answer;
    discard(answer);
    if (redirects >= MAX_CLIENT_REDIRECTS)
      throw new GatewayError("io_error", `cannot reach ${url.origin}: more than ${String(MAX_CLIENT_REDIRECTS)} redirects`);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new GatewayError("io_error", `cannot reach ${url.origin}: a redirect to an invalid URL`);
    }
    if (next.protocol !== "http:" && next.protocol !== "https:")
      throw new GatewayError("io_error", `cannot reach ${url.origin}: a redirect to a ${next.protocol} URL`);
    if (next.origin !== current.origin) sent = Object.fromEntries(Object.entries(sent).filter(([name]) => name.toLowerCase() !== "authorization"));
    current = next;
  }
}

// ---- Uploads -----------------------------------------------------------------------------------

export interface FileUpload {
  method: "PUT" | "POST";
  url: URL;
  headers: Record<string, string>;
  /** Bytes sent before the file (a multipart head), if any. */
  head?: Buffer;
  /** The file sent as (the rest of) the body, read from disk. */
  file: string;
  /** Bytes sent after the file (a multipart tail), if any. */
  tail?: Buffer;
}

/**
 * Bytes of each read from the file being uploaded, and how many such buffers are in flight (read
 * ahead, or handed to the socket and not yet written). The buffers are reused: allocating a fresh
 * one per read cost this client more in page faults and garbage collection than the copy to the
 * socket (profile in issue 11's report).
 */
const UPLOAD_READ_BYTES = 2 * 1024 * 1024;
const UPLOAD_BUFFERS = 4;

/**
 * Sends a file as a request body with a Content-Length (the server refuses an oversized upload
 * from the header, before a byte is stored). The answer may come before the whole body was sent
 * (an early refusal): the rest is not sent, and the request ends once the answer is read.
 */
export async function uploadFile(upload: FileUpload): Promise<GatewayAnswer> {
  const cannotRead = (err: unknown): GatewayError => new GatewayError("io_error", `cannot read ${upload.file}: ${messageOf(err)}`);
  let file: FileHandle;
  let size: number;
  try {
    file = await fsp.open(upload.file, "r");
  } catch (err) {
    throw cannotRead(err);
  }
  try {
    size = (await file.stat()).size;
  } catch (err) {
    await file.close();
    throw cannotRead(err);
  }
  const head = upload.head ?? Buffer.alloc(0);
  const tail = upload.tail ?? Buffer.alloc(0);
  keepFreedHeap();
  return new Promise<GatewayAnswer>((resolve, reject) => {
    const req = transportFor(upload.url).request(upload.url, {
      method: upload.method,
      headers: { ...upload.headers, "Content-Length": String(head.length + size + tail.length) },
    });
    // No idle timeout here: after the last byte the server inspects the artifact before it
    // answers, which may take minutes (the pickle time budget), as it always could.
    let settled = false;
    let closed = false;
    const closeFile = (): void => {
      if (closed) return;
      closed = true;
      // A read still in flight finishes first: a FileHandle closes once its operations are done.
      file.close().catch(() => undefined);
    };
    const fail = (err: GatewayError): void => {
      if (settled) return;
      settled = true;
      closeFile();
      req.destroy();
      reject(err);
    };
    req.on("response", (res) => {
      if (settled) return;
      settled = true;
      // Answered: stop sending (an early refusal need not wait for the rest of the file).
      closeFile();
      // Once the answer is read, the request is over even if its body was cut short.
      res.on("close", () => {
        req.destroy();
      });
      resolve({ status: res.statusCode ?? 500, body: res });
    });
    req.on("error", (err) => {
      fail(unreachable(upload.url, err));
    });

    // Read ahead into a few reused buffers; a buffer returns to the pool when the socket wrote it.
    const free: Buffer[] = Array.from({ length: UPLOAD_BUFFERS }, () => Buffer.allocUnsafe(UPLOAD_READ_BYTES));
    let position = 0;
    let reading = false;
    // Read through a call: `settled` changes while a read is awaited.
    const answered = (): boolean => settled;
    const pump = async (): Promise<void> => {
      if (reading) return;
      reading = true;
      try {
        while (!settled && position < size) {
          const buffer = free.pop();
          if (buffer === undefined) return;
          const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - position), position);
          if (answered()) return;
          if (bytesRead === 0) throw new Error(`the file ended after ${String(position)} of ${String(size)} bytes`);
          position += bytesRead;
          req.write(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead), () => {
            free.push(buffer);
            void pump();
          });
        }
        if (!settled && position >= size && !req.writableEnded) {
          closeFile();
          req.end(tail);
        }
      } catch (err) {
        fail(cannotRead(err));
      } finally {
        reading = false;
      }
    };
    if (head.length > 0) req.write(head);
    void pump();
  });
}

/** A quoted-string value for Content-Disposition, escaped as browsers and undici's FormData do. */
function dispositionValue(value: string): string {
  return value.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");
}

/**
 * The multipart/form-data framing of an upload around its streamed file: the `signature` part
 * first (the server preflights it before the artifact's body), then `name` when given, then the
 * head of the `artifact` file part; `tail` closes it. The boundary is random, so no part's bytes
 * contain it by chance.
 */
export function multipartAround(
  fields: { signature: string; name?: string | undefined },
  fileName: string,
): { contentType: string; head: Buffer; tail: Buffer } {
  const boundary = `----modelgate-${randomBytes(16).toString("hex")}`;
  const field = (name: string, value: string): string => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const head = Buffer.from(
    field("signature", fields.signature) +
      (fields.name !== undefined ? field("name", fields.name) : "") +
      `--${boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="${dispositionValue(fileName)}"\r\n` +
      "Content-Type: application/octet-stream\r\n\r\n",
    "utf8",
  );
  return { contentType: `multipart/form-data; boundary=${boundary}`, head, tail: Buffer.from(`\r\n--${boundary}--\r\n`, "utf8") };
}

// ---- Downloads ---------------------------------------------------------------------------------

/**
 * Bytes gathered before one write to the downloaded file, and how many such buffers may wait for
 * the disk (4 MiB in all, bounded per download): a few hundred KiB per write instead of one per
 * 64 KiB socket read, but not more. Since Linux 6.16, ext4 sizes page-cache folios by the write:
 * a 4 MiB write takes 2 MiB folios, high-order blocks that on this VM the host has taken back, so
 * the kernel's copy into them ran at ~280 MB/s (41% of pull's CPU samples, perf), where curl's
 * 16 KiB writes land in recently freed small pages ten times faster. Measured on 256 MiB pulls,
 * wall time: 4 MiB writes 4.4-5.6 s, 1 MiB 1.6-3.5 s, 512 KiB 1.4-2.4 s, 256 KiB 1.3-2.2 s,
 * 128 KiB 1.5-2.0 s, 64 KiB 2.7-3.4 s.
 */
const DOWNLOAD_WRITE_BYTES = 256 * 1024;
const DOWNLOAD_BUFFERS = 16;

/**
 * Every this many bytes written, an fdatasync of the file starts in the background (at most one
 * at a time), so the disk works while the bytes still arrive and the fsync before the rename is
 * short (the same reasoning as the store's temp files, src/store/hashing.ts).
 */
const DOWNLOAD_SYNC_EVERY_BYTES = 16 * 1024 * 1024;

/** Why a download stopped: more bytes than allowed, or the connection or the disk failed. */
export class DownloadError extends Error {
  constructor(
    readonly reason: "too_large" | "interrupted",
    message: string,
    readonly written: number,
  ) {
    super(message);
  }
}

/**
 * Receives `answer`'s body into `file` (opened by the caller, who closes it) and feeds every byte
 * into `hash` in the same pass. Fails with a DownloadError `too_large` as soon as more than
 * `maxBytes` arrived (the connection is closed; an endless body cannot fill the disk), or
 * `interrupted` when the connection or a write fails; the bytes received before an interruption
 * are written first, so a rerun can resume after them. Resolves with the bytes written.
 */
export function receiveToFile(answer: GatewayAnswer, file: FileHandle, options: { maxBytes: number; hash: Hash }): Promise<number> {
  const body = answer.body;
  const { maxBytes, hash } = options;
  return new Promise((resolve, reject) => {
    const free: Buffer[] = Array.from({ length: DOWNLOAD_BUFFERS }, () => Buffer.allocUnsafe(DOWNLOAD_WRITE_BYTES));
    const full: { buffer: Buffer; length: number }[] = [];
    let current: Buffer | undefined = free.pop();
    let used = 0;
    /** A piece of a chunk that did not fit while every buffer waited for the disk. */
    let pending: Buffer | undefined;
    let received = 0;
    let written = 0;
    let unsynced = 0;
    let writing = false;
    let syncing = false;
    let ended = false;
    let failure: DownloadError | undefined;
    let settled = false;

    const settle = (): void => {
      if (settled || writing || syncing) return;
      if (failure !== undefined) {
        settled = true;
        reject(failure);
      } else if (ended && full.length === 0 && used === 0) {
        settled = true;
        resolve(written);
      }
    };
    const stopReceiving = (): void => {
      body.off("data", onData);
      body.off("end", onEnd);
    };
    const fail = (reason: DownloadError["reason"], message: string, keepReceived: boolean): void => {
      if (failure !== undefined) return;
      failure = new DownloadError(reason, message, written);
      stopReceiving();
      body.destroy();
      // What arrived before an interruption is still written (a rerun resumes after it); bytes
      // beyond the bound are not.
      if (!keepReceived) full.length = 0;
      else if (current !== undefined && used > 0) full.push({ buffer: current, length: used });
      current = undefined;
      used = 0;
      pending = undefined;
      flush();
      settle();
    };
    const syncInBackground = (): void => {
      unsynced = 0;
      syncing = true;
      file.datasync().then(
        () => {
          syncing = false;
          settle();
        },
        (err: unknown) => {
          syncing = false;
          fail("interrupted", `cannot write the file: ${messageOf(err)}`, false);
        },
      );
    };
    /** One write at a time, in order, at the file's position (appends after a resumed prefix). */
    const flush = (): void => {
      if (writing) return;
      const next = full.shift();
      if (next === undefined) {
        settle();
        return;
      }
      writing = true;
      const writeAll = async (): Promise<void> => {
        let offset = 0;
        while (offset < next.length) offset += (await file.write(next.buffer, offset, next.length - offset)).bytesWritten;
      };
      writeAll().then(
        () => {
          writing = false;
          written += next.length;
          unsynced += next.length;
          free.push(next.buffer);
          if (failure === undefined) {
            if (unsynced >= DOWNLOAD_SYNC_EVERY_BYTES && !syncing && !ended) syncInBackground();
            if (pending !== undefined) {
              const rest = pending;
              pending = undefined;
              if (take(rest) && !ended) body.resume();
            }
            if (ended && current !== undefined && used > 0) {
              full.push({ buffer: current, length: used });
              current = undefined;
              used = 0;
            }
          }
          flush();
        },
        (err: unknown) => {
          writing = false;
          fail("interrupted", `cannot write the file: ${messageOf(err)}`, false);
        },
      );
    };
    /**
     * Copies `chunk` into the current buffer, queueing full buffers for the disk; keeps what does
     * not fit in `pending` and returns false then (the body must wait).
     */
    const take = (chunk: Buffer): boolean => {
      let offset = 0;
      while (offset < chunk.length) {
        if (current === undefined) {
          current = free.pop();
          if (current === undefined) {
            pending = chunk.subarray(offset);
            return false;
          }
        }
        const n = chunk.copy(current, used, offset);
        used += n;
        offset += n;
        if (used === current.length) {
          full.push({ buffer: current, length: used });
          current = undefined;
          used = 0;
          flush();
        }
      }
      return true;
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > maxBytes) {
        fail("too_large", `more than the ${String(maxBytes)} bytes expected`, false);
        return;
      }
      hash.update(chunk);
      if (!take(chunk)) body.pause();
    };
    const onEnd = (): void => {
      ended = true;
      stopReceiving();
      if (pending === undefined && current !== undefined && used > 0) {
        full.push({ buffer: current, length: used });
        current = undefined;
        used = 0;
      }
      flush();
    };
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("error", (err) => {
      fail("interrupted", messageOf(err), true);
    });
    // A connection closed before the end without an 'error' (node emits 'aborted' then 'error' on
    // a cut Content-Length body; this catches any other early close).
    body.on("close", () => {
      if (!ended) fail("interrupted", "the connection closed before the end of the body", true);
    });
  });
}
