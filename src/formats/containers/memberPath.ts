import { GatewayError } from "../../errors";

/**
 * The archive-wide member-path rule, one place for every container (zip entries, tar members) and
 * every layout that resolves a path named inside the archive (MLflow's MLmodel paths): the name
 * every extractor would write is this name. And the report's path of a member.
 */

/** Path rules shared with the tar reader: the name every extractor would write is this name. */
export function checkMemberPath(name: string, what = "entry"): void {
  const fail = (why: string): never => {
    // "zip: " for tar members too: the message every reader gave before this rule had its own file.
    throw new GatewayError("malformed_container", `zip: ${what} name ${JSON.stringify(name.slice(0, 200))} ${why}`);
  };
  if (name.length === 0) fail("is empty");
  if (name.includes("\0")) fail("contains NUL");
  if (name.includes("\\")) fail("contains a backslash");
  if (name.startsWith("/")) fail("is absolute");
  if (/^[A-Za-z]:/.test(name)) fail("starts with a drive letter");
  const segments = (name.endsWith("/") ? name.slice(0, -1) : name).split("/");
  for (const seg of segments) {
    if (seg === "..") fail("has a '..' segment");
    if (seg === ".") fail("has a '.' segment");
    if (seg === "") fail("has an empty segment");
  }
  for (const ch of name) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x20 || c === 0x7f) fail("contains a control character");
  }
}

/** The report path of a member: its archive's path, a slash, its name in the archive. */
export function memberPath(archivePath: string, member: string): string {
  return archivePath === "" ? member : `${archivePath}/${member}`;
}
