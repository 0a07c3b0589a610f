import type { ByteSource } from "../bytes/source";
import { isGatewayError, isInspectionErrorCode, type InspectionErrorCode } from "../errors";
import type { Finding, InspectionNode, Severity } from "../inspect/report";
import { MAX_REPORT_MEMBER_NODES } from "../limits";
import type { ArchiveContents, ArchiveMember } from "./containers/archive";
import { memberPath } from "./containers/memberPath";
import type { FormatContext } from "./context";
import { throwIfEnvironmental } from "./ioFailure";

/**
 * What the layouts (models/: torch, MLflow, npz, loader configs) and the dispatcher share, below
 * the dispatcher so that no layout imports it: findings from thrown errors and policy flags, the
 * member walk (open, inspect through ctx.inspectMember, close) and the report bound on member
 * nodes. A layout that recurses into members does it through the FormatContext it is given.
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

/** Every non-directory member through ctx.inspectMember, one level deeper. */
export async function inspectAllMembers(archive: ArchiveContents, path: string, ctx: FormatContext, skip?: ReadonlySet<string>): Promise<void> {
  const inner = deeper(ctx);
  // The archive's files by path, for ONNX external data (onnx.ts): the loader opens them next to the model.
  const files = new Map(archive.members.filter((m) => !m.isDirectory).map((m) => [m.path, m.size] as const));
  for (const member of archive.members) {
    if (member.isDirectory || skip?.has(member.path) === true) continue;
    const p = memberPath(path, member.path);
    const memberCtx: FormatContext = { ...inner, archiveFiles: { reportPath: p, memberPath: member.path, files } };
    appendMemberNode(archive.node, await withMember(member, p, (source) => ctx.inspectMember(source, p, memberCtx)), ctx);
  }
  adoptExternalDataMembers(archive.node, path);
}

/**
 * In an archive, the files an ONNX member names as its external data (models/onnx.ts
 * details.externalDataFiles, checked against this archive's files) are raw tensor bytes, which the
 * member walk would call opaque: once every member is inspected, those opaque members become the
 * model's data (innocuous). Anything else they sniff as (a pickle, an archive) keeps its own findings.
 */
export function adoptExternalDataMembers(archiveNode: InspectionNode, archivePath: string): void {
  const referenced = new Set<string>();
  for (const child of archiveNode.children) {
    const files = child.kind === "onnx" ? child.details?.externalDataFiles : undefined;
    if (Array.isArray(files)) for (const f of files) if (typeof f === "string") referenced.add(archivePath === "" ? f : `${archivePath}/${f}`);
  }
  if (referenced.size === 0) return;
  for (const child of archiveNode.children) {
    if (child.kind !== "opaque" || !referenced.has(child.path)) continue;
    child.kind = "onnx-external-data";
    child.format = "onnx-external-data";
    child.findings = [{ code: "data_member", severity: "innocuous", message: "external tensor data of an ONNX model in this archive", location: child.path }];
  }
}
