import type { ByteSource } from "../bytes/source";
import type { ContainerLimits, PickleLimits } from "../limits";
import type { ContentPolicy } from "../inspect/policy";
import type { InspectionNode } from "../inspect/report";
import type { ArchiveContents } from "./containers/archive";

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
