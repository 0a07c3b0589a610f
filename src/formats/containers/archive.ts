import type { ByteSource } from "../../bytes/source";
import { GatewayError } from "../../errors";
import type { InspectionNode } from "../../inspect/report";

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

/**
 * One member's bytes, whole (for the small text members layouts parse: MLmodel, loader configs).
 * The caller bounds the declared `member.size` first (with its own message); the opened size is
 * checked against `maxBytes` again before anything is allocated (`limit_exceeded`), and a member
 * whose bytes end early is `malformed_container`.
 */
export async function readWholeMember(member: ArchiveMember, maxBytes: number): Promise<Uint8Array> {
  const opened = await member.open();
  try {
    if (opened.source.size > maxBytes) throw new GatewayError("limit_exceeded", `member ${member.path} is over ${maxBytes} bytes`);
    const bytes = new Uint8Array(opened.source.size);
    const got = opened.source.readAt(bytes, 0);
    if (got !== bytes.length) throw new GatewayError("malformed_container", `member ${member.path} ended after ${got} of ${bytes.length} bytes`);
    return bytes;
  } finally {
    opened.close();
  }
}
