import { parseDocument } from "yaml";
import type { ByteSource } from "../bytes/source";
import type { ContainerLimits } from "../limits";
import type { InspectionNode } from "../inspect/report";

/**
 * Data members: configs, tokenizers, requirements, input examples. Inside an archive, plain text,
 * JSON and YAML are reported as data (an innocuous `data_member` finding), not rejected. The
 * dispatcher asks the pickle sniffer first: a protocol-0 pickle is ASCII text too, and whatever
 * could be unpickled is scanned as a pickle whatever its name.
 *
 * Text means: valid UTF-8 from the first byte to the last (streamed in chunks), no NUL and no C0
 * control characters other than tab, newline, carriage return and form feed.
 */

export type DataFormat = "json" | "yaml" | "text";

const CHUNK = 256 * 1024;

function hasForbiddenControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c) return true;
    if (c === 0x7f) return true;
  }
  return false;
}

/**
 * The data format of a source, or undefined when it is not text. Small members (up to
 * limits.maxTextMemberBytes) are also parsed as JSON, then YAML (core schema, no custom tags), to
 * name the format; larger text is "text".
 */
export function classifyData(source: ByteSource, limits: ContainerLimits): DataFormat | undefined {
  if (source.size === 0) return "text";
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const keep = source.size <= limits.maxTextMemberBytes;
  const parts: string[] = [];
  const buf = new Uint8Array(Math.min(CHUNK, source.size));
  let pos = 0;
  try {
    while (pos < source.size) {
      const n = Math.min(buf.length, source.size - pos);
      const view = n === buf.length ? buf : buf.subarray(0, n);
      if (source.readAt(view, pos) !== n) return undefined;
      pos += n;
      const text = decoder.decode(view, { stream: pos < source.size });
      if (hasForbiddenControl(text)) return undefined;
      if (keep) parts.push(text);
    }
  } catch {
    return undefined;
  }
  if (!keep) return "text";
  const text = parts.join("").replace(/^\uFEFF/, "");
  const trimmed = text.trimStart();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      JSON.parse(text);
      return "json";
    } catch {
      // not JSON: maybe YAML flow style, or text
    }
  }
  if (/^(---|%YAML|[\w"'.-][^\n]*:(\s|$))/m.test(trimmed)) {
    try {
      const doc = parseDocument(text, { schema: "core", customTags: [], uniqueKeys: true });
      if (doc.errors.length === 0 && doc.contents !== null && typeof doc.contents === "object" && "items" in doc.contents) return "yaml";
    } catch {
      return "text";
    }
  }
  return "text";
}

export function dataNode(path: string, format: DataFormat, size: number): InspectionNode {
  return {
    kind: "data",
    path,
    format,
    findings: [{ code: "data_member", severity: "innocuous", message: `${format} data member (${size} bytes), reported as data`, location: path }],
    details: { bytes: size },
    children: [],
  };
}
