import type { InspectionNode } from "../../inspect/report";
import type { ArchiveContents } from "../containers/archive";
import type { FormatContext } from "../context";
import { inspectAllMembers } from "../members";

/**
 * numpy .npz (numpy.savez / savez_compressed): a zip whose members are all `<name>.npy`, stored or
 * deflated. np.load(npz)[name] reads a member with numpy.lib.format.read_array when it starts with
 * the npy magic, and returns its raw bytes otherwise (never unpickling them); an object-dtype
 * member is a pickle read_array runs with allow_pickle=True. So every member goes through
 * ctx.inspectMember: an npy member is inspected by inspectNpy (object arrays' pickles scanned),
 * and any other content is judged by what it is (a pickle disguised as x.npy is still scanned).
 */
export function isNpzLayout(archive: ArchiveContents): boolean {
  const files = archive.members.filter((m) => !m.isDirectory);
  return archive.kind === "zip" && files.length > 0 && files.length === archive.members.length && files.every((m) => m.path.endsWith(".npy"));
}

export async function inspectNpz(archive: ArchiveContents, path: string, ctx: FormatContext): Promise<InspectionNode> {
  archive.node.format = "npz";
  await inspectAllMembers(archive, path, ctx);
  archive.node.details = { ...archive.node.details, arrays: archive.members.length };
  return archive.node;
}
