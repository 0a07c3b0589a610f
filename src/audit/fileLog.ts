import { createHash } from "node:crypto";
import { constants as fsConstants, promises as fs } from "node:fs";
import * as path from "node:path";
import { isSha256Hex } from "../digest";
import { GatewayError, messageOf } from "../errors";
import { MAX_AUDIT_LINE_BYTES } from "../limits";
import type { AuditEvent, AuditSink } from "./types";

/**
 * The hash-chained audit log: one JSON object per line, `{seq, time, prev, ...event}`, where
 * `prev` is the hex SHA-256 of the previous line's bytes (without its newline) and the first
 * entry's `prev` is 64 zeros. Editing, deleting or reordering a line breaks the chain at the
 * next entry; `verifyAuditLog` finds it. Appends are serialized and fsynced before they resolve.
 *
 * What a chain cannot show on its own: removal of the newest entries (the tail). Keep the head
 * hash `audit verify` prints somewhere else and pass it back (`--head`) to detect that.
 */

export const GENESIS_HASH = "0".repeat(64);

export interface AuditEntry extends AuditEvent {
  seq: number;
  time: string;
  prev: string;
}

export function hashLine(line: Buffer | string): string {
  return createHash("sha256").update(line).digest("hex");
}

export interface FileAuditLogOptions {
  /** Injected clock for the `time` field. */
  now?: () => Date;
}

/** What open() had to do to a log whose last line was cut by a crash. */
export interface AuditRecovery {
  /** Bytes of an incomplete last line (never acknowledged: its fsync had not returned). */
  droppedBytes: number;
  /** Where those bytes were preserved, for the operator. */
  savedTo: string;
}

export class FileAuditLog implements AuditSink {
  private queue: Promise<unknown> = Promise.resolve();
  private broken: Error | undefined;
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly handle: fs.FileHandle,
    private head: string,
    private seq: number,
    private size: number,
    private readonly now: () => Date,
    /** Set when open() cut an incomplete last line; the caller logs it. */
    readonly recovery: AuditRecovery | undefined,
  ) {}

  /**
   * Open (or create) the log and recover head hash and seq from its last line, reading
   * backwards at most MAX_AUDIT_LINE_BYTES. A last line without its newline (a crash during an
   * append that was never acknowledged) is cut off and saved beside the log; a last line that
   * is not a valid entry is `integrity_error`: the operator must look (`modelgate audit verify`).
   */
  static async open(file: string, options: FileAuditLogOptions = {}): Promise<FileAuditLog> {
    await fs.mkdir(path.dirname(path.resolve(file)), { recursive: true });
    const handle = await fs.open(file, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_APPEND, 0o640);
    try {
      let { size } = await handle.stat();
      let recovery: AuditRecovery | undefined;
      const tail = await readTail(handle, size);
      if (tail.partial.length > 0) {
        const savedTo = `${file}.partial-${Date.now().toString()}`;
        await fs.writeFile(savedTo, tail.partial);
        size -= tail.partial.length;
        await handle.truncate(size);
        await handle.sync();
        recovery = { droppedBytes: tail.partial.length, savedTo };
      }
      let head = GENESIS_HASH;
      let seq = 0;
      if (tail.lastLine !== undefined) {
        const entry = parseEntry(tail.lastLine);
        if (entry === undefined) {
          throw new GatewayError("integrity_error", `the last line of audit log ${file} is not a valid entry; run \`modelgate audit verify ${file}\``);
        }
        head = hashLine(tail.lastLine);
        seq = entry.seq;
      }
      return new FileAuditLog(file, handle, head, seq, size, options.now ?? (() => new Date()), recovery);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  /** Hash of the last written line and its seq (0 and 64 zeros for an empty log). */
  get state(): { head: string; seq: number } {
    return { head: this.head, seq: this.seq };
  }

  append(event: AuditEvent): Promise<void> {
    const run = this.queue.then(() => this.write(event));
    // The queue must survive a failed append; the failure goes to this caller only.
    this.queue = run.catch(() => undefined);
    return run;
  }

  async check(): Promise<void> {
    if (this.closed) throw new GatewayError("unavailable", "the audit log is closed");
    if (this.broken !== undefined) {
      throw new GatewayError("unavailable", `the audit log cannot be appended: ${this.broken.message}`);
    }
    try {
      await fs.access(this.file, fsConstants.W_OK);
      await this.assertSameFile();
    } catch (err) {
      throw new GatewayError("unavailable", `the audit log ${this.file} is not writable: ${messageOf(err)}`, undefined, { cause: err });
    }
  }

  private async assertSameFile(): Promise<void> {
    const [onDisk, open] = await Promise.all([fs.stat(this.file).catch(() => undefined), this.handle.stat()]);
    if (onDisk?.ino !== open.ino || onDisk.dev !== open.dev) {
      throw new GatewayError("unavailable", `the audit log ${this.file} was moved, replaced or deleted while open; restart to start a new log`);
    }
  }

  /** Wait for queued appends, then close the file. */
  async close(): Promise<void> {
    await this.queue;
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private async write(event: AuditEvent): Promise<void> {
    if (this.closed) throw new GatewayError("unavailable", "the audit log is closed");
    if (this.broken !== undefined) throw new GatewayError("unavailable", `the audit log cannot be appended: ${this.broken.message}`);
    // seq, time and prev first and never overridable by the event's own fields.
    const { type, ...rest } = event;
    const entry = { seq: this.seq + 1, time: this.now().toISOString(), prev: this.head, type, ...stripReserved(rest) };
    // The path must still name the file we hold open: after a move or delete, appends would land
    // in a file nobody reads (or verifies). Refuse instead; a restart starts a new chain.
    await this.assertSameFile();
    const line = JSON.stringify(entry);
    const bytes = Buffer.from(`${line}\n`, "utf8");
    if (bytes.length > MAX_AUDIT_LINE_BYTES) {
      throw new GatewayError("limit_exceeded", `audit entry of ${bytes.length.toString()} bytes exceeds ${MAX_AUDIT_LINE_BYTES.toString()}`);
    }
    try {
      let written = 0;
      while (written < bytes.length) {
        const { bytesWritten } = await this.handle.write(bytes, written, bytes.length - written);
        written += bytesWritten;
      }
      await this.handle.sync();
    } catch (err) {
      // Roll back a partial line so the chain stays valid; if that fails too, stop appending
      // (check() then fails /readyz and every later append is refused).
      try {
        await this.handle.truncate(this.size);
      } catch {
        this.broken = err instanceof Error ? err : new Error(String(err));
      }
      throw new GatewayError("unavailable", `audit append failed: ${messageOf(err)}`, undefined, { cause: err });
    }
    this.size += bytes.length;
    this.seq = entry.seq;
    this.head = hashLine(line);
  }
}

function stripReserved(rest: Omit<AuditEvent, "type">): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...rest };
  delete copy.seq;
  delete copy.time;
  delete copy.prev;
  return copy;
}

/** Parse one line as an entry; undefined when it is not JSON or lacks the chain fields. */
export function parseEntry(line: Buffer | string): AuditEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(typeof line === "string" ? line : line.toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.seq !== "number" || !Number.isSafeInteger(v.seq) || v.seq < 1) return undefined;
  if (typeof v.time !== "string" || typeof v.type !== "string") return undefined;
  if (typeof v.prev !== "string" || !isSha256Hex(v.prev)) return undefined;
  return v as unknown as AuditEntry;
}

/** The last complete line (without newline) and any bytes after the last newline. */
async function readTail(handle: fs.FileHandle, size: number): Promise<{ lastLine: Buffer | undefined; partial: Buffer }> {
  if (size === 0) return { lastLine: undefined, partial: Buffer.alloc(0) };
  // The partial tail and the last line are each bounded by MAX_AUDIT_LINE_BYTES.
  const want = Math.min(size, 2 * MAX_AUDIT_LINE_BYTES + 2);
  const buf = Buffer.alloc(want);
  const start = size - want;
  let got = 0;
  while (got < want) {
    const { bytesRead } = await handle.read(buf, got, want - got, start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  const window = buf.subarray(0, got);
  const lastNl = window.lastIndexOf(0x0a);
  if (lastNl < 0) {
    if (start === 0) return { lastLine: undefined, partial: window };
    throw new GatewayError("integrity_error", "the audit log ends with a line longer than any entry can be");
  }
  const partial = window.subarray(lastNl + 1);
  const prevNl = lastNl === 0 ? -1 : window.lastIndexOf(0x0a, lastNl - 1);
  if (prevNl < 0 && start > 0) {
    throw new GatewayError("integrity_error", "the last audit log line is longer than any entry can be");
  }
  return { lastLine: Buffer.from(window.subarray(prevNl + 1, lastNl)), partial: Buffer.from(partial) };
}

// ---- reading --------------------------------------------------------------------------------

/**
 * Stream a file's lines as raw bytes (no CR handling, no decoding: the chain hashes bytes), from
 * byte `start` (a line start). Yields `{line, complete, offset}` (offset: where the line starts);
 * only the last one can be incomplete (no trailing newline).
 */
async function* readLines(file: string, start = 0): AsyncGenerator<{ line: Buffer; complete: boolean; offset: number }> {
  const handle = await fs.open(file, "r");
  try {
    const chunk = Buffer.alloc(64 * 1024);
    let pending: Buffer[] = [];
    let pendingLength = 0;
    let position = start;
    let lineStart = start;
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) break;
      const chunkStart = position;
      position += bytesRead;
      let from = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, from);
        if (nl < 0 || nl >= bytesRead) break;
        const piece = chunk.subarray(from, nl);
        const line = pendingLength === 0 ? Buffer.from(piece) : Buffer.concat([...pending, piece]);
        pending = [];
        pendingLength = 0;
        yield { line, complete: true, offset: lineStart };
        from = nl + 1;
        lineStart = chunkStart + from;
      }
      if (from < bytesRead) {
        pending.push(Buffer.from(chunk.subarray(from, bytesRead)));
        pendingLength += bytesRead - from;
        if (pendingLength > MAX_AUDIT_LINE_BYTES) {
          // Longer than any entry: hand back a prefix that fails to parse (bad_json) and stop.
          yield { line: Buffer.concat(pending).subarray(0, MAX_AUDIT_LINE_BYTES), complete: true, offset: lineStart };
          return;
        }
      }
    }
    if (pendingLength > 0) yield { line: Buffer.concat(pending), complete: false, offset: lineStart };
  } finally {
    await handle.close();
  }
}

export type AuditBreakReason = "edited" | "reordered" | "truncated" | "broken_chain" | "bad_json";

export type AuditVerifyResult =
  { ok: true; count: number; head: string } | { ok: false; count: number; line: number; reason: AuditBreakReason; detail: string };

export interface VerifyOptions {
  /**
   * A head hash recorded earlier: the log must contain a line with that hash, otherwise entries
   * were cut from the end (`truncated`).
   */
  expectHead?: string;
}

/**
 * Walk the chain line by line (streaming; memory bounded by one line) and report the first
 * problem: `bad_json` (a line that is not an entry), `edited` (a line whose bytes no longer
 * hash to the next entry's `prev`), `reordered` (seq out of order), `broken_chain` (entries
 * missing in between, or a `prev` that matches nothing), `truncated` (cut at the start, an
 * incomplete last line, or missing the expected head). Line numbers are 1-based.
 */
export async function verifyAuditLog(file: string, options: VerifyOptions = {}): Promise<AuditVerifyResult> {
  let count = 0;
  let prevHash = GENESIS_HASH;
  let prevSeq = 0;
  let sawExpected = options.expectHead === undefined || options.expectHead === GENESIS_HASH;
  // One line of lookahead tells a swap (reordered) from a gap (deleted entries).
  type Parsed = { n: number; raw: Buffer; entry: AuditEntry | undefined; complete: boolean };
  let held: Parsed | undefined;
  // `count` of a failure: the entries before the broken line, all of which verified.
  const fail = (line: number, reason: AuditBreakReason, detail: string): AuditVerifyResult => ({ ok: false, count: line - 1, line, reason, detail });

  const check = (cur: Parsed, next: Parsed | undefined): AuditVerifyResult | undefined => {
    if (!cur.complete) return fail(cur.n, "truncated", "the last line is incomplete (no newline)");
    const entry = cur.entry;
    if (entry === undefined) return fail(cur.n, "bad_json", "not a JSON audit entry with seq, time, type and prev");
    if (cur.n === 1 && (entry.seq !== 1 || entry.prev !== GENESIS_HASH)) {
      return fail(1, "truncated", `the log starts at seq ${entry.seq.toString()}: earlier entries were removed`);
    }
    if (entry.seq <= prevSeq) {
      return fail(cur.n, "reordered", `seq ${entry.seq.toString()} follows seq ${prevSeq.toString()}`);
    }
    if (entry.seq > prevSeq + 1) {
      if (next?.entry !== undefined && next.entry.seq === prevSeq + 1) {
        return fail(cur.n, "reordered", `seq ${entry.seq.toString()} comes before seq ${next.entry.seq.toString()}`);
      }
      return fail(cur.n, "broken_chain", `seq jumps from ${prevSeq.toString()} to ${entry.seq.toString()}: entries were removed`);
    }
    if (entry.prev !== prevHash) {
      if (cur.n === 1) return fail(1, "broken_chain", "the first entry does not start the chain");
      return fail(cur.n - 1, "edited", `its hash no longer matches the prev of entry seq ${entry.seq.toString()}`);
    }
    return undefined;
  };

  const accept = (cur: Parsed): void => {
    count += 1;
    prevHash = hashLine(cur.raw);
    prevSeq = cur.entry?.seq ?? prevSeq;
    if (!sawExpected && prevHash === options.expectHead) sawExpected = true;
  };

  let n = 0;
  for await (const { line, complete } of readLines(file)) {
    n += 1;
    const cur: Parsed = { n, raw: line, entry: complete ? parseEntry(line) : undefined, complete };
    if (held !== undefined) {
      const problem = check(held, cur);
      if (problem) return problem;
      accept(held);
    }
    held = cur;
  }
  if (held !== undefined) {
    const problem = check(held, undefined);
    if (problem) return problem;
    accept(held);
  }
  if (!sawExpected) {
    return fail(n + 1, "truncated", "the expected head hash is not in the log: newest entries were removed");
  }
  return { ok: true, count, head: prevHash };
}

export interface AuditPage {
  entries: AuditEntry[];
  /** Pass as `since` for the next page; undefined at the end of the log. */
  next: number | undefined;
}

/** Every this many entries, readAuditEntries remembers where an entry starts. */
const SEEK_POINT_EVERY = 256;

/**
 * Where some entries of a log start: seq -> byte offset, for entries whose seq is a multiple of
 * SEEK_POINT_EVERY, learnt while reading. The log is append-only, so an offset stays right for
 * the file it was read from (same device and inode); a point is used only after checking that
 * the entry found there has the remembered seq, otherwise the log was rewritten and the points
 * are dropped. Memory: two numbers per 256 entries.
 */
interface SeekPoints {
  dev: number;
  ino: number;
  points: Map<number, number>;
}

const seekPointsByFile = new Map<string, SeekPoints>();

/** The seq a line starts with (`{"seq":N,` is how append writes every entry), without parsing the rest. */
function leadingSeq(line: Buffer): number | undefined {
  const m = /^\{"seq":(\d{1,15}),/.exec(line.subarray(0, 32).toString("latin1"));
  return m?.[1] !== undefined ? Number(m[1]) : undefined;
}

/**
 * Entries with seq > since, at most `limit`, in log order (for GET /v1/audit). Streams the
 * file from the nearest remembered entry at or before `since` (SeekPoints), so a page costs the
 * page, not the log; lines that are not entries are skipped here (verification reports them).
 */
export async function readAuditEntries(file: string, since: number, limit: number): Promise<AuditPage> {
  let stat;
  try {
    stat = await fs.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], next: undefined };
    throw err;
  }
  const key = path.resolve(file);
  let known = seekPointsByFile.get(key);
  if (known === undefined || known.dev !== stat.dev || known.ino !== stat.ino) {
    known = { dev: stat.dev, ino: stat.ino, points: new Map() };
    seekPointsByFile.set(key, known);
  }
  let startSeq = 0;
  let startOffset = 0;
  for (const [seq, offset] of known.points) {
    if (seq <= since && seq > startSeq && offset < stat.size) {
      startSeq = seq;
      startOffset = offset;
    }
  }
  const page = await readPage(file, since, limit, known, startSeq, startOffset);
  if (page !== undefined) return page;
  // The entry at the remembered offset was not the remembered one: the file was rewritten in
  // place. Forget what was learnt and read from the start.
  known.points.clear();
  return (await readPage(file, since, limit, known, 0, 0)) ?? { entries: [], next: undefined };
}

/** One page from `startOffset`; undefined when the first line there is not entry `startSeq` (when > 0). */
async function readPage(file: string, since: number, limit: number, known: SeekPoints, startSeq: number, startOffset: number): Promise<AuditPage | undefined> {
  const entries: AuditEntry[] = [];
  let first = true;
  try {
    for await (const { line, complete, offset } of readLines(file, startOffset)) {
      if (!complete) break;
      const quick = leadingSeq(line);
      if (first) {
        first = false;
        if (startSeq > 0 && quick !== startSeq) return undefined;
      }
      if (quick !== undefined && quick % SEEK_POINT_EVERY === 0) known.points.set(quick, offset);
      if (quick !== undefined && quick <= since) continue;
      const entry = parseEntry(line);
      if (entry === undefined || entry.seq <= since) continue;
      if (entries.length === limit) {
        const last = entries[entries.length - 1];
        return { entries, next: last?.seq };
      }
      entries.push(entry);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { entries, next: undefined };
    throw err;
  }
  return { entries, next: undefined };
}
