import { Cursor } from "../bytes/cursor";
import type { ByteSource } from "../bytes/source";
import { DEFAULT_CONTENT_POLICY } from "../inspect/policy";
import type { InspectionNode } from "../inspect/report";
import { analyzePickle, makePicklePolicy } from "../pickle";
import { startsWithWellFormedPickleOrJoblib } from "./models/pickleFile";
/**
 * The dispatcher's pickle detector. Three pickle tests answer three
 * different questions: pickle/inspect.ts startsWithWellFormedPickle (the first pickle parses to its
 * STOP), models/pickleFile.ts startsWithWellFormedPickleOrJoblib (the same, or a joblib dump read
 * the joblib way), and this file's pickleLoadWouldRun (pickle.load would start executing it,
 * broken or not: the one detection uses).
 */

/** Bounds of the broken-pickle probe (the real inspection reads everything). */
const PROBE_LIMITS = { maxOpsPerStream: 100_000, timeBudgetMs: 2_000 };

/**
 * Whether `pickle.load` would start executing this source. A well-formed pickle
 * (startsWithWellFormedPickleOrJoblib: joblib dumps too), or a binary stream opening with PROTO 0-5 (broken or not, the analyzer
 * reports how), or a stream that is broken later but performs a dangerous import before it
 * breaks (nullifAI: pickle.load runs the payload, then fails on the garbage), or one that calls an
 * import outside the safe set before it breaks. Text that only happens to parse as an unknown
 * import (never called) before failing stays text.
 */
export function pickleLoadWouldRun(source: ByteSource, head: Uint8Array): boolean {
  if (head.length >= 2 && head[0] === 0x80 && (head[1] ?? 0xff) <= 5) return true;
  if (startsWithWellFormedPickleOrJoblib(source)) return true;
  const cursor = new Cursor(source, { errorCode: "malformed_pickle", what: "pickle probe" });
  // Frames read as the C unpickler reads them: an opcode straddling a frame end stops the strict
  // analyzer, but pickle.load reads on and runs what follows.
  const probe = analyzePickle(cursor, {
    policy: makePicklePolicy(DEFAULT_CONTENT_POLICY),
    location: "",
    single: true,
    limits: PROBE_LIMITS,
    ignoreFrameBounds: true,
  });
  if (probe.node.findings.some((f) => f.severity === "dangerous")) return true;
  return callsUnsafeImport(probe.node);
}

/**
 * Whether the probed stream calls an import outside the safe set before it stops or breaks:
 * pickle.load has then already run that call (an unknown import called and followed by garbage
 * is still code that ran), so the member is a pickle, not text. An unknown import that is never
 * called stays text (a line of prose can parse as GLOBAL).
 */
function callsUnsafeImport(node: InspectionNode): boolean {
  const unsafe = new Set((node.imports ?? []).filter((r) => r.safety !== "innocuous").map((r) => `${r.module}.${r.name}`));
  if (unsafe.size === 0) return false;
  const calls = node.details?.calls;
  if (!Array.isArray(calls)) return false;
  return calls.some((c: unknown) => {
    if (typeof c !== "object" || c === null) return false;
    const callable = (c as { callable?: unknown }).callable;
    return typeof callable === "string" && (unsafe.has(callable) || callable.startsWith("<"));
  });
}
