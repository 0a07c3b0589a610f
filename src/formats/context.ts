import type { ByteSource } from "../bytes/source";
import type { ContainerLimits, PickleLimits } from "../limits";
import type { ContentPolicy } from "../inspect/policy";
import type { InspectionNode } from "../inspect/report";
import type { ArchiveContents } from "./containers/archive";

/**
 * The other files of the archive a member came from (set per member by members.ts
 * inspectAllMembers): member path -> size, for formats whose loader opens files next to the model
 * (ONNX external data, models/onnx.ts). `reportPath` names the member they belong to, so a context
 * a decompressed layer inherits (another path) does not see them.
 */
export interface ArchiveFiles {
  reportPath: string;
  memberPath: string;
  files: ReadonlyMap<string, number>;
}

/**
 * What every container inspector receives. Inspectors are async (decompression streams are),
 * take a ByteSource (positional reads, never the whole file) and return one report node.
 */
export interface FormatContext {
  policy: ContentPolicy;
  containerLimits: ContainerLimits;
  pickleLimits: PickleLimits;
  /** Archive nesting depth of the source being inspected (0 = the artifact itself). */
  depth: number;
  /** Directory for temp files (decompressed members); inspectors remove what they create. */
  tempDir: string;
  /** Uncompressed bytes produced so far for this artifact, shared across the tree (zip-bomb bound). */
  budget: {
    uncompressedBytes: number;
    /** Innocuous member nodes kept in the report so far (MAX_REPORT_MEMBER_NODES; members.ts appendMemberNode). */
    reportMemberNodes?: number;
  };
  /**
   * The other files of the archive this member came from (set per member by members.ts
   * inspectAllMembers, absent elsewhere): ONNX external data must name one of them.
   */
  archiveFiles?: ArchiveFiles;
  /**
   * Sniff a member by content and inspect it with the right inspector (recursion point for
   * archives). `path` is the member's path in the report tree.
   */
  inspectMember(source: ByteSource, path: string, ctx: FormatContext): Promise<InspectionNode>;
  /**
   * Classify an opened archive's layout (PyTorch, npz, MLflow, TorchScript, generic) and inspect it:
   * the zip and tar readers both end here. Fills and returns `archive.node`.
   */
  inspectArchive(archive: ArchiveContents, path: string, ctx: FormatContext): Promise<InspectionNode>;
}

export type FormatInspector = (source: ByteSource, path: string, ctx: FormatContext) => Promise<InspectionNode>;
