import type { ByteSource } from "../bytes/source";
import type { InspectionNode } from "../inspect/report";

/**
 * What a zip or tar reader hands to the layout inspectors (torch, npz, MLflow, generic): the
 * member list after every structural check, and a way to open one member's bytes. Opening a
 * compressed member decompresses it (bounded by the container limits and the shared budget) and
 * verifies its CRC/size before the bytes are returned, so layout inspectors only see bytes every
 * loader would read the same way.
 */
export interface ArchiveMember {
  /** Normalised member path ("model/data.pkl"); already checked: relative, no "..", no "\\", no NUL. */
  path: string;
  /** Uncompressed size as declared (and, once opened, verified). */
  size: number;
  /** True for directory entries. */
  isDirectory: boolean;
  open(): Promise<OpenedMember>;
}

export interface OpenedMember {
  source: ByteSource;
  /** Release file descriptors and temp files. */
  close(): void;
}

export interface ArchiveContents {
  kind: "zip" | "tar";
  members: ArchiveMember[];
  /** The archive's own node: structural findings and details; layout inspectors add children. */
  node: InspectionNode;
}
