import { resolve } from "node:path";
import { GatewayError, isGatewayError, messageOf } from "../../errors";
import type { Inspector } from "../../inspect/inspector";
import { DEFAULT_CONTENT_POLICY, type ContentPolicy } from "../../inspect/policy";
import type { Finding, ImportRecord, InspectionReport } from "../../inspect/report";
import { inspectFile } from "../../formats/inspectFile";
import { invalidGlobalPattern } from "../../pickle/globalPattern";
import { isPresetName, PRESET_NAMES, type PresetName } from "../../pickle/presets";
import { loadAllowlist } from "../../trust/allowlist";
import { parseCommandArgs } from "../args";
import { findingLines, printable } from "../findingLines";
import type { CliIo, Command } from "../command";
import { COMMAND_HELP } from "./help";
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE } from "../exitCodes";

interface FileResult {
  path: string;
  verdict: "accept" | "reject";
  format: string;
  findings: Finding[];
  imports: ImportRecord[];
  /** Findings beyond the report's cap (MAX_REPORT_FINDINGS), counted by code. */
  omittedFindings?: { count: number; byCode: Record<string, number> };
}

function policyFrom(
  values: {
    policy?: string | undefined;
    source?: string | undefined;
    "allow-global"?: string[] | undefined;
    preset?: string[] | undefined;
    "allow-remote-code"?: boolean | undefined;
  },
  io: CliIo,
): ContentPolicy {
  if ((values.policy === undefined) !== (values.source === undefined)) {
    throw new GatewayError("usage", "--policy and --source go together: the allowlist file and the source whose policy applies");
  }
  let base: ContentPolicy = DEFAULT_CONTENT_POLICY;
  if (values.policy !== undefined && values.source !== undefined) {
    const file = resolve(io.cwd, values.policy);
    const allowlist = loadAllowlist(file);
    const source = allowlist.sources.find((s) => s.id === values.source);
    if (!source) {
      const known = allowlist.sources.map((s) => s.id).join(", ");
      throw new GatewayError("usage", `source '${values.source}' is not in ${values.policy} (known sources: ${known.length > 0 ? known : "none"})`);
    }
    base = source.pickle;
  }
  const extra = values["allow-global"] ?? [];
  for (const p of extra) {
    const why = invalidGlobalPattern(p);
    if (why !== undefined) throw new GatewayError("usage", `--allow-global ${why}`);
  }
  const presets: PresetName[] = [...(base.presets ?? [])];
  for (const p of values.preset ?? []) {
    if (!isPresetName(p)) throw new GatewayError("usage", `--preset "${p}" is not a preset (known presets: ${PRESET_NAMES.join(", ")})`);
    if (!presets.includes(p)) presets.push(p);
  }
  const policy: ContentPolicy = { ...base, allowGlobals: [...base.allowGlobals, ...extra] };
  if (presets.length > 0) policy.presets = presets;
  if (values["allow-remote-code"] === true) policy.allowRemoteCode = true;
  return policy;
}

function humanReport(r: FileResult): string {
  const lines = [printable(`${r.verdict === "accept" ? "ACCEPT" : "REJECT"} ${r.path} (${r.format})`), ...findingLines(r, { rejectingOnly: false })];
  return `${lines.join("\n")}\n`;
}

/** `modelgate scan` over an Inspector (the all-formats one in production, raw pickles in this issue). */
export function makeScanCommand(inspector: Inspector): Command {
  return {
    ...COMMAND_HELP.scan,
    async run(args: string[], io: CliIo): Promise<number> {
      const { values, positionals } = parseCommandArgs(args, {
        json: { type: "boolean" },
        "allow-global": { type: "string", multiple: true },
        "allow-remote-code": { type: "boolean" },
        preset: { type: "string", multiple: true },
        policy: { type: "string" },
        source: { type: "string" },
      });
      if (positionals.length === 0) throw new GatewayError("usage", "name at least one file to scan");
      const policy = policyFrom(values, io);
      const results: FileResult[] = [];
      const errors: { path: string; code: string; message: string }[] = [];
      for (const path of positionals) {
        const file = resolve(io.cwd, path);
        let report: InspectionReport;
        try {
          report = await inspector(file, { policy, fileName: path });
        } catch (err) {
          const code = isGatewayError(err) ? err.code : "io_error";
          errors.push({ path, code, message: messageOf(err) });
          if (values.json !== true) io.stderr(`modelgate scan: ${code}: ${path}: ${messageOf(err)}\n`);
          continue;
        }
        const result: FileResult = { path, verdict: report.verdict, format: report.format, findings: report.findings, imports: report.imports };
        if (report.omittedFindings !== undefined) result.omittedFindings = report.omittedFindings;
        results.push(result);
        if (values.json !== true) io.stdout(humanReport(result));
      }
      if (values.json === true) {
        const doc = errors.length > 0 ? { files: results, errors } : { files: results };
        io.stdout(`${JSON.stringify(doc, null, 2)}\n`);
      }
      if (errors.length > 0) return EXIT_USAGE;
      return results.every((r) => r.verdict === "accept") ? EXIT_OK : EXIT_REJECTED;
    },
  };
}

export const scanCommand: Command = makeScanCommand(inspectFile);
