import { GatewayError } from "../../errors";
import type { Finding } from "../../inspect/report";
import { MAX_CHAT_TEMPLATE_BYTES, MAX_LOADER_CONFIG_BYTES } from "../../limits";
import { readWholeMember, type ArchiveContents } from "../containers/archive";
import { memberPath } from "../containers/memberPath";
import { findingOf } from "../members";
import { chatTemplateFindings } from "./chatTemplate";
import type { LoaderConfig } from "./loaderConfigs";

/**
 * The chat templates of a Hugging Face model folder, as transformers finds them
 * (tokenization_utils_base.PreTrainedTokenizerBase.from_pretrained / processing_utils):
 *
 * - `tokenizer_config.json` `chat_template`: a string, or a list of `{"name", "template"}` (named
 *   templates; apply_chat_template picks one by name, "default" otherwise);
 * - `chat_template.jinja` (the file save_pretrained writes since transformers 4.49) and
 *   `additional_chat_templates/<name>.jinja` (named ones);
 * - `chat_template.json` `{"chat_template": string | {name: string} | [{name, template}]}` (processors).
 *
 * Each goes through the same check as a GGUF's (chatTemplate.ts). Found by name, case folded, in
 * any folder of the archive (the folder a loader is pointed at may be any of them).
 */

function baseNameOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return (slash < 0 ? path : path.slice(slash + 1)).toLowerCase().replace(/[. ]+$/, "");
}

function malformed(message: string): GatewayError {
  return new GatewayError("malformed_container", message);
}

/** Templates of a `chat_template` value: a string, a list of {name, template}, or (chat_template.json) an object of name -> string. */
function templatesOf(value: unknown, file: string, allowObject: boolean): { key: string; text: string }[] {
  if (value === null || value === undefined) return [];
  if (typeof value === "string") return [{ key: `${file} chat_template`, text: value }];
  if (Array.isArray(value)) {
    return (value as unknown[]).map((item, i) => {
      if (typeof item !== "object" || item === null || Array.isArray(item)) throw malformed(`${file}: chat_template[${i}] is not a {name, template} object`);
      const { name, template } = item as { name?: unknown; template?: unknown };
      if (typeof name !== "string" || typeof template !== "string") throw malformed(`${file}: chat_template[${i}] needs a string name and template`);
      return { key: `${file} chat_template[${JSON.stringify(name)}]`, text: template };
    });
  }
  if (allowObject && typeof value === "object") {
    return Object.entries(value as Record<string, unknown>).map(([name, template]) => {
      if (typeof template !== "string") throw malformed(`${file}: chat_template.${name} is not a string`);
      return { key: `${file} chat_template[${JSON.stringify(name)}]`, text: template };
    });
  }
  throw malformed(`${file}: chat_template is neither a string nor a list of {name, template}`);
}

function decode(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw malformed(`${file} is not UTF-8`);
  }
}

function isJinjaTemplateMember(path: string): boolean {
  const base = baseNameOf(path);
  if (base === "chat_template.jinja") return true;
  const parts = path.toLowerCase().split("/");
  return base.endsWith(".jinja") && parts[parts.length - 2] === "additional_chat_templates";
}

/** Findings for every chat template of the archive (tokenizer_config.json values already parsed by readLoaderConfigs). */
export async function hfChatTemplateFindings(archive: ArchiveContents, configs: readonly LoaderConfig[], path: string): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const c of configs) {
    if (c.baseName !== "tokenizer_config.json" || typeof c.value !== "object" || c.value === null || Array.isArray(c.value)) continue;
    if (!Object.hasOwn(c.value, "chat_template")) continue;
    try {
      for (const t of templatesOf((c.value as Record<string, unknown>).chat_template, c.member, false)) {
        findings.push(...chatTemplateFindings(t.text, t.key, c.location));
      }
    } catch (err) {
      findings.push(findingOf(err, c.location));
    }
  }
  for (const member of archive.members) {
    if (member.isDirectory) continue;
    const isJinja = isJinjaTemplateMember(member.path);
    const isJson = baseNameOf(member.path) === "chat_template.json";
    if (!isJinja && !isJson) continue;
    const location = memberPath(path, member.path);
    try {
      const max = isJinja ? MAX_CHAT_TEMPLATE_BYTES : MAX_LOADER_CONFIG_BYTES;
      if (member.size > max)
        throw new GatewayError("limit_exceeded", `${member.path} is ${member.size} bytes, more than ${max}: a loader reads it by name, so it is not skipped`);
      const text = decode(await readWholeMember(member, max), member.path);
      if (isJinja) {
        findings.push(...chatTemplateFindings(text, member.path, location));
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(text.replace(/^\uFEFF/, "")) as unknown;
      } catch (err) {
        throw malformed(`${member.path} is not JSON as modelgate parses it (${(err as Error).message})`);
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed(`${member.path} is not a JSON object`);
      for (const t of templatesOf((value as Record<string, unknown>).chat_template, member.path, true)) {
        findings.push(...chatTemplateFindings(t.text, t.key, location));
      }
    } catch (err) {
      findings.push(findingOf(err, location));
    }
  }
  return findings;
}
