import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileSource } from "../bytes/source";
import { GatewayError } from "../errors";
import type { InspectOptions, Inspector } from "../inspect/inspector";
import { summarize, type Finding, type InspectionNode, type InspectionReport } from "../inspect/report";
import { DEFAULT_CONTAINER_LIMITS, DEFAULT_PICKLE_LIMITS, type ContainerLimits, type PickleLimits } from "../limits";
import type { FormatContext } from "./context";
import { inspectArchive, inspectByContent, inspectMember } from "./dispatch";
import { errorNode } from "./members";

/**
 * The Inspector the gateway (upload, before promotion) and `modelgate scan` call: open the file
 * for positional reads, sniff it by content, inspect it with every container check, and return
 * one report. Hostile content never makes it throw: every parser error becomes a finding. Only a
 * file that cannot be opened at all is an `io_error`.
 */

export interface InspectFileOptions extends InspectOptions {
  containerLimits?: ContainerLimits;
  pickleLimits?: PickleLimits;
  /** Parent of the per-inspection temp directory (default os.tmpdir()). */
  tempRoot?: string;
}

/** The extension of a published name, lowercased ("model.tar.gz" -> "tar.gz"); reported, never trusted. */
export function extensionOf(fileName: string | undefined): string | undefined {
  if (fileName === undefined) return undefined;
  const base = fileName.split(/[\\/]/).pop() ?? "";
  const lower = base.toLowerCase();
  for (const double of ["tar.gz", "tar.bz2", "tar.xz"]) if (lower.endsWith(`.${double}`)) return double;
  const dot = lower.lastIndexOf(".");
  if (dot <= 0 || dot === lower.length - 1) return undefined;
  return lower.slice(dot + 1);
}

const PICKLE_FORMATS = ["pickle", "joblib"];
const TORCH_FORMATS = ["pytorch-zip", "pytorch-legacy", "pytorch-tar", "torchscript"];
const ZIP_FORMATS = ["zip", "npz", "pytorch-zip", "torchscript", "mlflow", "keras"];
const COMPRESSED = ["gzip", "bz2", "xz", "lzma", "zlib", "lz4", "joblib", "tar", "mlflow", "pytorch-tar"];

/** What each known extension claims. Extensions not listed are reported but not compared. */
const EXTENSION_CLAIMS: Readonly<Record<string, readonly string[]>> = {
  pt: TORCH_FORMATS,
  pth: TORCH_FORMATS,
  ckpt: TORCH_FORMATS,
  bin: [...TORCH_FORMATS, ...PICKLE_FORMATS],
  pkl: [...PICKLE_FORMATS, ...TORCH_FORMATS],
  pickle: [...PICKLE_FORMATS, ...TORCH_FORMATS],
  joblib: PICKLE_FORMATS,
  npy: ["npy"],
  npz: ["npz", "zip"],
  safetensors: ["safetensors"],
  zip: ZIP_FORMATS,
  tar: ["tar", "mlflow", "pytorch-tar"],
  "tar.gz": COMPRESSED,
  tgz: COMPRESSED,
  gz: COMPRESSED,
  "tar.bz2": COMPRESSED,
  bz2: COMPRESSED,
  "tar.xz": COMPRESSED,
  xz: COMPRESSED,
  lzma: COMPRESSED,
  z: COMPRESSED,
  lz4: COMPRESSED,
  onnx: ["onnx"],
  gguf: ["gguf"],
  h5: ["hdf5"],
  keras: ["keras"],
};

/**
 * Extensions that promise content without any pickle (CVE-2025-10155: a pickle renamed to one).
 * A real .npy/.npz may hold an object array's pickle: that is its format, not a mismatch.
 */
const PICKLE_FREE_EXTENSIONS: ReadonlySet<string> = new Set(["safetensors", "npy", "npz", "onnx", "gguf", "h5", "keras"]);

/**
 * The extension check. A mismatch (the content is not a format the extension claims) is an
 * innocuous finding (people name files loosely: a raw pickle saved as .pt), except when the
 * extension promises a pickle-free format and the content holds a pickle: that is how a pickle is
 * smuggled past tools that trust names, so it is suspicious (and rejects).
 */
export function extensionFinding(extension: string | undefined, format: string, pickleFree: boolean): Finding | undefined {
  if (extension === undefined) return undefined;
  const claims = EXTENSION_CLAIMS[extension];
  if (claims === undefined || claims.includes(format)) return undefined;
  if (PICKLE_FREE_EXTENSIONS.has(extension) && !pickleFree) {
    return {
      code: "extension_mismatch",
      severity: "suspicious",
      message: `the name ends in .${extension}, a pickle-free format, but the content (${format}) holds a pickle`,
      location: "",
    };
  }
  return {
    code: "extension_mismatch",
    severity: "innocuous",
    message: `the name ends in .${extension} but the content is ${format} (content decides, the name is only reported)`,
    location: "",
  };
}

/**
 * The artifact's format for the report: the content node's, except that a compressed wrapper
 * around an archive is named after the archive (a .tar.gz MLflow bundle is "mlflow"); a compressed
 * pickle is "joblib" (decompress.ts names it so).
 */
export function reportFormat(node: InspectionNode): string {
  const inner = node.children[0];
  if (node.kind === "compressed" && node.format !== "joblib" && inner?.format !== undefined && !["data", "unknown"].includes(inner.kind)) {
    return reportFormat(inner);
  }
  return node.format ?? "unknown";
}

/** Inspect a file at `path` under a source's content policy. */
export async function inspectPath(path: string, options: InspectFileOptions): Promise<InspectionReport> {
  let source: FileSource;
  try {
    source = new FileSource(path);
  } catch (err) {
    throw new GatewayError("io_error", `cannot open ${path} for inspection: ${err instanceof Error ? err.message : String(err)}`, undefined, { cause: err });
  }
  const tempDir = mkdtempSync(join(options.tempRoot ?? tmpdir(), "modelgate-inspect-"));
  const ctx: FormatContext = {
    policy: options.policy,
    containerLimits: options.containerLimits ?? DEFAULT_CONTAINER_LIMITS,
    pickleLimits: options.pickleLimits ?? DEFAULT_PICKLE_LIMITS,
    depth: 0,
    tempDir,
    budget: { uncompressedBytes: 0 },
    inspectMember,
    inspectArchive,
  };
  let content: InspectionNode;
  try {
    content = await inspectByContent(source, "", ctx, true);
  } catch (err) {
    content = errorNode("unknown", "", err);
  } finally {
    source.close();
    rmSync(tempDir, { recursive: true, force: true });
  }
  const format = reportFormat(content);
  const extension = extensionOf(options.fileName);
  const root: InspectionNode = {
    kind: "file",
    path: "",
    format,
    findings: [],
    details: { bytes: source.size },
    children: [content],
  };
  const draft = summarize(root, format, extension);
  const mismatch = extensionFinding(extension, format, draft.pickleFree);
  if (mismatch) root.findings.push(mismatch);
  return mismatch ? summarize(root, format, extension) : draft;
}

/** The Inspector seam (src/inspect/inspector.ts). */
export const inspectFile: Inspector = (path, options) => inspectPath(path, options);
