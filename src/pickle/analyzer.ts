import type { Cursor } from "../bytes/cursor";
import { GatewayError, isGatewayError, isInspectionErrorCode, type InspectionErrorCode } from "../errors";
import type { Finding, ImportRecord, ImportSafety, InspectionNode } from "../inspect/report";
import {
  DEFAULT_PICKLE_LIMITS,
  MAX_PICKLE_CALL_SITES,
  MAX_PICKLE_CLASSIFY_CACHE,
  MAX_PICKLE_FINDINGS,
  MAX_PICKLE_IMPORT_RECORDS,
  MAX_PICKLE_PERSISTENT_SAMPLES,
  type PickleLimits,
} from "../limits";
import { PickleReader } from "./pickleReader";
import { BAIL, ValueLightScanner, LIMIT } from "./valueLightScanner";
import { PickleMachine, type MachineEvents } from "./machine";
import { checkNumpyDtype, dtypeFieldsDict, isNumpyDtypeObject } from "./numpyDtype";
import { OP, opcodeName } from "./opcodes";
import { classifyGlobal, type PicklePolicy } from "./policy";
import { UNKNOWN, describeValue, globalName, type ObjectValue, type SymbolicValue } from "./values";

export interface BuildEvent {
  /** The object after BUILD, with its state. */
  target: SymbolicValue;
  /** Offset just after the BUILD opcode. */
  offset: number;
}

export interface AnalyzeOptions {
  policy: PicklePolicy;
  limits?: Partial<PickleLimits>;
  /** Node path for the report, e.g. "archive/data.pkl". */
  location: string;
  /** Stop after the first STOP and report `end`; default false = scan the whole sequence to the end of the cursor's range. */
  single?: boolean;
  /** Called after each BUILD; may advance the cursor past raw bytes the loader reads there (joblib). */
  onBuild?: (event: BuildEvent, cursor: Cursor) => void;
  /** Called for every PERSID/BINPERSID with the decoded id; returns findings to add (torch storage checks). */
  onPersistentId?: (id: SymbolicValue, offset: number) => Finding[];
  /**
   * The caller reads no values (`values` of the result): without onBuild/onPersistentId the
   * analysis may then run the value-light scanner (valueLightScanner.ts), which produces the same report and
   * falls back to the full machine for any stream it cannot prove plain. `values` then holds
   * unknown for the streams it scanned. Default false.
   */
  valueFree?: boolean;
  /**
   * With onBuild and valueFree: the hook acts only on BUILD of objects made by a callable this
   * accepts (joblib: its array wrapper classes and copyreg._reconstructor) and does nothing for
   * any other BUILD. The value-light scanner may then run; a stream with such a BUILD goes to the
   * full machine, which calls the hook with values.
   */
  onBuildFor?: (module: string, name: string) => boolean;
  /** Read frames as CPython's C unpickler does (no boundary checks); for content sniffing only. Default false. */
  ignoreFrameBounds?: boolean;
}

export interface PickleAnalysis {
  /** kind "pickle", with findings, imports, details {protocol, ops, streams, calls, persistentIds}. */
  node: InspectionNode;
  /** Offset just after the last opcode read (after the last STOP when the stream is well formed). */
  end: number;
  ops: number;
  streams: number;
  /** The value STOP returned, for each stream that reached its STOP. */
  values: SymbolicValue[];
}

interface CallSite {
  opcode: string;
  callable: string;
  count: number;
  offset: number;
  stream: number;
}

/**
 * Analyze the pickle (or sequence of pickles) at the cursor without executing anything: every
 * import is classified against the policy, every call site recorded, every problem reported.
 * Never throws for bad input: malformed structure and limits become findings (severity
 * "malformed"), and the findings gathered before the break stay in the report.
 */
export function analyzePickle(cursor: Cursor, options: AnalyzeOptions): PickleAnalysis {
  const limits: PickleLimits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
  const location = options.location;
  const policy = options.policy;
  const findings: Finding[] = [];
  const imports: ImportRecord[] = [];
  const calls = new Map<string, CallSite>();
  const seenFindings = new Set<string>();
  const seenImports = new Set<string>();
  const classified = new Map<string, ReturnType<typeof classifyGlobal>>();
  let omittedFindings = 0;
  let omittedImports = 0;
  const persistentIdSamples: string[] = [];
  let stream = 0;
  let streamLocation = `${location}#pickle[0]`;
  let persistentIds = 0;
  let firstProtocol: number | undefined;

  const reader = PickleReader.ofCursor(cursor, limits.maxRetainedArgumentBytes);
  reader.ignoreFrameBounds = options.ignoreFrameBounds === true;

  /** Add a finding; `always` for the one that ends a stream (malformed, limit), never dropped by the cap. */
  const add = (f: Finding, key?: string, always = false): void => {
    if (findings.length >= MAX_PICKLE_FINDINGS && !always) {
      omittedFindings++;
      return;
    }
    if (key !== undefined) {
      const k = `${stream.toString()}|${key}`;
      if (seenFindings.has(k)) return;
      seenFindings.add(k);
    }
    findings.push(f);
  };

  const classify = (module: string, name: string): ReturnType<typeof classifyGlobal> => {
    const key = `${module}\n${name}`;
    let c = classified.get(key);
    if (c === undefined) {
      c = classifyGlobal(module, name, policy);
      if (classified.size >= MAX_PICKLE_CLASSIFY_CACHE) classified.clear();
      classified.set(key, c);
    }
    return c;
  };

  const record = (module: string, name: string, safety: ImportSafety, opcode: number, offset: number): void => {
    const key = `${stream.toString()}|${opcode.toString()}|${module}\n${name}`;
    if (seenImports.has(key)) return;
    if (imports.length >= MAX_PICKLE_IMPORT_RECORDS) {
      omittedImports++;
      return;
    }
    seenImports.add(key);
    imports.push({ module, name, safety, opcode: opcodeName(opcode), location: streamLocation, offset });
  };

  /** One call (or `count` calls at the same site, replayed from the value-light scanner). */
  const callSite = (opcode: number, callable: SymbolicValue, offset: number, count: number): void => {
    const name = globalName(callable);
    if (name === undefined && callable.kind !== "unknown") {
      add(
        {
          code: "unresolved_global",
          severity: "suspicious",
          message: `${opcodeName(opcode)} calls ${describeValue(callable)}, which is not an import`,
          location: streamLocation,
          offset,
        },
        `call|${opcode.toString()}|${callable.kind}`,
      );
    }
    const shown = name ?? `<${callable.kind}>`;
    const key = `${stream.toString()}|${opcode.toString()}|${shown}`;
    const site = calls.get(key);
    if (site) site.count += count;
    else if (calls.size < MAX_PICKLE_CALL_SITES) calls.set(key, { opcode: opcodeName(opcode), callable: shown, count, offset, stream });
  };

  /** numpy dtypes a BUILD has set the state of (numpy writes one BUILD per dtype). */
  const builtDtypes = new WeakSet();
  /**
   * Every BUILD of a numpy dtype runs numpy.dtype.__setstate__, which believes the state's flags,
   * sizes and fields: the state must be exactly what numpy writes (src/pickle/numpyDtype.ts).
   * The value-light scanner hands every stream with such a BUILD to the machine.
   */
  const checkDtypeBuild = (target: ObjectValue, end: number): void => {
    const offset = end - 1;
    let problem: string | undefined;
    if (builtDtypes.has(target)) problem = "a second BUILD sets the state of the same numpy.dtype: numpy writes one, right after the dtype";
    else if (machine.dtypesReferencedBeforeBuild.has(target)) {
      problem = "BUILD sets the state of a numpy.dtype that the pickle already referenced (memo or DUP): numpy writes it right after the dtype, before any use";
    }
    builtDtypes.add(target);
    if (problem === undefined) {
      try {
        checkNumpyDtype(target);
        const fields = dtypeFieldsDict(target);
        if (fields !== undefined) machine.freeze(fields);
      } catch (err) {
        if (!isGatewayError(err) || err.code !== "unsafe_dtype") throw err;
        problem = err.message;
      }
    }
    if (problem !== undefined) {
      add(
        { code: "unsafe_dtype", severity: "dangerous", message: `BUILD at offset ${offset.toString()}: ${problem}`, location: streamLocation, offset },
        `dtype|${offset.toString()}`,
      );
    }
  };

  const events: MachineEvents = {
    import(module, name, opcode, offset) {
      const c = classify(module, name);
      record(module, name, c.safety, opcode, offset);
      if (c.code !== undefined) {
        const global = `${module}.${name}`;
        add(
          {
            code: c.code,
            severity: c.safety === "dangerous" ? "dangerous" : "suspicious",
            message: `${opcodeName(opcode)} imports ${global}: ${c.reason}`,
            location: streamLocation,
            offset,
            global,
          },
          `${c.code}|${global}`,
        );
      }
    },
    unresolvedGlobal(module, name, offset) {
      record(module.kind === "str" ? module.value : "?", name.kind === "str" ? name.value : "?", "dangerous", OP.STACK_GLOBAL, offset);
      add({
        code: "unresolved_global",
        severity: "dangerous",
        message: `STACK_GLOBAL operands are not string constants (module ${describeValue(module)}, name ${describeValue(name)}): the import cannot be proven`,
        location: streamLocation,
        offset,
      });
    },
    extension(code, opcode, offset) {
      record("copyreg", `_extension_registry[${code.toString()}]`, "dangerous", opcode, offset);
      add(
        {
          code: "extension_opcode",
          severity: "dangerous",
          message: `${opcodeName(opcode)} ${code.toString()} imports whatever the copyreg extension registry maps that code to`,
          location: streamLocation,
          offset,
        },
        `ext|${code.toString()}`,
      );
    },
    call(opcode, callable, offset) {
      callSite(opcode, callable, offset, 1);
    },
    mutateGlobal(opcode, target, offset) {
      const global = globalName(target);
      add(
        {
          code: "dangerous_global",
          severity: "dangerous",
          message: `${opcodeName(opcode)} modifies the imported object ${global ?? "?"} itself (module state), which no serializer writes`,
          location: streamLocation,
          offset,
          ...(global !== undefined ? { global } : {}),
        },
        `mutate|${opcode.toString()}|${global ?? ""}`,
      );
    },
    persistent(id, offset) {
      persistentIds++;
      if (persistentIdSamples.length < MAX_PICKLE_PERSISTENT_SAMPLES) persistentIdSamples.push(describeValue(id));
      if (options.onPersistentId) {
        for (const f of options.onPersistentId(id, offset)) add({ ...f, location: f.location ?? streamLocation, offset: f.offset ?? offset });
      }
    },
    mutateFrozen(opcode, offset) {
      add(
        {
          code: "unsafe_dtype",
          severity: "dangerous",
          message: `${opcodeName(opcode)} at offset ${offset.toString()} changes the fields dict of a numpy.dtype after its BUILD (numpy keeps the dict by reference; numpy never writes this)`,
          location: streamLocation,
          offset,
        },
        `frozen|${offset.toString()}`,
      );
    },
    build(target, end) {
      if (isNumpyDtypeObject(target)) checkDtypeBuild(target, end);
      const onBuild = options.onBuild;
      if (!onBuild) return;
      cursor.seek(end);
      onBuild({ target, offset: end }, cursor);
      const moved = cursor.position;
      if (moved !== end) {
        if (reader.frameEnd > end) {
          throw new GatewayError(
            "malformed_pickle",
            `raw data read after BUILD inside a FRAME that has ${(reader.frameEnd - end).toString()} bytes left at offset ${end.toString()}`,
            { offset: end },
          );
        }
        reader.seek(moved);
      }
    },
  };

  const deadline = Date.now() + limits.timeBudgetMs;
  const machine = new PickleMachine(limits, events, deadline);
  const values: SymbolicValue[] = [];
  const fast =
    options.valueFree === true &&
    (options.onBuild === undefined || options.onBuildFor !== undefined) &&
    options.onPersistentId === undefined &&
    ValueLightScanner.usable(limits)
      ? new ValueLightScanner(reader.source, reader.end, limits, deadline, options.onBuild === undefined ? undefined : options.onBuildFor)
      : undefined;
  /** PROTO of the stream that ran last (the full machine's or the scanner's). */
  let lastProtocol = 0;
  let totalOps = 0;
  let streams = 0;
  let end = reader.pos;

  /**
   * The finding that ends the analysis where stream `streamStart` broke after `streamOps` opcodes
   * (the machine's exception or the limit the value-light scanner reached).
   */
  const addEnding = (code: InspectionErrorCode, message: string, offset: number, streamStart: number, streamOps: number): void => {
    const afterStop = stream > 0 && streamOps <= 1;
    add(
      {
        code,
        // A hook (joblib) that cannot size an array by a dtype numpy would not write.
        severity: code === "unsafe_dtype" ? "dangerous" : "malformed",
        message: afterStop ? `bytes after STOP at offset ${streamStart.toString()} are not a pickle: ${message}` : message,
        location: streamLocation,
        offset,
      },
      undefined,
      true,
    );
    end = Math.max(end, Math.min(offset, reader.end));
  };

  /**
   * Scan the stream at `start` with the value-light scanner; when it reaches STOP or a limit,
   * replay its imports and calls in order of first occurrence (the same records, findings and
   * counts the machine's events produce) and then move the reader past STOP ("done") or add the
   * machine's limit finding ("limit"). "machine": nothing was recorded, run the machine.
   */
  const scanValueLight = (scanner: ValueLightScanner, start: number): "done" | "limit" | "machine" => {
    const after = scanner.run(start, machine.decodedBytes, totalOps);
    // Past the findings cap the machine's duplicate events count as omitted findings: let it.
    if (after === BAIL || findings.length + scanner.imports.length >= MAX_PICKLE_FINDINGS) return "machine";
    for (const imp of scanner.imports) events.import(imp.module, imp.name, imp.opcode, imp.offset);
    for (const c of scanner.calls()) callSite(c.opcode, { kind: "global", module: c.module, name: c.name }, c.offset, c.count);
    if (after === LIMIT) {
      lastProtocol = scanner.protocol;
      totalOps += scanner.ops;
      addEnding("limit_exceeded", `${scanner.limitMessage} at offset ${scanner.limitOffset.toString()}`, scanner.limitOffset, start, scanner.ops);
      return "limit";
    }
    machine.decodedBytes += scanner.decodedBytes;
    reader.seek(after);
    reader.frameEnd = -1;
    return "done";
  };

  for (;;) {
    if (streams >= limits.maxStreamsPerSequence) {
      add(
        {
          code: "limit_exceeded",
          severity: "malformed",
          message: `more than ${limits.maxStreamsPerSequence.toString()} pickles in one sequence (maxStreamsPerSequence) at offset ${reader.pos.toString()}`,
          location,
          offset: reader.pos,
        },
        undefined,
        true,
      );
      break;
    }
    stream = streams++;
    streamLocation = `${location}#pickle[${stream.toString()}]`;
    const streamStart = reader.pos;
    const scanned = fast === undefined ? "machine" : scanValueLight(fast, streamStart);
    if (scanned === "limit") break;
    if (fast !== undefined && scanned === "done") {
      values.push(UNKNOWN);
      firstProtocol ??= fast.protocol;
      lastProtocol = fast.protocol;
      totalOps += fast.ops;
      end = reader.pos;
      if (options.single === true || reader.pos >= reader.end) break;
      continue;
    }
    machine.reset();
    machine.opsBefore = totalOps;
    try {
      values.push(machine.run(reader));
      firstProtocol ??= machine.protocol;
      lastProtocol = machine.protocol;
      totalOps += machine.ops;
      end = reader.pos;
    } catch (err) {
      lastProtocol = machine.protocol;
      totalOps += machine.ops;
      if (!isGatewayError(err)) throw err;
      const code: InspectionErrorCode = isInspectionErrorCode(err.code) ? err.code : "malformed_pickle";
      const offset = typeof err.details?.offset === "number" ? err.details.offset : reader.offset;
      addEnding(code, err.message, offset, streamStart, machine.ops);
      break;
    }
    if (options.single === true || reader.pos >= reader.end) break;
  }

  if (omittedFindings > 0) {
    findings.push({ code: "info", severity: "innocuous", message: `${omittedFindings.toString()} more findings omitted`, location });
  }
  cursor.seek(Math.min(Math.max(end, cursor.start), cursor.end));

  const node: InspectionNode = {
    kind: "pickle",
    path: location,
    format: "pickle",
    findings,
    imports,
    details: {
      protocol: firstProtocol ?? lastProtocol,
      ops: totalOps,
      streams,
      persistentIds,
      persistentIdSamples,
      calls: [...calls.values()],
      ...(omittedImports > 0 ? { importsOmitted: omittedImports } : {}),
    },
    children: [],
  };
  return { node, end, ops: totalOps, streams, values };
}
