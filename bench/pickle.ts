/**
 * bench:pickle — speed of the pickle analyzer against Python's pickletools.genops walk (what
 * Python pickle scanners use), on (a) a generated >= 100 MB protocol 4 pickle of millions of
 * small opcodes (a list of small dicts, framed and memoized the way CPython's pickler writes it)
 * and (b) a real torch state_dict pickle (data.pkl of torch.save) generated with /usr/bin/python3.
 *
 * The analysis runs as inspectPickleSource runs it (valueFree, so the value-light scanner of
 * src/pickle/valueLightScanner.ts does the work and hands any stream it cannot prove plain back to the full
 * symbolic machine).
 *
 * Usage: npm run bench:pickle [-- --mb 100]
 */
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSource } from "../src/bytes/source";
import { Cursor } from "../src/bytes/cursor";
import { DEFAULT_CONTENT_POLICY } from "../src/inspect/policy";
import { analyzePickle, makePicklePolicy, PickleReader } from "../src/pickle";

const PYTHON = "/usr/bin/python3";

/** Write a CPython-style protocol 4 pickle of `[{"id": i, "name": "item<i>", "score": f, "ok": b}, ...]`. */
function generateSmallOps(path: string, targetBytes: number): void {
  const fd = openSync(path, "w");
  const chunk = Buffer.alloc(1 << 20);
  let frame = Buffer.alloc(70 * 1024);
  let flen = 0;
  let memo = 0;
  const keys = ["id", "name", "score", "ok"];
  const keyMemo: number[] = [];
  let chunkLen = 0;
  let written = 0;
  const flushFrame = (): void => {
    if (flen === 0) return;
    const header = Buffer.alloc(9);
    header[0] = 0x95;
    header.writeUInt32LE(flen, 1);
    out(header);
    out(frame.subarray(0, flen));
    flen = 0;
  };
  const out = (b: Buffer): void => {
    if (chunkLen + b.length > chunk.length) {
      writeSync(fd, chunk, 0, chunkLen);
      written += chunkLen;
      chunkLen = 0;
    }
    b.copy(chunk, chunkLen);
    chunkLen += b.length;
  };
  const put = (...bytes: number[]): void => {
    if (flen + bytes.length > frame.length) frame = Buffer.concat([frame, Buffer.alloc(frame.length)]);
    for (const x of bytes) frame[flen++] = x;
  };
  const str = (s: string): void => {
    put(0x8c, s.length, ...Buffer.from(s, "latin1"), 0x94);
    memo++;
  };
  const memoGet = (i: number): void => {
    if (i < 256) put(0x68, i);
    else put(0x6a, i & 0xff, (i >> 8) & 0xff, (i >> 16) & 0xff, (i >>> 24) & 0xff);
  };
  out(Buffer.from([0x80, 4]));
  put(0x5d, 0x94); // EMPTY_LIST MEMOIZE
  memo++;
  let i = 0;
  const f = Buffer.alloc(8);
  while (written + chunkLen + flen < targetBytes) {
    put(0x28); // MARK (batch of 1000 like CPython)
    for (let k = 0; k < 1000; k++, i++) {
      put(0x7d, 0x94, 0x28); // EMPTY_DICT MEMOIZE MARK
      memo++;
      for (let kk = 0; kk < keys.length; kk++) {
        const known = keyMemo[kk];
        if (known === undefined) {
          keyMemo[kk] = memo;
          str(keys[kk] as string);
        } else memoGet(known);
        switch (kk) {
          case 0:
            if (i < 256) put(0x4b, i);
            else if (i < 65536) put(0x4d, i & 0xff, i >> 8);
            else put(0x4a, i & 0xff, (i >> 8) & 0xff, (i >> 16) & 0xff, (i >>> 24) & 0xff);
            break;
          case 1:
            str(`item${i.toString()}`);
            break;
          case 2:
            f.writeDoubleBE(i / 7, 0);
            put(0x47, ...f);
            break;
          default:
            put(i % 2 === 0 ? 0x88 : 0x89);
        }
      }
      put(0x75); // SETITEMS
      if (flen >= 64 * 1024) {
        put(0x65); // close the batch early at a frame boundary: APPENDS then a new MARK
        flushFrame();
        put(0x28);
      }
    }
    put(0x65); // APPENDS
  }
  put(0x2e); // STOP
  flushFrame();
  writeSync(fd, chunk, 0, chunkLen);
  closeSync(fd);
}

/** Process CPU seconds since `from` (user + system): less sensitive than wall time to a busy machine. */
function cpuSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

function analyzeFile(path: string, repeat = 1): { seconds: number; cpu: number; ops: number; verdictOk: boolean } {
  const policy = makePicklePolicy(DEFAULT_CONTENT_POLICY);
  let ops = 0;
  let ok = true;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < repeat; r++) {
    const source = new FileSource(path);
    try {
      const a = analyzePickle(new Cursor(source, { errorCode: "malformed_pickle" }), { policy, location: path, valueFree: true });
      ops = a.ops;
      ok = ok && a.node.findings.every((x) => x.severity === "innocuous");
    } finally {
      source.close();
    }
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: cpuSince(c0), ops, verdictOk: ok };
}

/** The disassembler alone (what pickletools.genops is): every opcode decoded, no symbolic machine. */
function disassembleFile(path: string, repeat = 1): { seconds: number; cpu: number; ops: number } {
  let ops = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < repeat; r++) {
    const source = new FileSource(path);
    try {
      const reader = new PickleReader(source, 0, source.size, 64 * 1024);
      ops = 0;
      while (reader.pos < reader.end) {
        reader.next();
        ops++;
      }
    } finally {
      source.close();
    }
  }
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: cpuSince(c0), ops };
}

/** pickletools.genops over the file `repeat` times; the time is measured inside Python (no startup). */
function pickletoolsSeconds(path: string, repeat = 1): { seconds: number; cpu: number } | undefined {
  if (!existsSync(PYTHON)) return undefined;
  const script = [
    "import pickletools, sys, time, io",
    "data = open(sys.argv[1], 'rb').read()",
    "t = time.perf_counter(); c = time.process_time()",
    "for _ in range(int(sys.argv[2])):",
    "    f = io.BytesIO(data)",
    "    while f.tell() < len(data):",
    "        for _op in pickletools.genops(f): pass",
    "print(time.perf_counter() - t, time.process_time() - c)",
  ].join("\n");
  const out = execFileSync(PYTHON, ["-c", script, path, String(repeat)], { encoding: "utf8", maxBuffer: 1 << 20 });
  const [wall, cpu] = out.trim().split(/\s+/).map(Number);
  return { seconds: wall ?? Number.NaN, cpu: cpu ?? Number.NaN };
}

function torchStateDict(dir: string): string | undefined {
  if (!existsSync(PYTHON)) return undefined;
  const path = join(dir, "torch-state-dict.pkl");
  const script = [
    "import io, sys, zipfile, torch",
    "layers = []",
    "for _ in range(48): layers += [torch.nn.Linear(64, 64), torch.nn.LayerNorm(64)]",
    "m = torch.nn.Sequential(*layers)",
    "b = io.BytesIO(); torch.save(m.state_dict(), b)",
    "z = zipfile.ZipFile(io.BytesIO(b.getvalue()))",
    "open(sys.argv[1], 'wb').write(z.read([n for n in z.namelist() if n.endswith('/data.pkl')][0]))",
  ].join("\n");
  try {
    execFileSync(PYTHON, ["-c", script, path], { stdio: ["ignore", "ignore", "pipe"] });
    return path;
  } catch {
    return undefined;
  }
}

function report(label: string, path: string, repeat: number, warmPath?: string): void {
  const size = statSync(path).size;
  // Warm the JIT the way a long-running gateway is warm (not timed): small files run a few times
  // themselves, the big file is preceded by three runs over a smaller file of the same shape.
  if (repeat > 1) analyzeFile(path, Math.min(repeat, 50));
  if (warmPath !== undefined) analyzeFile(warmPath, 3);
  const ours = analyzeFile(path, repeat);
  const mb = (size * repeat) / 1e6;
  const rate = (seconds: number, ops: number): string => `${(mb / seconds).toFixed(1)} MB/s  ${((ops * repeat) / seconds / 1e6).toFixed(1)} M ops/s`;
  const line = [
    `${label}: ${(size / 1e6).toFixed(size > 1e6 ? 1 : 4)} MB x${repeat.toString()}, ${ours.ops.toLocaleString("en-US")} ops`,
    `  modelgate analysis:  wall ${ours.seconds.toFixed(3)} s  ${rate(ours.seconds, ours.ops)} | cpu ${ours.cpu.toFixed(3)} s  ${rate(ours.cpu, ours.ops)}  (accepted: ${String(ours.verdictOk)})`,
  ];
  if (repeat > 1) disassembleFile(path, Math.min(repeat, 50));
  if (warmPath !== undefined) disassembleFile(warmPath, 3);
  const dis = disassembleFile(path, repeat);
  line.push(`  disassembler only:   wall ${dis.seconds.toFixed(3)} s  ${rate(dis.seconds, dis.ops)} | cpu ${dis.cpu.toFixed(3)} s  ${rate(dis.cpu, dis.ops)}`);
  const py = pickletoolsSeconds(path, repeat);
  if (py !== undefined) {
    line.push(`  pickletools.genops:  wall ${py.seconds.toFixed(3)} s  ${rate(py.seconds, dis.ops)} | cpu ${py.cpu.toFixed(3)} s  ${rate(py.cpu, dis.ops)}`);
    line.push(
      `  -> analysis ${(py.seconds / ours.seconds).toFixed(1)}x (cpu ${(py.cpu / ours.cpu).toFixed(1)}x) faster than pickletools.genops; disassembler alone ${(py.seconds / dis.seconds).toFixed(1)}x (cpu ${(py.cpu / dis.cpu).toFixed(1)}x)`,
    );
  } else line.push("  pickletools.genops: skipped (no /usr/bin/python3)");
  console.log(line.join("\n"));
}

function main(): void {
  const mbArg = process.argv.indexOf("--mb");
  const mb = mbArg >= 0 ? Number(process.argv[mbArg + 1]) : 100;
  const dir = mkdtempSync(join(tmpdir(), "modelgate-bench-pickle-"));
  try {
    const big = join(dir, "small-ops.pkl");
    generateSmallOps(big, mb * 1e6);
    const warm = join(dir, "warm-up.pkl");
    generateSmallOps(warm, Math.min(10, mb / 10) * 1e6);
    report("(a) generated small-op pickle (after 3 untimed warm-up runs over a 10 MB one)", big, 1, warm);
    const torch = torchStateDict(dir);
    if (torch !== undefined) report("(b) torch state_dict data.pkl", torch, 200);
    else console.log("(b) torch state_dict: skipped (python3 with torch not available)");
  } finally {
    if (process.env.KEEP === undefined) rmSync(dir, { recursive: true, force: true });
    else console.log(dir);
  }
}

main();
