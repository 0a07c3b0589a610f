import { resolve } from "node:path";
import { z } from "zod";
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
    "allow-custom-operators"?: boolean | undefined;
    "allow-keras-class"?: string[] | undefined;
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
  if (values["allow-custom-operators"] === true) policy.allowCustomOperators = true;
  const kerasClasses = values["allow-keras-class"] ?? [];
  for (const p of kerasClasses) {
    const why = invalidGlobalPattern(p);
    if (why !== undefined) throw new GatewayError("usage", `--allow-keras-class ${why}`);
  }
  if (kerasClasses.length > 0) policy.keras = { allowClasses: [...(base.keras?.allowClasses ?? []), ...kerasClasses] };
  return policy;
}

function humanReport(r: FileResult): string {
  const lines = [printable(`${r.verdict === "accept" ? "ACCEPT" : "REJECT"} ${r.path} (${r.format})`), ...findingLines(r, { rejectingOnly: false })];
  return `${lines.join("\n")}\n`;
}

/** Inspectors on `jobs` worker threads for `--jobs N` (N > 1), closed when the scan ends. */
export type ScanPoolFactory = (jobs: number, env: NodeJS.ProcessEnv) => Promise<{ inspect: Inspector; close(): Promise<void> }>;

/**
 * The inspection worker pool (src/inspect/workerPool.ts), loaded only for `--jobs N` > 1: each
 * worker runs the all-formats inspector under the pool's time budget and the heap of
 * MODELGATE_INSPECT_WORKER_MEMORY_MB.
 */
const inspectWorkerPool: ScanPoolFactory = async (jobs, env) => {
  const [{ InspectWorkerPool }, { loadInspectConfig }] = await Promise.all([import("../../inspect/workerPool"), import("../../config")]);
  const pool = new InspectWorkerPool({ size: jobs, memoryMb: loadInspectConfig(env).workerMemoryMb });
  return { inspect: pool.inspect, close: () => pool.close() };
};

/** Files inspected at once (`--jobs`): one per worker thread. */
const JobsSchema = z.coerce.number().int().min(1).max(256);

/**
 * `modelgate scan` over an Inspector (the all-formats one in production, raw pickles in this
 * issue). `--jobs 1` (the default) inspects the files one by one on this thread, as always;
 * `--jobs N` inspects up to N at once on a pool of N worker threads (`pooled`). Either way the
 * output follows the order of the arguments.
 */
export function makeScanCommand(inspector: Inspector, pooled: ScanPoolFactory = inspectWorkerPool): Command {
  return {
    ...COMMAND_HELP.scan,
    async run(args: string[], io: CliIo): Promise<number> {
      const { values, positionals } = parseCommandArgs(args, {
        json: { type: "boolean" },
        "allow-global": { type: "string", multiple: true },
        "allow-remote-code": { type: "boolean" },
        "allow-custom-operators": { type: "boolean" },
        "allow-keras-class": { type: "string", multiple: true },
        preset: { type: "string", multiple: true },
        policy: { type: "string" },
        source: { type: "string" },
        jobs: { type: "string" },
      });
      if (positionals.length === 0) throw new GatewayError("usage", "name at least one file to scan");
      const jobsParsed = JobsSchema.safeParse(values.jobs ?? "1");
      if (!jobsParsed.success) throw new GatewayError("usage", `--jobs must be a whole number from 1 to 256, not "${values.jobs ?? ""}"`);
      const jobs = Math.min(jobsParsed.data, positionals.length);
      const policy = policyFrom(values, io);
      const pool = jobs > 1 ? await pooled(jobs, io.env) : undefined;
      const inspect = pool?.inspect ?? inspector;
      const results: FileResult[] = [];
      const errors: { path: string; code: string; message: string }[] = [];
      // Up to `jobs` inspections run ahead of the one being printed: output stays in argument order.
      const outcomes: Promise<{ report: InspectionReport } | { error: unknown }>[] = [];
      const launch = (i: number): void => {
        const path = positionals[i];
        if (path === undefined || outcomes[i] !== undefined) return;
        outcomes[i] = Promise.resolve()
          .then(() => inspect(resolve(io.cwd, path), { policy, fileName: path }))
          .then(
            (report) => ({ report }),
            (error: unknown) => ({ error }),
          );
      };
      try {
        for (let i = 0; i < positionals.length; i++) {
          for (let ahead = i; ahead < i + jobs; ahead++) launch(ahead);
          const path = positionals[i];
          const outcome = await outcomes[i];
          if (path === undefined || outcome === undefined) continue;
          if ("error" in outcome) {
            const err = outcome.error;
            const code = isGatewayError(err) ? err.code : "io_error";
            errors.push({ path, code, message: messageOf(err) });
            if (values.json !== true) io.stderr(`modelgate scan: ${code}: ${path}: ${messageOf(err)}\n`);
            continue;
          }
          const report = outcome.report;
          const result: FileResult = { path, verdict: report.verdict, format: report.format, findings: report.findings, imports: report.imports };
          if (report.omittedFindings !== undefined) result.omittedFindings = report.omittedFindings;
          results.push(result);
          if (values.json !== true) io.stdout(humanReport(result));
        }
      } finally {
        await pool?.close();
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
