import { parse, tokenize } from "@huggingface/jinja";
import type { Finding } from "../../inspect/report";
import { MAX_CHAT_TEMPLATE_BYTES, MAX_CHAT_TEMPLATE_FINDINGS, MAX_TEMPLATE_RANGE } from "../../limits";

/**
 * Chat templates: Jinja source a serving stack renders with the conversation. transformers'
 * apply_chat_template renders it in an ImmutableSandboxedEnvironment, llama.cpp with its own
 * minja/jinja engine, but llama-cpp-python's Jinja2ChatFormatter, SGLang and others have used a
 * plain `jinja2.Environment` (no sandbox): there `{{ ''.__class__.__mro__[1].__subclasses__() }}`
 * and friends reach Python's object graph and run code on the serving host (server-side template
 * injection, e.g. CVE-2024-34359 "Llama Drama").
 *
 * The template is parsed with a real Jinja parser (@huggingface/jinja: tokenize + parse, no
 * rendering) and its syntax tree judged against an allowlist of what real chat templates use
 * (the corpus in test/fixtures/chat-templates: transformers' and @huggingface/jinja's test set of
 * current open models). Everything else is `unsafe_template`: attribute or item names starting
 * with `_` or naming Python internals, names computed at run time (`|attr`, `x[a ~ b]`), Jinja
 * globals other than the chat-template ones (`self`, `cycler`, `joiner`, `lipsum`, ...), their
 * attributes, unknown variables, filters, tests, methods and callables. A template this parser
 * cannot parse is one modelgate cannot vouch for: `malformed_container` (Jinja2 may still read it).
 */

/**
 * Variables a chat template may read from its render context: transformers' apply_chat_template
 * (messages, tools, documents, add_generation_prompt, continue_final_message, the tokenizer's
 * special tokens, and template kwargs such as enable_thinking), llama.cpp's common_chat_templates
 * (the same names, `now`/date_string) and the extra kwargs of the corpus' templates.
 */
export const TEMPLATE_CONTEXT_VARIABLES: ReadonlySet<string> = new Set([
  "messages",
  "conversation",
  "tools",
  "documents",
  "add_generation_prompt",
  "continue_final_message",
  "bos_token",
  "eos_token",
  "unk_token",
  "pad_token",
  "sep_token",
  "cls_token",
  "mask_token",
  "additional_special_tokens",
  "enable_thinking",
  "thinking",
  "reasoning_effort",
  "tools_in_user_message",
  "date_string",
  "builtin_tools",
  "custom_tools",
  "tool_choice",
  "xml_tools",
  "python_tools",
  "add_vision_id",
  "system_message",
  "default_system_message",
  "chat_template_kwargs",
  "now",
  "preserve_thinking",
  "clear_thinking",
  "keep_cots",
  "response_format",
  "json_schema",
  "citation_mode",
  "safety_mode",
  "skip_think",
  "thinking_budget",
  "user_name",
  "assistant_name",
  "categories",
  "excluded_category_keys",
  "enable_citations",
  "generation_preamble",
  // transformers' legacy LlamaTokenizer default_chat_template
  "USE_DEFAULT_PROMPT",
  "DEFAULT_SYSTEM_MESSAGE",
]);

/** Jinja literals and the chat-template globals (raise_exception and strftime_now are added by transformers and llama.cpp). */
const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
  "true",
  "false",
  "none",
  "True",
  "False",
  "None",
  "raise_exception",
  "strftime_now",
  "namespace",
  "range",
  "dict",
]);

/** Names bound inside a for loop and a macro / call block. */
const IMPLICIT_LOCALS: ReadonlySet<string> = new Set(["loop", "caller", "varargs", "kwargs"]);

/** Jinja globals (jinja2 DEFAULT_NAMESPACE) and names web frameworks add: never readable. */
const DENIED_GLOBALS: ReadonlySet<string> = new Set([
  "self",
  "cycler",
  "joiner",
  "lipsum",
  "config",
  "request",
  "session",
  "g",
  "url_for",
  "get_flashed_messages",
]);

/** Callables a template may call by name (besides its own macros). */
const CALLABLE_GLOBALS: ReadonlySet<string> = new Set(["raise_exception", "strftime_now", "namespace", "range", "dict", "caller"]);

/** jinja2 built-in filters real chat templates use. Not `attr` (a name computed at run time), not `format` (%-formatting). */
export const TEMPLATE_FILTERS: ReadonlySet<string> = new Set([
  "abs",
  "batch",
  "capitalize",
  "center",
  "count",
  "d",
  "default",
  "dictsort",
  "e",
  "escape",
  "first",
  "float",
  "groupby",
  "indent",
  "int",
  "items",
  "join",
  "last",
  "length",
  "list",
  "lower",
  "map",
  "max",
  "min",
  "reject",
  "rejectattr",
  "replace",
  "reverse",
  "round",
  "safe",
  "select",
  "selectattr",
  "slice",
  "sort",
  "string",
  "striptags",
  "sum",
  "title",
  "tojson",
  "trim",
  "truncate",
  "unique",
  "upper",
  "wordcount",
  "wordwrap",
]);

/** jinja2 built-in tests. */
export const TEMPLATE_TESTS: ReadonlySet<string> = new Set([
  "boolean",
  "callable",
  "defined",
  "divisibleby",
  "eq",
  "equalto",
  "==",
  "escaped",
  "even",
  "false",
  "float",
  "ge",
  ">=",
  "gt",
  ">",
  "greaterthan",
  "in",
  "integer",
  "iterable",
  "le",
  "<=",
  "lower",
  "lt",
  "<",
  "lessthan",
  "mapping",
  "ne",
  "!=",
  "none",
  "number",
  "odd",
  "sameas",
  "sequence",
  "string",
  "true",
  "undefined",
  "upper",
]);

/** Methods of str, list and dict (and the `loop` helpers) a template may call. Not format / format_map (str.format reaches attributes). */
export const TEMPLATE_METHODS: ReadonlySet<string> = new Set([
  // str
  "strip",
  "lstrip",
  "rstrip",
  "split",
  "rsplit",
  "splitlines",
  "startswith",
  "endswith",
  "lower",
  "upper",
  "title",
  "capitalize",
  "casefold",
  "swapcase",
  "replace",
  "find",
  "rfind",
  "index",
  "rindex",
  "count",
  "join",
  "isdigit",
  "isalpha",
  "isalnum",
  "isspace",
  "islower",
  "isupper",
  "isnumeric",
  "zfill",
  "ljust",
  "rjust",
  "partition",
  "rpartition",
  "removeprefix",
  "removesuffix",
  // list
  "append",
  "extend",
  "insert",
  "pop",
  "remove",
  "copy",
  // dict
  "items",
  "keys",
  "values",
  "get",
  "update",
  "setdefault",
  // loop
  "cycle",
  "changed",
]);

/** Filters whose keyword `attribute=` / first positional argument names an attribute. */
const ATTRIBUTE_ARGUMENT_FILTERS: ReadonlySet<string> = new Set(["selectattr", "rejectattr", "groupby"]);
/** Filters whose first positional argument names another filter (map) or test (select / reject). */
const FILTER_ARGUMENT_FILTERS: ReadonlySet<string> = new Set(["map"]);
const TEST_ARGUMENT_FILTERS: ReadonlySet<string> = new Set(["select", "reject", "selectattr", "rejectattr"]);

/**
 * Attribute names that lead from a plain value to code objects, frames or the interpreter without
 * a leading underscore (generator / coroutine / frame / traceback / function internals, Python 2
 * function attributes, `mro`), and Jinja's template-object attributes.
 */
const DENIED_ATTRIBUTE =
  /^(?:_.*|mro|format|format_map|gi_\w+|cr_\w+|ag_\w+|f_\w+|tb_\w+|co_\w+|func_\w+|im_\w+|environment|module|globals|exported_vars|blocks|root_render_func)$/;

/** Filters with a numeric result: allowed inside a subscript (messages[messages|length - 1]). */
const NUMERIC_FILTERS: ReadonlySet<string> = new Set(["length", "count", "int", "abs", "round"]);

/** A loose view of the parser's nodes: every node has `type`; the rest is read per type. */
interface Node {
  type: string;
  [key: string]: unknown;
}

function isNode(v: unknown): v is Node {
  return typeof v === "object" && v !== null && typeof (v as { type?: unknown }).type === "string";
}

function nodeAt(n: Node, key: string): Node | undefined {
  const v = n[key];
  return isNode(v) ? v : undefined;
}

function nodesAt(n: Node, key: string): Node[] {
  const v = n[key];
  return Array.isArray(v) ? v.filter(isNode) : [];
}

function stringAt(n: Node, key: string): string | undefined {
  const v = n[key];
  return typeof v === "string" ? v : undefined;
}

/** The operator text of a BinaryExpression / UnaryExpression (a lexer Token). */
function operatorOf(n: Node): string {
  const op = n.operator;
  return typeof op === "object" && op !== null && typeof (op as { value?: unknown }).value === "string" ? (op as { value: string }).value : "";
}

export interface TemplateViolation {
  /** The construct refused, e.g. "attribute __class__", "filter attr". */
  construct: string;
}

export type TemplateVerdict =
  { ok: true } | { ok: false; malformed: string; code: "malformed_container" | "limit_exceeded" } | { ok: false; violations: TemplateViolation[] };

/** Names the template binds itself (set, for, macro and its parameters, call-block parameters), and which of them are set to a number. */
function boundNames(root: Node): { bound: Set<string>; numeric: Set<string>; loopVars: Set<string>; macros: Set<string> } {
  const bound = new Set<string>();
  const macros = new Set<string>();
  const loops: Node[] = [];
  const numeric = new Set<string>();
  const loopVars = new Set<string>();
  const stack: Node[] = [root];
  const bindTarget = (target: Node | undefined, into: Set<string>[]): void => {
    if (target === undefined) return;
    if (target.type === "Identifier") {
      const name = stringAt(target, "value");
      if (name !== undefined) for (const s of into) s.add(name);
    } else if (target.type === "TupleLiteral" || target.type === "ArrayLiteral") {
      for (const t of nodesAt(target, "value")) bindTarget(t, into);
    }
  };
  const params = (list: Node[], into: Set<string>[]): void => {
    for (const p of list) bindTarget(p.type === "KeywordArgumentExpression" ? nodeAt(p, "key") : p, into);
  };
  while (stack.length > 0) {
    const n = stack.pop();
    if (n === undefined) continue;
    if (n.type === "Set") {
      const assignee = nodeAt(n, "assignee");
      const value = nodeAt(n, "value");
      bindTarget(assignee, [bound]);
      if (assignee?.type === "Identifier" && value !== undefined && isNumericExpression(value)) bindTarget(assignee, [numeric]);
    } else if (n.type === "For") {
      bindTarget(nodeAt(n, "loopvar"), [bound]);
      loops.push(n);
    } else if (n.type === "Macro") {
      bindTarget(nodeAt(n, "name"), [bound, macros]);
      params(nodesAt(n, "args"), [bound, loopVars]);
    } else if (n.type === "CallStatement") {
      params(nodesAt(n, "callerArgs"), [bound]);
    }
    for (const [key, v] of Object.entries(n)) {
      if (key === "operator") continue;
      if (isNode(v)) stack.push(v);
      else if (Array.isArray(v))
        for (const c of v)
          if (isNode(c)) stack.push(c);
          else if (v instanceof Map) for (const [k, val] of v as Map<unknown, unknown>) for (const c of [k, val]) if (isNode(c)) stack.push(c);
    }
  }
  // A for variable is a key from the data only when the loop walks the data: its iterable holds
  // no literal (`for k in ['__class__']`, `{'__class__': 1}.items()`) and starts from a context
  // variable, range() or another such loop's variable (to a fixpoint: loops nest).
  for (let changed = true; changed;) {
    changed = false;
    for (const loop of loops) {
      const target = nodeAt(loop, "loopvar");
      const iterable = nodeAt(loop, "iterable");
      if (target === undefined || iterable === undefined || holdsLiteralString(iterable)) continue;
      const root = rootName(iterable);
      if (root === undefined || !(TEMPLATE_CONTEXT_VARIABLES.has(root) || root === "range" || loopVars.has(root))) continue;
      const before = loopVars.size;
      bindTarget(target, [loopVars]);
      if (loopVars.size !== before) changed = true;
    }
  }
  return { bound, numeric, loopVars, macros };
}

/** Whether an expression holds a string, list, tuple or dict literal anywhere. */
function holdsLiteralString(root: Node): boolean {
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const n = stack.pop();
    if (n === undefined) continue;
    if (["StringLiteral", "ArrayLiteral", "TupleLiteral", "ObjectLiteral"].includes(n.type)) return true;
    for (const [key, v] of Object.entries(n)) {
      if (key === "operator") continue;
      if (isNode(v)) stack.push(v);
      else if (Array.isArray(v)) for (const c of v) if (isNode(c)) stack.push(c);
    }
  }
  return false;
}

/** The variable an expression starts from (`messages` in `messages[1:]|selectattr(...)`, `range` in `range(n)`). */
function rootName(n: Node): string | undefined {
  let cur: Node | undefined = n;
  for (let i = 0; cur !== undefined && i < 10_000; i++) {
    if (cur.type === "Identifier") return stringAt(cur, "value");
    cur = nodeAt(cur, "object") ?? nodeAt(cur, "operand") ?? nodeAt(cur, "callee") ?? nodeAt(cur, "lhs");
  }
  return undefined;
}

/** An expression whose value is a number whatever the data: integer literals, loop counters, arithmetic, numeric filters. */
function isNumericExpression(n: Node): boolean {
  switch (n.type) {
    case "IntegerLiteral":
    case "FloatLiteral":
      return true;
    case "UnaryExpression":
      return ["-", "+"].includes(operatorOf(n)) && isNumericOperand(nodeAt(n, "argument"));
    case "BinaryExpression":
      return ["+", "-", "*", "/", "//", "%"].includes(operatorOf(n)) && isNumericOperand(nodeAt(n, "left")) && isNumericOperand(nodeAt(n, "right"));
    case "FilterExpression": {
      const filter = nodeAt(n, "filter");
      const name = filter?.type === "Identifier" ? stringAt(filter, "value") : undefined;
      return name !== undefined && NUMERIC_FILTERS.has(name);
    }
    case "MemberExpression": {
      // loop.index, loop.index0, loop.length, loop.revindex...
      const object = nodeAt(n, "object");
      return n.computed !== true && object?.type === "Identifier" && stringAt(object, "value") === "loop";
    }
    default:
      return false;
  }
}

function isNumericOperand(n: Node | undefined): boolean {
  return n !== undefined && (isNumericExpression(n) || n.type === "Identifier" || (n.type === "MemberExpression" && n.computed !== true));
}

class Judge {
  readonly violations: TemplateViolation[] = [];
  private readonly seen = new Set<string>();
  constructor(
    private readonly bound: Set<string>,
    private readonly numeric: Set<string>,
    /** For variables and macro parameters: keys from the data or from the macro's callers (whose arguments checkMacroArguments judges). */
    private readonly loopVars: Set<string>,
    private readonly macros: Set<string>,
  ) {}

  /**
   * Arguments of a call of the template's own macro: a macro parameter may be used as an item name
   * (`param[field]`), so a string argument is judged as a name and a string built at run time
   * (`~`, string filters) is refused.
   */
  checkMacroArguments(args: Node[]): void {
    for (const a of args) {
      const value = a.type === "KeywordArgumentExpression" ? nodeAt(a, "value") : a.type === "SpreadExpression" ? undefined : a;
      if (value === undefined) continue;
      if (value.type === "StringLiteral") this.checkName(stringAt(value, "value") ?? "", "macro argument");
      else if (value.type === "BinaryExpression" && operatorOf(value) === "~") this.refuse("macro argument built at run time (~)");
    }
  }

  refuse(construct: string): void {
    if (this.seen.has(construct) || this.violations.length >= MAX_CHAT_TEMPLATE_FINDINGS) return;
    this.seen.add(construct);
    this.violations.push({ construct });
  }

  /** An attribute or item name: no leading underscore, no Python internals. */
  checkName(name: string, how: string): void {
    for (const part of name.split(".")) {
      if (DENIED_ATTRIBUTE.test(part)) this.refuse(`${how} ${JSON.stringify(name)}`);
    }
  }

  /** A string literal argument that names an attribute (selectattr('x'), map(attribute='x')). */
  checkAttributeArgument(arg: Node | undefined, filter: string): void {
    if (arg === undefined) return;
    if (arg.type !== "StringLiteral") {
      this.refuse(`filter ${filter} with an attribute name computed at run time`);
      return;
    }
    this.checkName(stringAt(arg, "value") ?? "", `filter ${filter} attribute`);
  }

  /** The index of `x[index]`: a literal, a slice, a loop counter or arithmetic; never a string built at run time. */
  checkIndex(index: Node): void {
    switch (index.type) {
      case "StringLiteral":
        this.checkName(stringAt(index, "value") ?? "", "item");
        return;
      case "SliceExpression":
        for (const key of ["start", "stop", "step"]) {
          const part = nodeAt(index, key);
          if (part !== undefined && !isNumericOperand(part)) this.refuse("slice bound computed at run time");
        }
        return;
      case "Identifier": {
        const name = stringAt(index, "value") ?? "";
        // A key from the data (a for variable over a dict, a context variable) or a number the template computed.
        if (!(this.numeric.has(name) || this.loopVars.has(name) || TEMPLATE_CONTEXT_VARIABLES.has(name)))
          this.refuse(`item name from variable ${name} set at run time`);
        return;
      }
      case "MemberExpression":
        if (index.computed === true) this.refuse("item name read through a computed item");
        return;
      default:
        if (!isNumericExpression(index)) this.refuse(`item name computed at run time (${index.type}${operatorOf(index) ? ` ${operatorOf(index)}` : ""})`);
    }
  }

  filterNameOf(filter: Node | undefined): { name: string; args: Node[] } | undefined {
    if (filter === undefined) return undefined;
    if (filter.type === "Identifier") return { name: stringAt(filter, "value") ?? "", args: [] };
    if (filter.type === "CallExpression") {
      const callee = nodeAt(filter, "callee");
      if (callee?.type === "Identifier") return { name: stringAt(callee, "value") ?? "", args: nodesAt(filter, "args") };
    }
    return undefined;
  }

  checkFilter(filter: Node | undefined): void {
    const f = this.filterNameOf(filter);
    if (f === undefined) {
      this.refuse("filter that is not a name");
      return;
    }
    if (!TEMPLATE_FILTERS.has(f.name)) {
      this.refuse(`filter ${f.name}`);
      return;
    }
    const positional = f.args.filter((a) => a.type !== "KeywordArgumentExpression");
    for (const a of f.args) {
      if (a.type !== "KeywordArgumentExpression") continue;
      const key = stringAt(nodeAt(a, "key") ?? { type: "" }, "value");
      if (key === "attribute") this.checkAttributeArgument(nodeAt(a, "value"), f.name);
    }
    if (ATTRIBUTE_ARGUMENT_FILTERS.has(f.name)) this.checkAttributeArgument(positional[0], f.name);
    if (FILTER_ARGUMENT_FILTERS.has(f.name) && positional[0] !== undefined) {
      const first = positional[0];
      if (first.type !== "StringLiteral") this.refuse(`filter ${f.name} with a filter name computed at run time`);
      else if (!TEMPLATE_FILTERS.has(stringAt(first, "value") ?? "")) this.refuse(`filter ${f.name}('${stringAt(first, "value") ?? ""}')`);
    }
    if (TEST_ARGUMENT_FILTERS.has(f.name)) {
      const test = f.name.endsWith("attr") ? positional[1] : positional[0];
      if (test !== undefined) {
        if (test.type !== "StringLiteral") this.refuse(`filter ${f.name} with a test name computed at run time`);
        else if (!TEMPLATE_TESTS.has(stringAt(test, "value") ?? "")) this.refuse(`test ${stringAt(test, "value") ?? ""}`);
      }
    }
  }

  checkIdentifier(n: Node): void {
    const name = stringAt(n, "value") ?? "";
    if (DENIED_GLOBALS.has(name)) {
      this.refuse(`variable ${name}`);
      return;
    }
    // A name the template binds itself (even `_ns`: a Jinja variable, not a Python attribute).
    if (this.bound.has(name) || IMPLICIT_LOCALS.has(name) || ALLOWED_GLOBALS.has(name) || TEMPLATE_CONTEXT_VARIABLES.has(name)) return;
    this.refuse(`unknown variable ${name}`);
  }

  checkCall(n: Node): void {
    const callee = nodeAt(n, "callee");
    const args = nodesAt(n, "args");
    if (callee?.type === "Identifier") {
      const name = stringAt(callee, "value") ?? "";
      if (!(CALLABLE_GLOBALS.has(name) || this.bound.has(name))) this.refuse(`call of ${name}`);
      if (this.macros.has(name)) this.checkMacroArguments(args);
      if (name === "range") {
        for (const a of args) {
          const v = a.type === "IntegerLiteral" ? a.value : undefined;
          if (typeof v === "number" && Math.abs(v) > MAX_TEMPLATE_RANGE) this.refuse(`range(${v}) larger than ${MAX_TEMPLATE_RANGE}`);
        }
      }
      return;
    }
    if (callee?.type === "MemberExpression" && callee.computed !== true) {
      const property = nodeAt(callee, "property");
      const name = property?.type === "Identifier" ? (stringAt(property, "value") ?? "") : "";
      if (!TEMPLATE_METHODS.has(name)) this.refuse(`method ${name}`);
      return;
    }
    // An item of a list the template built itself (`macros_to_call[i](...)`): its values are
    // macros, allowed globals or allowed methods, everything else having been judged where read.
    const object = callee?.type === "MemberExpression" ? nodeAt(callee, "object") : undefined;
    if (object?.type === "Identifier" && this.bound.has(stringAt(object, "value") ?? "")) {
      this.checkMacroArguments(args);
      return;
    }
    this.refuse(`call of a computed value (${callee?.type ?? "nothing"})`);
  }

  checkMember(n: Node): void {
    const object = nodeAt(n, "object");
    const property = nodeAt(n, "property");
    if (object?.type === "Identifier") {
      const name = stringAt(object, "value") ?? "";
      if (ALLOWED_GLOBALS.has(name) || DENIED_GLOBALS.has(name)) this.refuse(`attribute of Jinja global ${name}`);
    }
    if (property === undefined) return;
    if (n.computed === true) {
      this.checkIndex(property);
    } else if (property.type === "Identifier") {
      this.checkName(stringAt(property, "value") ?? "", "attribute");
    } else if (property.type !== "IntegerLiteral") {
      // (`x.0` is Jinja's item 0: allowed.)
      this.refuse(`attribute ${property.type}`);
    }
  }

  /** Judge every node of the tree (an explicit stack: a deeply nested template cannot exhaust ours). */
  walk(root: Node): void {
    const stack: Node[] = [root];
    while (stack.length > 0) {
      const n = stack.pop();
      if (n === undefined) continue;
      const children: Node[] = [];
      switch (n.type) {
        case "Program":
        case "If":
        case "For":
        case "Break":
        case "Continue":
        case "Set":
        case "Macro":
        case "Comment":
        case "IntegerLiteral":
        case "FloatLiteral":
        case "StringLiteral":
        case "ArrayLiteral":
        case "TupleLiteral":
        case "ObjectLiteral":
        case "BinaryExpression":
        case "UnaryExpression":
        case "SliceExpression":
        case "KeywordArgumentExpression":
        case "Ternary":
        case "SelectExpression":
          break;
        case "CallStatement":
          break;
        case "Identifier":
          this.checkIdentifier(n);
          break;
        case "MemberExpression":
          this.checkMember(n);
          break;
        case "CallExpression":
          this.checkCall(n);
          break;
        case "FilterExpression":
        case "FilterStatement":
          this.checkFilter(nodeAt(n, "filter"));
          // The filter's own name is not a variable: only its arguments are walked.
          children.push(...(this.filterNameOf(nodeAt(n, "filter"))?.args ?? []));
          for (const key of ["operand"]) {
            const c = nodeAt(n, key);
            if (c !== undefined) children.push(c);
          }
          children.push(...nodesAt(n, "body"));
          stack.push(...children);
          continue;
        case "TestExpression": {
          const test = nodeAt(n, "test");
          const name = test?.type === "Identifier" ? (stringAt(test, "value") ?? "") : "";
          if (!TEMPLATE_TESTS.has(name)) this.refuse(`test ${name}`);
          const operand = nodeAt(n, "operand");
          if (operand !== undefined) stack.push(operand);
          continue;
        }
        case "SpreadExpression":
        case "KeywordSpreadExpression":
          break;
        default:
          this.refuse(`construct ${n.type}`);
      }
      for (const [key, v] of Object.entries(n)) {
        // The operator of a binary / unary expression is a lexer token, not a node.
        if (key === "operator") continue;
        // Names that are bindings or keys, not reads: the keyword of a keyword argument, a macro's name.
        if ((n.type === "KeywordArgumentExpression" && key === "key") || (n.type === "Macro" && key === "name")) continue;
        // A non-computed attribute's name is judged by checkMember, not as a variable.
        if (n.type === "MemberExpression" && key === "property" && n.computed !== true) continue;
        if (n.type === "CallExpression" && key === "callee" && isNode(v) && v.type === "Identifier") continue;
        if (isNode(v)) stack.push(v);
        else if (Array.isArray(v))
          for (const c of v)
            if (isNode(c)) stack.push(c);
            else if (v instanceof Map) for (const [k, val] of v as Map<unknown, unknown>) for (const c of [k, val]) if (isNode(c)) stack.push(c);
      }
    }
  }
}

/**
 * Judge one chat template. Malformed when it is larger than MAX_CHAT_TEMPLATE_BYTES or does not
 * parse; otherwise the list of refused constructs (empty: admitted).
 */
export function judgeChatTemplate(source: string): TemplateVerdict {
  if (Buffer.byteLength(source, "utf8") > MAX_CHAT_TEMPLATE_BYTES)
    return { ok: false, code: "limit_exceeded", malformed: `template larger than ${MAX_CHAT_TEMPLATE_BYTES} bytes (MAX_CHAT_TEMPLATE_BYTES)` };
  let program: unknown;
  try {
    program = parse(tokenize(source, { lstrip_blocks: true, trim_blocks: true }));
  } catch (err) {
    // RangeError too: the parser recurses, a template nested thousands deep overflows its stack.
    return { ok: false, code: "malformed_container", malformed: `template does not parse as Jinja: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!isNode(program)) return { ok: false, code: "malformed_container", malformed: "template parser returned no syntax tree" };
  const { bound, numeric, loopVars, macros } = boundNames(program);
  const judge = new Judge(bound, numeric, loopVars, macros);
  for (const name of bound) {
    if (DENIED_GLOBALS.has(name)) judge.refuse(`binding of ${name}`);
  }
  judge.walk(program);
  return judge.violations.length === 0 ? { ok: true } : { ok: false, violations: judge.violations };
}

/** Findings for one template: malformed_container, or one unsafe_template (dangerous) naming the refused constructs. */
export function chatTemplateFindings(source: string, what: string, location: string): Finding[] {
  const verdict = judgeChatTemplate(source);
  if (verdict.ok) return [];
  if ("malformed" in verdict) return [{ code: verdict.code, severity: "malformed", message: `${what}: ${verdict.malformed}`, location }];
  const constructs = verdict.violations.map((v) => v.construct);
  return [
    {
      code: "unsafe_template",
      severity: "dangerous",
      message: `${what} uses constructs outside the chat-template allowlist (${constructs.slice(0, 8).join(", ")}${constructs.length > 8 ? ", ..." : ""}): a Jinja2 renderer without a sandbox runs them on the serving host`,
      location,
      details: { template: what, constructs },
    },
  ];
}
