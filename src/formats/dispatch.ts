import type { ByteSource } from "../bytes/source";
import { GatewayError, isGatewayError, isInspectionErrorCode, type InspectionErrorCode } from "../errors";
import type { Finding, InspectionNode, Severity } from "../inspect/report";
import { Cursor } from "../bytes/cursor";
import { DEFAULT_CONTENT_POLICY } from "../inspect/policy";
import { analyzePickle, makePicklePolicy } from "../pickle";
import type { ArchiveContents, ArchiveMember } from "./containers/archive";
import type { FormatContext } from "./context";
import { classifyData, dataNode } from "./data";
import { MAX_REPORT_MEMBER_NODES } from "../limits";
import { inspectCompressed } from "./codecs/decompress";
import { throwIfEnvironmental } from "./ioFailure";
import {
  COMPRESSED_FORMATS,
  detectMagic,
  hdf5SignatureAt,
  isLegacyTorchHead,
  readHead,
  tarfileWouldOpen,
  UNSUPPORTED_FORMATS,
  type DetectedFormat,
} from "./detect";
import { inspectMlflow, isMlflowLayout } from "./models/mlflow";
import { inspectNpz, isNpzLayout } from "./models/npz";
import { inspectNpy } from "./models/numpy";
import { kerasFolder, readLoaderConfigs, remoteCodeFindings, type LoaderConfig } from "./models/loaderConfigs";
import { protobufModelFormat } from "./protobuf";
import { inspectPickleFile, looksLikePickleFile } from "./models/pickleFile";
import { inspectSafetensors } from "./models/safetensors";
import { readTar } from "./containers/tar";
import { inspectLegacyTorch, inspectTorchTar, inspectTorchZip, isTorchTarLayout, torchZipLayout } from "./models/torch";
import { readZip } from "./containers/zip";
import { hasZipTail } from "./containers/zipCentralDirectory";

/**
 * The dispatcher: sniff by content, pick the inspector, recurse into archives up to the nesting
 * limit, and turn every GatewayError a parser throws into a finding (the inspection never throws
 * on hostile input; the report rejects it). `inspectMember` and `inspectArchive` are the two
 * recursion points of FormatContext.
 */

/** The severity a structural or policy rejection gets in the report. */
export function severityOf(code: InspectionErrorCode): Severity {
  switch (code) {
    case "dangerous_global":
    case "extension_opcode":
    case "embedded_code":
    case "polyglot":
    case "unsafe_dtype":
      return "dangerous";
    case "unknown_global":
    case "unresolved_global":
    case "opaque_member":
    case "extension_mismatch":
    case "remote_code":
      return "suspicious";
    default:
      return "malformed";
  }
}

/**
 * A finding the source's policy decides: `severity` (it rejects the artifact) unless the policy
 * sets `flag`; then innocuous, and still reported so a reader sees what was let through.
 */
export function policyGatedFinding(
  ctx: FormatContext,
  flag: "allowEmbeddedCode" | "allowDirectRequirements" | "allowRemoteCode",
  code: InspectionErrorCode,
  severity: Severity,
  what: string,
  location: string,
): Finding {
  return ctx.policy[flag]
    ? { code, severity: "innocuous", message: `${what} (allowed by the source's policy: ${flag})`, location }
    : { code, severity, message: `${what}; rejected unless the source's policy sets ${flag}`, location };
}

/**
 * A finding for a thrown error. Anything that is not an inspection error (a bug) still rejects:
 * fail closed. An environmental failure (disk full, EIO, out of descriptors while writing a temp
 * file) is not about the artifact: it is rethrown as insufficient_storage / io_error
 * (ioFailure.ts) and ends the inspection, so the upload answers 507/500, not 422.
 */
export function findingOf(err: unknown, location: string): Finding {
  throwIfEnvironmental(err);
  if (isGatewayError(err) && isInspectionErrorCode(err.code)) {
    const code = err.code;
    const f: Finding = { code, severity: severityOf(code), message: err.message, location };
    const offset = err.details?.offset;
    if (typeof offset === "number") f.offset = offset;
    return f;
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: "malformed_container", severity: "malformed", message: `inspection failed: ${message}`, location };
}

export function errorNode(kind: string, path: string, err: unknown, format?: string): InspectionNode {
  const node: InspectionNode = { kind, path, findings: [findingOf(err, path)], children: [] };
  if (format !== undefined) node.format = format;
  return node;
}

export function memberPath(archivePath: string, member: string): string {
  return archivePath === "" ? member : `${archivePath}/${member}`;
}

/** A child context one archive level deeper (budget, temp dir and recursion points shared). */
export function deeper(ctx: FormatContext): FormatContext {
  // Built field by field: a context may be a prototype-chained child (decompress.ts nestedContext).
  return {
    policy: ctx.policy,
    containerLimits: ctx.containerLimits,
    pickleLimits: ctx.pickleLimits,
    depth: ctx.depth + 1,
    tempDir: ctx.tempDir,
    budget: ctx.budget,
    inspectMember: (source, path, child) => ctx.inspectMember(source, path, child),
    inspectArchive: (archive, path, child) => ctx.inspectArchive(archive, path, child),
  };
}

/** Bounds of the broken-pickle probe (the real inspection reads everything). */
const PROBE_LIMITS = { maxOpsPerStream: 100_000, timeBudgetMs: 2_000 };

/**
 * Whether `pickle.load` would start executing this source. A well-formed pickle
 * (looksLikePickleFile: joblib dumps too), or a binary stream opening with PROTO 0-5 (broken or not, the analyzer
 * reports how), or a stream that is broken later but performs a dangerous import before it
 * breaks (nullifAI: pickle.load runs the payload, then fails on the garbage), or one that calls an
 * import outside the safe set before it breaks. Text that only happens to parse as an unknown
 * import (never called) before failing stays text.
 */
export function couldBePickle(source: ByteSource, head: Uint8Array): boolean {
  if (head.length >= 2 && head[0] === 0x80 && (head[1] ?? 0xff) <= 5) return true;
  if (looksLikePickleFile(source)) return true;
  const cursor = new Cursor(source, { errorCode: "malformed_pickle", what: "pickle probe" });
  // Frames read as the C unpickler reads them: an opcode straddling a frame end stops the strict
  // analyzer, but pickle.load reads on and runs what follows.
  const probe = analyzePickle(cursor, {
    policy: makePicklePolicy(DEFAULT_CONTENT_POLICY),
    location: "",
    single: true,
    limits: PROBE_LIMITS,
    ignoreFrameBounds: true,
  });
  if (probe.node.findings.some((f) => f.severity === "dangerous")) return true;
  return callsUnsafeImport(probe.node);
}

/**
 * Whether the probed stream calls an import outside the safe set before it stops or breaks:
 * pickle.load has then already run that call (an unknown import called and followed by garbage
 * is still code that ran), so the member is a pickle, not text. An unknown import that is never
 * called stays text (a line of prose can parse as GLOBAL).
 */
function callsUnsafeImport(node: InspectionNode): boolean {
  const unsafe = new Set((node.imports ?? []).filter((r) => r.safety !== "innocuous").map((r) => `${r.module}.${r.name}`));
  if (unsafe.size === 0) return false;
  const calls = node.details?.calls;
  if (!Array.isArray(calls)) return false;
  return calls.some((c: unknown) => {
    if (typeof c !== "object" || c === null) return false;
    const callable = (c as { callable?: unknown }).callable;
    return typeof callable === "string" && (unsafe.has(callable) || callable.startsWith("<"));
  });
}

export type Sniffed = DetectedFormat | "data" | "unknown";

/** What a source is, by content: magic table, then the pickle sniffer, then text. */
export function sniff(source: ByteSource, ctx: FormatContext): { format: Sniffed; dataFormat?: ReturnType<typeof classifyData> } {
  const head = readHead(source);
  const magic = detectMagic(head);
  if (magic !== undefined) return { format: magic };
  // Before the pickle sniffer: the HDF5 library finds a superblock after a user block whatever
  // the first bytes are, and a protobuf model has no magic (protobuf.ts). Both only reject.
  if (hdf5SignatureAt(source)) return { format: "hdf5" };
  const protobuf = protobufModelFormat(source);
  if (protobuf !== undefined) return { format: protobuf };
  if (couldBePickle(source, head)) return { format: "pickle" };
  // A zip whose first local header is not at offset 0: the reader reports the prefix.
  if (hasZipTail(source)) return { format: "zip" };
  const dataFormat = classifyData(source, ctx.containerLimits);
  if (dataFormat !== undefined) return { format: "data", dataFormat };
  return { format: "unknown" };
}

const UNSUPPORTED_NAMES: Readonly<Record<string, string>> = {
  gguf: "GGUF",
  hdf5: "HDF5 (Keras .h5)",
  "7z": "7-Zip",
  rar: "RAR",
  onnx: "ONNX",
  tflite: "TensorFlow Lite",
  "tensorflow-savedmodel": "TensorFlow SavedModel (saved_model.pb)",
};

/** joblib's _ZFILE_PREFIX (numpy_pickle_compat.py), checked by joblib.load before any compressor. */
function startsWithJoblibZfile(source: ByteSource): boolean {
  const head = new Uint8Array(2);
  return source.readAt(head, 0) === 2 && head[0] === 0x5a && head[1] === 0x46;
}

function unsupportedNode(path: string, format: string, what: string): InspectionNode {
  return {
    kind: "unsupported",
    path,
    format,
    findings: [
      {
        code: "unsupported_format",
        severity: "malformed",
        message: `${what} content is recognised but not inspected by modelgate: rejected`,
        location: path,
      },
    ],
    children: [],
  };
}

/**
 * Polyglot check for every non-zip format: a zip directory at the end makes the file two things,
 * and so does an HDF5 superblock at a power-of-two offset (h5py, and Keras' legacy `.h5`
 * load_model whose model_config may hold a Lambda layer's marshalled code, open it there; zips
 * get that second check too).
 */
function withPolyglotCheck(node: InspectionNode, source: ByteSource, path: string, format: string): InspectionNode {
  if (hasZipTail(source)) {
    node.findings.push({
      code: "polyglot",
      severity: "dangerous",
      message: `${format} content that also ends with a zip central directory: a zip reader would see another file`,
      location: path,
    });
  }
  return withHdf5PolyglotCheck(node, source, path, format);
}

function withHdf5PolyglotCheck(node: InspectionNode, source: ByteSource, path: string, format: string): InspectionNode {
  if (hdf5SignatureAt(source)) {
    node.findings.push({
      code: "polyglot",
      severity: "dangerous",
      message: `${format} content that also holds an HDF5 superblock at a power-of-two offset: h5py (and Keras' .h5 loader) would read another file`,
      location: path,
    });
  }
  return node;
}

async function inspectArchiveSource(source: ByteSource, path: string, ctx: FormatContext, kind: "zip" | "tar"): Promise<InspectionNode> {
  // Same rule as compressed streams (decompress.ts): depth counts the containers around this one.
  if (ctx.depth >= ctx.containerLimits.maxNestingDepth) {
    const err = new GatewayError("limit_exceeded", `${kind} nested deeper than ${ctx.containerLimits.maxNestingDepth} levels (maxNestingDepth)`);
    return errorNode(kind, path, err, kind);
  }
  const tarPolyglot = kind === "tar" ? tarPolyglotFinding(source, path) : zipTarPolyglotFinding(source, path);
  let archive: ArchiveContents;
  try {
    archive = kind === "zip" ? readZip(source, path, ctx, { isPickle: (prefix) => couldBePickle(prefix, readHead(prefix)) }) : await readTar(source, path, ctx);
  } catch (err) {
    const node = errorNode(kind, path, err, kind);
    if (tarPolyglot) node.findings.push(tarPolyglot);
    return kind === "tar" ? withPolyglotCheck(node, source, path, "tar") : node;
  }
  if (tarPolyglot) archive.node.findings.push(tarPolyglot);
  if (kind === "tar") {
    // A tar has no directory at its end, but a zip reader would still find one there.
    withPolyglotCheck(archive.node, source, path, "tar");
  } else {
    // A stored member's bytes can put an HDF5 superblock at a power-of-two offset of the zip.
    withHdf5PolyglotCheck(archive.node, source, path, "zip");
  }
  return ctx.inspectArchive(archive, path, ctx);
}

/** A zip whose first block Python's tarfile also opens as a tar header (detectMagic took the zip first). */
function zipTarPolyglotFinding(source: ByteSource, path: string): Finding | undefined {
  if (!tarfileWouldOpen(readHead(source))) return undefined;
  return { code: "polyglot", severity: "dangerous", message: "zip content whose first block is also a tar header Python's tarfile opens", location: path };
}

/**
 * A tar whose bytes are also a legacy torch file or a pickle: torch.load reads the tar
 * (_legacy_load tries tarfile.open before the five-pickle layout), pickle.load and joblib.load
 * read the pickle. Two loaders, two files: rejected whatever the tar holds.
 */
function tarPolyglotFinding(source: ByteSource, path: string): Finding | undefined {
  const head = readHead(source);
  const what = isLegacyTorchHead(head) ? "a legacy (five-pickle) torch checkpoint" : couldBePickle(source, head) ? "a pickle" : undefined;
  if (what === undefined) return undefined;
  return {
    code: "polyglot",
    severity: "dangerous",
    message: `tar content (Python's tarfile opens it; torch.load reads it as a tar checkpoint) that is also ${what}`,
    location: path,
  };
}

/** The artifact itself is text, JSON or YAML: data, but not a model. */
function notAModelNode(path: string, dataFormat: string): InspectionNode {
  return {
    kind: "data",
    path,
    format: dataFormat,
    findings: [{ code: "unknown_format", severity: "malformed", message: `${dataFormat} content is not a model format`, location: path }],
    children: [],
  };
}

/** The artifact itself is binary of no known format. */
function unknownContentNode(path: string): InspectionNode {
  return {
    kind: "unknown",
    path,
    format: "unknown",
    findings: [{ code: "unknown_format", severity: "malformed", message: "content matches no format modelgate inspects", location: path }],
    children: [],
  };
}

/**
 * A compression layer is transparent to "is the artifact a model at all": inspectCompressed
 * inspects the decompressed bytes as a member (text is a data member there, unknown binary an
 * opaque one), which would accept a gzip of a YAML file that is refused uncompressed. For the
 * artifact itself, follow the chain of compressed layers (gzip of bz2 of ...) down to the content
 * and judge it as top-level content: data or opaque binary becomes unknown_format. Compressed
 * members inside an archive are not passed here and stay data members.
 */
function requireModelUnderCompression(node: InspectionNode): void {
  let layer = node;
  for (;;) {
    const inner = layer.children[0];
    if (layer.kind !== "compressed" || inner === undefined || layer.children.length !== 1) return;
    if (inner.kind === "compressed") {
      layer = inner;
      continue;
    }
    if (inner.kind === "data") {
      layer.children[0] = withDetails(notAModelNode(inner.path, inner.format ?? "text"), inner);
    } else if (inner.kind === "opaque") {
      layer.children[0] = withDetails(unknownContentNode(inner.path), inner);
    }
    return;
  }
}

function withDetails(node: InspectionNode, from: InspectionNode): InspectionNode {
  if (from.details !== undefined) node.details = from.details;
  return node;
}

/**
 * Inspect one source by content. `top` is the artifact itself: there, text is not a model
 * (unknown_format) and unknown binary is unknown_format, also under any compression layers;
 * inside an archive, text is a data member and unknown binary an opaque member (rejected unless
 * the policy allows opaque members).
 */
export async function inspectByContent(source: ByteSource, path: string, ctx: FormatContext, top: boolean): Promise<InspectionNode> {
  const { format, dataFormat } = sniff(source, ctx);
  switch (format) {
    case "zip":
      return inspectArchiveSource(source, path, ctx, "zip");
    case "tar":
      return inspectArchiveSource(source, path, ctx, "tar");
    case "npy":
      return withPolyglotCheck(await inspectNpy(source, path, ctx), source, path, "npy");
    case "safetensors":
      return withPolyglotCheck(await inspectSafetensors(source, path, ctx), source, path, "safetensors");
    case "pytorch-legacy":
      return withPolyglotCheck(await inspectLegacyTorch(source, path, ctx), source, path, "legacy torch");
    case "pickle":
      return withPolyglotCheck(await inspectPickleFile(source, path, ctx), source, path, "pickle");
    case "data":
      if (top) return notAModelNode(path, dataFormat ?? "text");
      return dataNode(path, dataFormat ?? "text", source.size);
    case "unknown":
      if (top) return unknownContentNode(path);
      // joblib.load reads a file starting with "ZF" as its pre-0.10 format (hex length, then a
      // zlib-compressed pickle) and unpickles it: never an opaque member, whatever the policy.
      if (startsWithJoblibZfile(source)) return unsupportedNode(path, "joblib-zfile", "joblib < 0.10 compressed pickle (ZF header)");
      return {
        kind: "opaque",
        path,
        format: "unknown",
        findings: [
          ctx.policy.allowOpaqueMembers
            ? { code: "opaque_member", severity: "innocuous", message: `opaque binary member (${source.size} bytes) allowed by policy`, location: path }
            : {
                code: "opaque_member",
                severity: "suspicious",
                message: `binary member of unknown content (${source.size} bytes): rejected unless the policy allows opaque members`,
                location: path,
              },
        ],
        children: [],
      };
    default:
      if (COMPRESSED_FORMATS.has(format)) {
        const node = await inspectCompressed(source, path, ctx);
        if (top) requireModelUnderCompression(node);
        return withPolyglotCheck(node, source, path, format);
      }
      if (UNSUPPORTED_FORMATS.has(format)) return unsupportedNode(path, format, UNSUPPORTED_NAMES[format] ?? format);
      return unsupportedNode(path, format, format);
  }
}

/** FormatContext.inspectMember: sniff and inspect one member; never throws on hostile bytes. */
export async function inspectMember(source: ByteSource, path: string, ctx: FormatContext): Promise<InspectionNode> {
  try {
    return await inspectByContent(source, path, ctx, false);
  } catch (err) {
    return errorNode("member", path, err);
  }
}

/** Open a member, inspect it with `inspect`, close it; an open failure (CRC, inflate) is the member's finding. */
export async function withMember(member: ArchiveMember, path: string, inspect: (source: ByteSource) => Promise<InspectionNode>): Promise<InspectionNode> {
  let opened;
  try {
    opened = await member.open();
  } catch (err) {
    return errorNode("member", path, err);
  }
  try {
    return await inspect(opened.source);
  } catch (err) {
    return errorNode("member", path, err);
  } finally {
    opened.close();
  }
}

/** Whether a member node must stay in the report: a rejecting finding, a pickle or imports anywhere in it. */
function isNotable(node: InspectionNode): boolean {
  if (node.kind === "pickle" || (node.imports?.length ?? 0) > 0) return true;
  if (node.findings.some((f) => f.severity !== "innocuous")) return true;
  return node.children.some(isNotable);
}

/** details.omittedMembers of an archive node: innocuous members counted, not listed. */
export interface OmittedMembers {
  count: number;
  byKind: Record<string, number>;
}

/**
 * Add a member's node to its archive's node, keeping the report bounded (MAX_REPORT_MEMBER_NODES):
 * a member with any rejecting finding, a pickle or imports is always kept (the verdict and
 * pickleFree depend on it); innocuous members are kept up to the limit, shared by every archive of
 * the artifact, then only counted in `details.omittedMembers`.
 */
export function appendMemberNode(parent: InspectionNode, child: InspectionNode, ctx: FormatContext): void {
  if (isNotable(child)) {
    parent.children.push(child);
    return;
  }
  const kept = ctx.budget.reportMemberNodes ?? 0;
  if (kept < MAX_REPORT_MEMBER_NODES) {
    ctx.budget.reportMemberNodes = kept + 1;
    parent.children.push(child);
    return;
  }
  const details = (parent.details ??= {});
  const omitted = (details.omittedMembers as OmittedMembers | undefined) ?? { count: 0, byKind: {} };
  omitted.count += 1;
  omitted.byKind[child.kind] = (omitted.byKind[child.kind] ?? 0) + 1;
  details.omittedMembers = omitted;
}

/**
 * Member names Python runs as code, whatever the bytes look like: source (.py, .pyw), bytecode
 * (.pyc, .pyo), native extensions (.so, .pyd), and .pth files (site-packages runs their `import`
 * lines at start). transformers imports a bundle's modeling_*.py named in config.json's auto_map
 * (trust_remote_code=True); sniffed by content, a .py is only a text data member.
 */
const CODE_MEMBER = /\.(py|pyw|pyc|pyo|pyd|so|pth)$/i;

/**
 * In a generic zip or tar (not MLflow, PyTorch or npz: those judge their own code members under
 * allowEmbeddedCode / allowTorchScript), each code member is `embedded_code`: rejected unless
 * the source's policy sets allowEmbeddedCode. allowOpaqueMembers does not admit bytecode or
 * native libraries.
 */
function flagCodeMembers(archive: ArchiveContents, path: string, ctx: FormatContext): void {
  for (const member of archive.members) {
    if (member.isDirectory || !CODE_MEMBER.test(member.path)) continue;
    const what = `member '${member.path}' is Python code (source, bytecode, native extension or .pth) that an importer runs`;
    archive.node.findings.push(policyGatedFinding(ctx, "allowEmbeddedCode", "embedded_code", "dangerous", what, memberPath(path, member.path)));
  }
}

/**
 * Layouts recognised by what their loaders read, not inspected: a Keras v3 model in any folder
 * (loaderConfigs.ts kerasFolder: a config.json Keras would deserialize, or one next to
 * model.weights.h5 / .npz or metadata.json), and a TF SavedModel (tf.saved_model.load reads
 * `<dir>/saved_model.pb` or, without it, `saved_model.pbtxt`, in any folder).
 */
function unsupportedLayout(
  kind: ArchiveContents["kind"],
  members: readonly ArchiveMember[],
  configs: readonly LoaderConfig[],
): { format: string; what: string } | undefined {
  const keras = kerasFolder(members, configs);
  if (keras !== undefined) return { format: "keras", what: `Keras v3 model (${keras === "" ? "" : keras}config.json)` };
  // A zip holding config.json and nothing else is what keras.saving.load_model opens as a .keras
  // file: saving_lib deserializes config.json before it finds no weights, and no other loader
  // reads a zip of one config file, so it is Keras whatever the config holds (fail closed).
  const files = members.filter((m) => !m.isDirectory);
  if (kind === "zip" && files.length === 1 && files[0]?.path.toLowerCase() === "config.json")
    return { format: "keras", what: "Keras v3 model (config.json alone)" };
  for (const m of members) {
    if (m.isDirectory) continue;
    const base = (m.path.split("/").pop() ?? "").toLowerCase();
    if (base === "saved_model.pb" || base === "saved_model.pbtxt") return { format: "tensorflow-savedmodel", what: `TensorFlow SavedModel (${m.path})` };
  }
  return undefined;
}

/** Every non-directory member through ctx.inspectMember, one level deeper. */
export async function inspectAllMembers(archive: ArchiveContents, path: string, ctx: FormatContext, skip?: ReadonlySet<string>): Promise<void> {
  const inner = deeper(ctx);
  for (const member of archive.members) {
    if (member.isDirectory || skip?.has(member.path) === true) continue;
    const p = memberPath(path, member.path);
    appendMemberNode(archive.node, await withMember(member, p, (source) => ctx.inspectMember(source, p, inner)), ctx);
  }
}

/**
 * FormatContext.inspectArchive: classify the layout of an opened zip or tar and inspect it.
 * Loader configs first (Keras config.json, transformers auto_map / custom_pipelines -> remote_code);
 * PyTorch tar checkpoint -> inspectTorchTar; Keras / SavedModel -> unsupported_format; MLflow
 * bundle -> inspectMlflow; PyTorch zip / TorchScript -> inspectTorchZip; all members .npy -> npz;
 * anything else: every member by content.
 */
export async function inspectArchive(archive: ArchiveContents, path: string, ctx: FormatContext): Promise<InspectionNode> {
  const node = archive.node;
  try {
    // Files loaders read by name first (loaderConfigs.ts): Keras' config.json, transformers' auto_map.
    const configs = await readLoaderConfigs(archive, path, node.findings);
    // torch.load reads a tar with these members as a checkpoint (_legacy_load's legacy_load),
    // whatever else it holds: inspected as torch reads it, before any other layout.
    if (archive.kind === "tar" && isTorchTarLayout(archive.members)) return await inspectTorchTar(archive, path, ctx);
    const unsupported = unsupportedLayout(archive.kind, archive.members, configs);
    if (unsupported !== undefined) {
      node.format = unsupported.format;
      node.findings.push({
        code: "unsupported_format",
        severity: "malformed",
        message: `${unsupported.what} is recognised but not inspected by modelgate: rejected`,
        location: path,
      });
      return node;
    }
    node.findings.push(...remoteCodeFindings(configs, ctx));
    const mlflowRoot = isMlflowLayout(archive.members);
    if (mlflowRoot !== undefined) return await inspectMlflow(archive, mlflowRoot, path, ctx);
    const torch = torchZipLayout(archive.members);
    if (torch !== undefined && archive.kind === "zip") return await inspectTorchZip(archive, torch, path, ctx);
    if (isNpzLayout(archive)) return await inspectNpz(archive, path, ctx);
    node.format = archive.kind;
    flagCodeMembers(archive, path, ctx);
    await inspectAllMembers(archive, path, ctx);
    return node;
  } catch (err) {
    node.findings.push(findingOf(err, path));
    return node;
  }
}
