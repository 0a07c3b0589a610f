import { appendFile, chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { FileAuditLog, GENESIS_HASH, hashLine, parseEntry, readAuditEntries, verifyAuditLog } from "../../src/audit/fileLog";
import type { AuditEvent } from "../../src/audit/types";

let dir: string;
let file: string;
const fixedNow = () => new Date("2026-11-23T12:00:00.000Z");

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "mg-audit-"));
  file = path.join(dir, "logs", "audit.log");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function event(i: number): AuditEvent {
  return { type: "upload.accepted", digest: `sha256:${i.toString(16).padStart(64, "0")}`, name: `model-${i.toString()}`, size: i, tokenId: "ci" };
}

async function writeLog(n: number): Promise<string[]> {
  const log = await FileAuditLog.open(file, { now: fixedNow });
  for (let i = 1; i <= n; i++) await log.append(event(i));
  await log.close();
  return (await readFile(file, "utf8")).split("\n").slice(0, -1);
}

async function rewrite(lines: string[], trailingNewline = true): Promise<void> {
  await writeFile(file, lines.join("\n") + (trailingNewline && lines.length > 0 ? "\n" : ""));
}

describe("FileAuditLog", () => {
  it("writes JSON lines chained by the SHA-256 of the previous line", async () => {
    const lines = await writeLog(3);
    expect(lines).toHaveLength(3);
    const entries = lines.map((l) => parseEntry(l));
    expect(entries[0]).toMatchObject({ seq: 1, prev: GENESIS_HASH, time: "2026-11-23T12:00:00.000Z", type: "upload.accepted", name: "model-1" });
    expect(entries[1]?.prev).toBe(hashLine(lines[0]!));
    expect(entries[2]?.prev).toBe(hashLine(lines[1]!));
    expect(Object.keys(JSON.parse(lines[0]!) as object).slice(0, 4)).toEqual(["seq", "time", "prev", "type"]);
    await expect(verifyAuditLog(file)).resolves.toEqual({ ok: true, count: 3, head: hashLine(lines[2]!) });
  });

  it("never lets an event override seq, time or prev", async () => {
    const log = await FileAuditLog.open(file, { now: fixedNow });
    await log.append({ type: "admin.action", ...({ seq: 99, prev: "f".repeat(64), time: "x" } as object) });
    await log.close();
    expect(parseEntry(await readFile(file, "utf8"))).toMatchObject({ seq: 1, prev: GENESIS_HASH, time: "2026-11-23T12:00:00.000Z" });
  });

  it("recovers head and seq on reopen and continues the chain", async () => {
    await writeLog(2);
    const log = await FileAuditLog.open(file);
    expect(log.state.seq).toBe(2);
    await log.append(event(3));
    await log.close();
    const result = await verifyAuditLog(file);
    expect(result).toMatchObject({ ok: true, count: 3 });
  });

  it("keeps a valid chain under 100 concurrent appends", async () => {
    const log = await FileAuditLog.open(file);
    await Promise.all(Array.from({ length: 100 }, (_, i) => log.append(event(i + 1))));
    await log.close();
    const result = await verifyAuditLog(file);
    expect(result).toMatchObject({ ok: true, count: 100 });
    const seqs = (await readFile(file, "utf8"))
      .split("\n")
      .slice(0, -1)
      .map((l) => parseEntry(l)?.seq);
    expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  it("cuts an incomplete last line on open, saves it aside, and the chain verifies", async () => {
    await writeLog(2);
    await appendFile(file, '{"seq":3,"time":"2026');
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 3, reason: "truncated" });
    const log = await FileAuditLog.open(file);
    expect(log.recovery?.droppedBytes).toBe(21);
    expect(log.state.seq).toBe(2);
    await log.append(event(3));
    await log.close();
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: true, count: 3 });
    const saved = (await readdir(path.dirname(file))).filter((f) => f.startsWith("audit.log.partial-"));
    expect(saved).toHaveLength(1);
  });

  it("refuses to open a log whose last line is not an entry", async () => {
    const lines = await writeLog(2);
    await rewrite([...lines, "garbage"]);
    await expect(FileAuditLog.open(file)).toFailWithCode("integrity_error");
  });

  it("rejects appends and fails check() when the file cannot be written", async () => {
    const log = await FileAuditLog.open(file);
    await expect(log.check()).resolves.toBeUndefined();
    await log.close();
    await expect(log.append(event(1))).toFailWithCode("unavailable");
    await expect(log.check()).toFailWithCode("unavailable");
  });

  it("refuses appends (and check) once the log was moved away or deleted", async () => {
    const log = await FileAuditLog.open(file);
    await log.append(event(1));
    await rename(file, `${file}.1`);
    await expect(log.append(event(2))).toFailWithCode("unavailable");
    await expect(log.check()).toFailWithCode("unavailable");
    await log.close();
    await expect(verifyAuditLog(`${file}.1`)).resolves.toMatchObject({ ok: true, count: 1 });
  });

  it("check() fails when the log file is not writable", async () => {
    if (process.getuid?.() === 0) {
      // root ignores permission bits: make the path a directory instead
      const log = await FileAuditLog.open(file);
      await rm(file);
      await (await import("node:fs/promises")).mkdir(file);
      await expect(log.check()).toFailWithCode("unavailable");
      await log.close();
      return;
    }
    const log = await FileAuditLog.open(file);
    await chmod(file, 0o400);
    await expect(log.check()).toFailWithCode("unavailable");
    await log.close();
  });
});

describe("verifyAuditLog", () => {
  it("accepts an empty log", async () => {
    await writeLog(0);
    await expect(verifyAuditLog(file)).resolves.toEqual({ ok: true, count: 0, head: GENESIS_HASH });
  });

  it("reports an edited entry at its own line", async () => {
    const lines = await writeLog(5);
    lines[2] = lines[2]!.replace("model-3", "model-X");
    await rewrite(lines);
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 3, reason: "edited", count: 2 });
  });

  it("reports reordered entries", async () => {
    const lines = await writeLog(5);
    [lines[1], lines[2]] = [lines[2]!, lines[1]!];
    await rewrite(lines);
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 2, reason: "reordered" });
  });

  it("reports a deleted entry as a broken chain", async () => {
    const lines = await writeLog(5);
    lines.splice(2, 1);
    await rewrite(lines);
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 3, reason: "broken_chain" });
  });

  it("reports entries cut from the start as truncated", async () => {
    const lines = await writeLog(4);
    await rewrite(lines.slice(2));
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 1, reason: "truncated" });
  });

  it("reports entries cut from the end as truncated when the expected head is given", async () => {
    const lines = await writeLog(4);
    const head = hashLine(lines[3]!);
    await expect(verifyAuditLog(file, { expectHead: head })).resolves.toMatchObject({ ok: true, count: 4 });
    await rewrite(lines.slice(0, 3));
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: true, count: 3 });
    await expect(verifyAuditLog(file, { expectHead: head })).resolves.toMatchObject({ ok: false, reason: "truncated", line: 4 });
    // a log that grew past the recorded head still verifies against it
    await rewrite(lines);
    const log = await FileAuditLog.open(file);
    await log.append(event(5));
    await log.close();
    await expect(verifyAuditLog(file, { expectHead: head })).resolves.toMatchObject({ ok: true, count: 5 });
  });

  it("reports a byte-truncated last line and a non-JSON line", async () => {
    const lines = await writeLog(3);
    await truncate(file, Buffer.byteLength(lines.join("\n")) - 5);
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 3, reason: "truncated" });
    await rewrite([lines[0]!, "{not json", lines[2]!]);
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 2, reason: "bad_json" });
    await rewrite([lines[0]!, JSON.stringify({ seq: 2, type: "x" })]);
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 2, reason: "bad_json" });
  });

  it("hashes raw bytes: an added CR is an edit", async () => {
    const lines = await writeLog(3);
    await rewrite([lines[0]! + "\r", lines[1]!, lines[2]!]);
    await expect(verifyAuditLog(file)).resolves.toMatchObject({ ok: false, line: 1, reason: "edited" });
  });
});

describe("readAuditEntries", () => {
  it("pages by seq", async () => {
    await writeLog(5);
    const first = await readAuditEntries(file, 0, 2);
    expect(first.entries.map((e) => e.seq)).toEqual([1, 2]);
    expect(first.next).toBe(2);
    const rest = await readAuditEntries(file, 2, 10);
    expect(rest.entries.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(rest.next).toBeUndefined();
    expect((await readAuditEntries(path.join(dir, "missing.log"), 0, 10)).entries).toEqual([]);
  });

  /** n entries as append writes them (readAuditEntries does not check the chain), `name` tagging this version of the log. */
  function bigLog(n: number, name: string, from = 1): string[] {
    const lines: string[] = [];
    for (let seq = from; seq < from + n; seq++)
      lines.push(JSON.stringify({ seq, time: "2026-11-23T12:00:00.000Z", prev: GENESIS_HASH, type: "upload.accepted", name: `${name}-${String(seq)}` }));
    return lines;
  }

  it("pages a long log the same from the start and from remembered positions", async () => {
    await mkdir(path.dirname(file), { recursive: true });
    await rewrite(bigLog(3000, "a"));
    const cold = await readAuditEntries(file, 2600, 5);
    expect(cold.entries.map((e) => e.seq)).toEqual([2601, 2602, 2603, 2604, 2605]);
    expect(cold.next).toBe(2605);
    // Now positions of entries 256, 512, ... are known; pages before, at and after them.
    for (const since of [0, 255, 256, 257, 511, 512, 2559, 2560, 2999]) {
      const page = await readAuditEntries(file, since, 3);
      expect(page.entries.map((e) => e.seq)).toEqual([since + 1, since + 2, since + 3].filter((s) => s <= 3000));
      expect(page.entries.map((e) => e.name)).toEqual(page.entries.map((e) => `a-${String(e.seq)}`));
    }
    expect((await readAuditEntries(file, 3000, 3)).entries).toEqual([]);
  });

  it("keeps paging right when the log grows, is replaced (rotation) or is rewritten in place", async () => {
    await mkdir(path.dirname(file), { recursive: true });
    await rewrite(bigLog(1000, "a"));
    expect((await readAuditEntries(file, 900, 1)).entries.map((e) => e.name)).toEqual(["a-901"]);
    // Appended to: the remembered positions still hold.
    await writeFile(
      file,
      bigLog(1000, "a")
        .concat(bigLog(500, "a", 1001))
        .join("\n") + "\n",
    );
    expect((await readAuditEntries(file, 1300, 2)).entries.map((e) => e.name)).toEqual(["a-1301", "a-1302"]);
    // Rewritten in place (same inode) with longer lines: every remembered offset is now wrong.
    await writeFile(file, bigLog(1500, "rewritten-with-a-longer-name").join("\n") + "\n");
    expect((await readAuditEntries(file, 1300, 2)).entries.map((e) => e.name)).toEqual([
      "rewritten-with-a-longer-name-1301",
      "rewritten-with-a-longer-name-1302",
    ]);
    // Replaced by another file (a rotation renames a new one in): other inode, shorter log.
    const rotated = path.join(path.dirname(file), "rotated.log");
    await writeFile(rotated, bigLog(600, "b").join("\n") + "\n");
    await rename(rotated, file);
    expect((await readAuditEntries(file, 520, 2)).entries.map((e) => e.name)).toEqual(["b-521", "b-522"]);
    expect((await readAuditEntries(file, 1300, 2)).entries).toEqual([]);
  });
});
