import type { ByteSource } from "../bytes/source";
import { GatewayError } from "../errors";
import type { Finding, InspectionNode } from "../inspect/report";
import { inspectCompressed } from "./codecs/decompress";
import type { ArchiveContents, ArchiveMember } from "./containers/archive";
import { memberPath } from "./containers/memberPath";
import { readTar } from "./containers/tar";
import { readZip } from "./containers/zip";
import { hasZipTail } from "./containers/zipCentralDirectory";
import type { FormatContext } from "./context";
import { classifyData, dataNode } from "./data";
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
import { errorNode, findingOf, inspectAllMembers, policyGatedFinding } from "./members";
import { inspectKeras } from "./models/keras";
import { kerasFolder, readLoaderConfigs, remoteCodeFindings, type LoaderConfig } from "./models/loaderConfigs";
import { inspectGguf } from "./models/gguf";
import { hfChatTemplateFindings } from "./models/hfChatTemplates";
import { inspectMlflow, isMlflowLayout } from "./models/mlflow";
import { inspectNpz, isNpzLayout } from "./models/npz";
import { inspectNpy } from "./models/numpy";
import { inspectOnnx } from "./models/onnx";
import { inspectPickleFile } from "./models/pickleFile";
import { inspectSafetensors } from "./models/safetensors";
import { inspectLegacyTorch, inspectTorchTar, inspectTorchZip, isTorchTarLayout, torchZipLayout } from "./models/torch";
import { pickleLoadWouldRun } from "./pickleProbe";
import { protobufModelFormat } from "./protobuf";

/**
 * The dispatcher: sniff by content, pick the inspector, recurse into archives up to the nesting
 * limit, and turn every GatewayError a parser throws into a finding (the inspection never throws
 * on hostile input; the report rejects it). `inspectMember` and `inspectArchive` are the two
 * recursion points of FormatContext. The helpers the layouts share with it are in members.ts
 * (below this file: models/ never import the dispatcher).
 */

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
  if (pickleLoadWouldRun(source, head)) return { format: "pickle" };
  // A zip whose first local header is not at offset 0: the reader reports the prefix.
  if (hasZipTail(source)) return { format: "zip" };
  const dataFormat = classifyData(source, ctx.containerLimits);
  if (dataFormat !== undefined) return { format: "data", dataFormat };
  return { format: "unknown" };
}

const UNSUPPORTED_NAMES: Readonly<Record<string, string>> = {
  hdf5: "HDF5 (Keras .h5)",
  "7z": "7-Zip",
  rar: "RAR",
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
    archive =
      kind === "zip" ? readZip(source, path, ctx, { isPickle: (prefix) => pickleLoadWouldRun(prefix, readHead(prefix)) }) : await readTar(source, path, ctx);
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
  const what = isLegacyTorchHead(head) ? "a legacy (five-pickle) torch checkpoint" : pickleLoadWouldRun(source, head) ? "a pickle" : undefined;
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
    case "onnx":
      return withPolyglotCheck(await inspectOnnx(source, path, ctx), source, path, "onnx");
    case "gguf":
      return withPolyglotCheck(await inspectGguf(source, path, ctx), source, path, "gguf");
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
 * Layouts recognised by what their loaders read: a Keras v3 model in any folder (inspected by
 * models/keras.ts inspectKeras)
 * (loaderConfigs.ts kerasFolder: a config.json Keras would deserialize, or one next to
 * model.weights.h5 / .npz or metadata.json), and, not inspected, a TF SavedModel (tf.saved_model.load reads
 * `<dir>/saved_model.pb` or, without it, `saved_model.pbtxt`, in any folder).
 */
function unsupportedLayout(
  kind: ArchiveContents["kind"],
  members: readonly ArchiveMember[],
  configs: readonly LoaderConfig[],
): { format: string; what: string } | undefined {
  // SavedModel first: a Keras folder is inspected (models/keras.ts), so it must not hide an uninspected SavedModel next to it.
  for (const m of members) {
    if (m.isDirectory) continue;
    const base = (m.path.split("/").pop() ?? "").toLowerCase();
    if (base === "saved_model.pb" || base === "saved_model.pbtxt") return { format: "tensorflow-savedmodel", what: `TensorFlow SavedModel (${m.path})` };
  }
  const keras = kerasFolder(members, configs);
  if (keras !== undefined) return { format: "keras", what: `Keras v3 model (${keras}config.json)` };
  // A zip holding config.json and nothing else is what keras.saving.load_model opens as a .keras
  // file: saving_lib deserializes config.json before it finds no weights, and no other loader
  // reads a zip of one config file, so it is Keras whatever the config holds (fail closed).
  const files = members.filter((m) => !m.isDirectory);
  if (kind === "zip" && files.length === 1 && files[0]?.path.toLowerCase() === "config.json")
    return { format: "keras", what: "Keras v3 model (config.json alone)" };
  return undefined;
}

/**
 * FormatContext.inspectArchive: classify the layout of an opened zip or tar and inspect it.
 * Loader configs first (Keras config.json, transformers auto_map / custom_pipelines -> remote_code);
 * PyTorch tar checkpoint -> inspectTorchTar; Keras v3 -> inspectKeras; SavedModel -> unsupported_format; MLflow
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
    if (unsupported !== undefined && unsupported.format !== "keras") {
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
    // Chat templates a serving stack renders (tokenizer_config.json, chat_template.jinja / .json).
    node.findings.push(...(await hfChatTemplateFindings(archive, configs, path)));
    const mlflowRoot = isMlflowLayout(archive.members);
    const torch = torchZipLayout(archive.members);
    if (unsupported?.format === "keras") {
      // A Keras folder in an MLflow bundle or a PyTorch zip: each layout's own checks would skip
      // the other's, so the mix stays unsupported_format, as before Keras was inspected.
      if (mlflowRoot !== undefined || (torch !== undefined && archive.kind === "zip")) {
        node.format = "keras";
        node.findings.push({
          code: "unsupported_format",
          severity: "malformed",
          message: `${unsupported.what} inside an MLflow bundle or PyTorch zip is not inspected by modelgate: rejected`,
          location: path,
        });
        return node;
      }
      // Code members (.py, .so, .pth) next to the model are judged as in any generic archive.
      flagCodeMembers(archive, path, ctx);
      return await inspectKeras(archive, configs, path, ctx);
    }
    if (mlflowRoot !== undefined) return await inspectMlflow(archive, mlflowRoot, path, ctx);
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
