/**
 * bench:formats — container inspection speed next to `sha256sum` on the same files, in the same
 * run: (a) a >= 2 GB PyTorch zip checkpoint (a state_dict of large float32 tensors written by
 * torch.save), (b) a 1 GB joblib dump of a float64 array uncompressed and (c) the same dump with
 * zlib (joblib compress=("zlib", 3)), (d) a 1 GiB ONNX model with external data: an uncompressed tar of
 * model/model.onnx (one initializer whose external_data names model/weights.data) and the 1 GiB
 * weights.data of random bytes, as onnx.save_model(save_as_external_data=True) lays it out. Files are generated with /usr/bin/python3 in os.tmpdir() and
 * removed afterwards. Each scan runs in a child process so its peak RSS is its own.
 *
 * Target: torch checkpoint scan <= 1.5x sha256sum (only the zip structure, CRCs and pickles are
 * read; tensors are not parsed); memory flat (peak RSS independent of the file size).
 *
 * ONNX target (issue 12): scan <= 0.2x sha256sum, peak RSS < 200 MB (only the protobuf and the tar
 * structure are read; the data file is sniffed, never hashed or parsed).
 *
 * Usage: npm run bench:formats [-- --torch-gb 2 --joblib-gb 1 --onnx-gb 1 --onnx-only --keep]
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspectFile } from "../src/formats/inspectFile";
import { DEFAULT_CONTENT_POLICY } from "../src/inspect/policy";

const PYTHON = "/usr/bin/python3";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

const TORCH_SCRIPT = `
import sys, torch, collections
path, total = sys.argv[1], int(sys.argv[2])
n_big = 8
per = total // n_big // 4
sd = collections.OrderedDict()
g = torch.Generator().manual_seed(0)
for i in range(n_big):
    sd[f"layers.{i}.weight"] = torch.empty(per, dtype=torch.float32).uniform_(-1, 1, generator=g)
    sd[f"layers.{i}.bias"] = torch.zeros(1024)
    sd[f"layers.{i}.norm.running_mean"] = torch.zeros(256)
    sd[f"layers.{i}.norm.num_batches_tracked"] = torch.tensor(0)
torch.save(sd, path)
`;

const JOBLIB_SCRIPT = `
import sys, numpy as np, joblib
path, total, compress = sys.argv[1], int(sys.argv[2]), sys.argv[3]
a = np.random.default_rng(0).standard_normal(total // 8)
obj = {"weights": a, "meta": {"name": "bench", "shape": a.shape}}
if compress == "none":
    joblib.dump(obj, path)
else:
    joblib.dump(obj, path, compress=(compress, 3))
`;

const ONNX_SCRIPT = `
import os, sys, tarfile, numpy as np
from onnx import TensorProto, helper
path, total = sys.argv[1], int(sys.argv[2])
folder = path + ".d"
os.makedirs(folder)
n = total // 4
w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[n], data_location=TensorProto.EXTERNAL)
for k, v in (("location", "weights.data"), ("offset", "0"), ("length", str(n * 4))):
    e = w.external_data.add()
    e.key, e.value = k, v
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])
graph = helper.make_graph([helper.make_node("Add", ["x", "W"], ["y"])], "bench", [x], [y], initializer=[w])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
with open(os.path.join(folder, "model.onnx"), "wb") as f:
    f.write(model.SerializeToString())
rng = np.random.default_rng(0)
with open(os.path.join(folder, "weights.data"), "wb") as f:
    left = n * 4
    while left > 0:
        chunk = min(left, 64 << 20)
        f.write(rng.bytes(chunk))
        left -= chunk
with tarfile.open(path, "w") as tf:
    tf.add(os.path.join(folder, "model.onnx"), arcname="model/model.onnx")
    tf.add(os.path.join(folder, "weights.data"), arcname="model/weights.data")
for name in ("model.onnx", "weights.data"):
    os.remove(os.path.join(folder, name))
os.rmdir(folder)
`;

interface Row {
  name: string;
  bytes: number;
  sha256Seconds: number;
  scanSeconds: number;
  peakRssMiB: number;
  verdict: string;
  format: string;
  findings: string;
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function timeSha256(path: string): number {
  const start = process.hrtime.bigint();
  execFileSync("sha256sum", [path], { stdio: ["ignore", "ignore", "inherit"] });
  return seconds(start);
}

/** Scan in a child process (this script with --scan), returning its timing, peak RSS and verdict. */
function timeScan(path: string): { seconds: number; peakRssMiB: number; verdict: string; format: string; findings: string } {
  const child = spawnSync(process.execPath, [__filename, "--scan", path], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (child.status !== 0) throw new Error(`scan child failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").pop() ?? "{}") as {
    seconds: number;
    peakRssMiB: number;
    verdict: string;
    format: string;
    findings: string;
  };
}

async function scanChild(path: string): Promise<void> {
  const start = process.hrtime.bigint();
  const report = await inspectFile(path, { policy: DEFAULT_CONTENT_POLICY, fileName: path });
  const s = seconds(start);
  const rejecting = report.findings.filter((f) => f.severity !== "innocuous").map((f) => `${f.code}: ${f.message}`);
  process.stdout.write(
    `${JSON.stringify({
      seconds: s,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      verdict: report.verdict,
      format: report.format,
      findings: rejecting.slice(0, 3).join(" | "),
    })}\n`,
  );
}

function generate(script: string, args: string[]): number {
  const start = process.hrtime.bigint();
  execFileSync(PYTHON, ["-c", script, ...args], { stdio: "inherit" });
  return seconds(start);
}

function measure(name: string, path: string): Row {
  const bytes = statSync(path).size;
  // Warm the page cache the same way for both: one untimed read by sha256sum.
  timeSha256(path);
  const sha256Seconds = timeSha256(path);
  const scan = timeScan(path);
  return {
    name,
    bytes,
    sha256Seconds,
    scanSeconds: scan.seconds,
    peakRssMiB: scan.peakRssMiB,
    verdict: scan.verdict,
    format: scan.format,
    findings: scan.findings,
  };
}

function main(): void {
  const torchGb = arg("torch-gb", 2.1);
  const joblibGb = arg("joblib-gb", 1);
  const onnxGb = arg("onnx-gb", 1);
  const only = process.argv.includes("--onnx-only");
  const keep = process.argv.includes("--keep");
  const dir = mkdtempSync(join(tmpdir(), "modelgate-bench-formats-"));
  const rows: Row[] = [];
  try {
    const onnxPath = join(dir, "onnx-external.tar");
    process.stderr.write(`generating a ${onnxGb} GiB ONNX model with external data (tar)... `);
    process.stderr.write(`${generate(ONNX_SCRIPT, [onnxPath, String(Math.round(onnxGb * 2 ** 30))]).toFixed(1)} s\n`);
    rows.push(measure("onnx + external data (tar)", onnxPath));
    rmSync(onnxPath, { force: true });
    if (only) {
      report(rows);
      return;
    }
    const torchPath = join(dir, "checkpoint.pt");
    const joblibPath = join(dir, "arrays.joblib");
    const joblibZPath = join(dir, "arrays.joblib.z");
    process.stderr.write(`generating a ${torchGb} GB torch checkpoint... `);
    process.stderr.write(`${generate(TORCH_SCRIPT, [torchPath, String(Math.round(torchGb * 2 ** 30))]).toFixed(1)} s\n`);
    rows.push(measure("torch zip checkpoint", torchPath));
    rmSync(torchPath, { force: true });
    process.stderr.write(`generating a ${joblibGb} GB joblib dump... `);
    process.stderr.write(`${generate(JOBLIB_SCRIPT, [joblibPath, String(Math.round(joblibGb * 2 ** 30)), "none"]).toFixed(1)} s\n`);
    rows.push(measure("joblib uncompressed", joblibPath));
    rmSync(joblibPath, { force: true });
    process.stderr.write(`generating a ${joblibGb} GB joblib dump with zlib... `);
    process.stderr.write(`${generate(JOBLIB_SCRIPT, [joblibZPath, String(Math.round(joblibGb * 2 ** 30)), "zlib"]).toFixed(1)} s\n`);
    rows.push(measure("joblib zlib", joblibZPath));
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
  report(rows);
}

function report(rows: readonly Row[]): void {
  const header = ["file", "bytes", "sha256sum s", "scan s", "scan/sha256", "peak RSS MiB", "verdict", "format"];
  const lines = rows.map((r) => [
    r.name,
    r.bytes.toString(),
    r.sha256Seconds.toFixed(2),
    r.scanSeconds.toFixed(2),
    (r.scanSeconds / r.sha256Seconds).toFixed(2),
    r.peakRssMiB.toFixed(0),
    r.verdict,
    r.format,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  process.stdout.write(`${fmt(header)}\n${lines.map(fmt).join("\n")}\n`);
  for (const r of rows) if (r.findings.length > 0) process.stdout.write(`${r.name}: ${r.findings}\n`);
}

if (process.argv[2] === "--scan") {
  scanChild(process.argv[3] ?? "").catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
} else {
  main();
}
