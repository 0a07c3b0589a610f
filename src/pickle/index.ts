/**
 * The pickle analyzer: disassemble pickle streams without executing them, simulate the
 * unpickler's stack and memo symbolically, resolve every import and call, and judge imports
 * against the built-in safe set, the source's patterns and the hard floor.
 */
export { analyzePickle, type AnalyzeOptions, type BuildEvent, type PickleAnalysis } from "./analyzer";
export { disassemble, PickleReader, type DisassembledOp, type OpArgument } from "./pickleReader";
export { FLOOR, FLOOR_GROUPS, floorGroupOf, type FloorGroup } from "./floor";
export { inspectPickleSource, startsWithWellFormedPickle } from "./inspect";
export { MAX_RETAINED_HARD, MAX_RETAINED_ITEMS, MAX_RETAINED_TOTAL } from "../limits";
export { SMALL_CONTAINER } from "./machine";
export { HIGHEST_PROTOCOL, OP, OPCODES, opcodeInfo, opcodeName, type ArgKind, type OpcodeInfo, type OpName } from "./opcodes";
export { invalidGlobalPattern } from "./globalPattern";
export { classifyGlobal, compatName, makePicklePolicy, type GlobalClassification, type PicklePolicy } from "./policy";
export { SAFE_GLOBALS, SAFE_SET, safeReason, type SafeEntry } from "./safeSet";
export { describeValue, globalName, type SymbolicValue } from "./values";
export type { PickleLimits } from "../limits";
