import { Cursor } from "../../bytes/cursor";
import type { ByteSource } from "../../bytes/source";
import { DEFAULT_CONTENT_POLICY } from "../../inspect/policy";
import type { InspectionNode } from "../../inspect/report";
import type { PickleLimits } from "../../limits";
import { analyzePickle } from "../../pickle/analyzer";
import { startsWithWellFormedPickle } from "../../pickle/inspect";
import { makePicklePolicy, type PicklePolicy } from "../../pickle/policy";
import type { FormatInspector } from "../context";
import { createJoblibReader, isJoblibHookedCallable } from "./joblib";

/**
 * The inspector for every raw pickle file and pickle member: the whole source is read as a
 * sequence of pickles, the way joblib.load reads a dump (inline numpy array bytes after each
 * NumpyArrayWrapper are skipped exactly as read_array reads them, object arrays' nested pickles
 * are analyzed). A source without array wrappers is a plain pickle and reads the same either way.
 * The node is the analyzer's (kind "pickle"), format "joblib" when it holds joblib arrays, with
 * one "array" child per array and the loader-disagreement findings of joblib.ts.
 */

export interface PickleFileOptions {
  policy: PicklePolicy;
  limits?: Partial<PickleLimits>;
  /** Stop after the first pickle (sniffing); default reads the whole sequence to the end. */
  single?: boolean;
  /** Cap on array wrappers (MAX_JOBLIB_ARRAYS by default). */
  maxArrays?: number;
  /** Raw arrays given their own report node (MAX_JOBLIB_ARRAY_NODES by default). */
  maxArrayNodes?: number;
}

export function inspectPickleFileSource(source: ByteSource, path: string, options: PickleFileOptions): InspectionNode {
  const cursor = new Cursor(source, { errorCode: "malformed_pickle", what: "pickle" });
  const limits = options.limits === undefined ? {} : { limits: options.limits };
  const joblib = createJoblibReader({
    policy: options.policy,
    location: path,
    ...limits,
    ...(options.maxArrays === undefined ? {} : { maxArrays: options.maxArrays }),
    ...(options.maxArrayNodes === undefined ? {} : { maxArrayNodes: options.maxArrayNodes }),
  });
  const analysis = analyzePickle(cursor, {
    policy: options.policy,
    location: path,
    onBuild: joblib.onBuild,
    onBuildFor: isJoblibHookedCallable,
    // No consumer reads this stream's values: the value-light scanner may run (see src/pickle/valueLightScanner.ts).
    valueFree: true,
    single: options.single === true,
    ...limits,
  });
  const node = analysis.node;
  if (joblib.arrays.length === 0 && joblib.findings.length === 0) return node;
  node.format = "joblib";
  node.findings.push(...joblib.findings);
  node.children.push(...joblib.nodes);
  node.details = {
    ...node.details,
    arrays: joblib.arrays.length,
    arrayBytes: joblib.arrays.reduce((sum, a) => sum + a.dataBytes + a.paddingBytes, 0),
    ...(joblib.unlisted.arrays > 0 ? { arraysNotListed: joblib.unlisted.arrays } : {}),
  };
  return node;
}

/** FormatInspector: the joblib-aware pickle-sequence inspection under the source's policy. */
export const inspectPickleFile: FormatInspector = (source, path, ctx) =>
  Promise.resolve(inspectPickleFileSource(source, path, { policy: makePicklePolicy(ctx.policy), limits: ctx.pickleLimits }));

/** Bounds of the sniff: cheap next to a real inspection. */
const SNIFF_LIMITS: Partial<PickleLimits> = { maxOpsPerStream: 1_000_000, timeBudgetMs: 5_000 };

/**
 * startsWithWellFormedPickle, extended to joblib dumps: pickle/inspect.ts reads raw array bytes as opcodes,
 * so it fails on every joblib dump with arrays; here the first pickle, read the joblib way, must
 * hold an array wrapper and parse to its STOP without malformed findings (reaching the sniff's
 * op budget counts as a pickle; the real inspection reads the rest).
 */
export function startsWithWellFormedPickleOrJoblib(source: ByteSource): boolean {
  if (startsWithWellFormedPickle(source)) return true;
  if (source.size < 2) return false;
  const node = inspectPickleFileSource(source, "", { policy: makePicklePolicy(DEFAULT_CONTENT_POLICY), single: true, limits: SNIFF_LIMITS });
  return node.format === "joblib" && !node.findings.some((f) => f.severity === "malformed" && f.code !== "limit_exceeded");
}
