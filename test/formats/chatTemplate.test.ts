import { readFileSync } from "node:fs";
import { join } from "node:path";
import { judgeChatTemplate } from "../../src/formats/models/chatTemplate";
import { MAX_CHAT_TEMPLATE_BYTES } from "../../src/limits";
import { useInspectBytes } from "../support/inspectBytes";

const FIXTURES = join(__dirname, "..", "fixtures");
const corpus = JSON.parse(readFileSync(join(FIXTURES, "chat-templates", "huggingface-jinja-e2e.json"), "utf8")) as Record<string, string>;
const inspectBytes = useInspectBytes("chat-template");

function verdictOf(template: string): "ok" | "unsafe" | "malformed" | "limit" {
  const v = judgeChatTemplate(template);
  if (v.ok) return "ok";
  if ("violations" in v) return "unsafe";
  return v.code === "limit_exceeded" ? "limit" : "malformed";
}

describe("chat-template allowlist: the corpus of real templates", () => {
  it("holds the templates of current open models", () => {
    expect(Object.keys(corpus).length).toBeGreaterThanOrEqual(50);
    for (const family of ["Llama-3.1", "Mistral", "Mixtral", "Qwen2.5", "Qwen3", "gemma", "DeepSeek-R1", "command-r", "Hermes", "SmolLM3"]) {
      expect([family, Object.keys(corpus).some((k) => k.toLowerCase().includes(family.toLowerCase()))]).toEqual([family, true]);
    }
  });

  it.each(Object.entries(corpus))("admits %s", (_name, template) => {
    expect(judgeChatTemplate(template)).toEqual({ ok: true });
  });

  it("checks real templates fast (a regression guard; bench:formats measures the >= 1,000 per second target)", () => {
    const templates = Object.values(corpus);
    const start = process.hrtime.bigint();
    let n = 0;
    while (n < 1000) for (const t of templates) if (judgeChatTemplate(t).ok) n++;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    // A quarter of the target: jest's instrumentation and a shared CI machine slow it; the README quotes the bench figure.
    expect(n / seconds).toBeGreaterThan(250);
  });
});

describe("chat-template allowlist: server-side template injection payloads are unsafe_template", () => {
  it.each([
    ["dunder attribute", "{{ ''.__class__.__mro__[1].__subclasses__() }}"],
    ["dunder item", "{{ messages['__class__'] }}"],
    ["self", "{{ self.__init__.__globals__.__builtins__ }}"],
    ["self without dunders", "{{ self._TemplateReference__context }}"],
    ["cycler", "{{ cycler.__init__.__globals__.os.popen('id').read() }}"],
    ["joiner", "{{ joiner.__init__.__globals__ }}"],
    ["lipsum", "{{ lipsum.__globals__['os'].popen('id').read() }}"],
    ["namespace attribute", "{{ namespace.__init__ }}"],
    ["attribute of a global without underscore", "{{ range.mro }}"],
    ["attr filter", "{{ messages|attr('__class__') }}"],
    ["computed item name ~", "{{ messages[a ~ 'class__'] }}"],
    ["item name set at run time", "{% set k = '__cl' ~ 'ass__' %}{{ messages[k] }}"],
    ["item name from a string filter", "{{ messages['x'|replace('x', '_')] }}"],
    ["str.format", "{{ '{0.__class__}'.format(messages) }}"],
    ["format filter", "{{ '%c'|format(95) }}"],
    ["map attribute", "{{ messages|map(attribute='__class__')|list }}"],
    ["selectattr dunder", "{{ messages|selectattr('__class__')|list }}"],
    ["map with an unknown filter", "{{ messages|map('pprint')|list }}"],
    ["unknown test", "{% if messages is sameas_x %}{% endif %}"],
    ["unknown filter", "{{ messages|xmlattr }}"],
    ["unknown method", "{{ messages.mro() }}"],
    ["unknown global call", "{{ url_for('x') }}"],
    ["config", "{{ config.items() }}"],
    ["request", "{{ request.application }}"],
    ["frame attribute", "{% for x in messages %}{{ loop.gi_frame }}{% endfor %}"],
    ["call of a computed value", "{{ messages[0]() }}"],
    ["huge range", "{% for i in range(100000000) %}{% endfor %}"],
    ["macro argument used as item name", "{% macro g(o, f) %}{{ o[f] }}{% endmacro %}{{ g(messages, '__class__') }}"],
    ["macro argument built at run time", "{% macro g(o, f) %}{{ o[f] }}{% endmacro %}{{ g(messages, '__cl' ~ 'ass__') }}"],
    ["unknown variable", "{{ os }}"],
    ["for variable over a literal list", "{% for k in ['__class__'] %}{{ messages[k] }}{% endfor %}"],
    ["for variable over a literal dict", "{% for k, v in {'__class__': 1}.items() %}{{ messages[k] }}{% endfor %}"],
    ["for variable over a list the template set", "{% set ks = ['__cl' ~ 'ass__'] %}{% for k in ks %}{{ messages[k] }}{% endfor %}"],
    ["set block as item name", "{% set k %}__class__{% endset %}{{ messages[k] }}"],
  ])("%s", (_name, template) => {
    expect(verdictOf(template)).toBe("unsafe");
  });

  it("a template that does not parse is malformed; one over MAX_CHAT_TEMPLATE_BYTES is limit_exceeded", () => {
    expect(verdictOf("{% for m in messages %}{{ m }")).toBe("malformed");
    expect(verdictOf("{% include 'x' %}")).toBe("malformed");
    expect(verdictOf("(".repeat(100_000))).toBe("ok"); // text, not an expression
    expect(verdictOf(`{{ ${"(".repeat(50_000)}1${")".repeat(50_000)} }}`)).toBe("malformed");
    expect(verdictOf("x".repeat(MAX_CHAT_TEMPLATE_BYTES))).toBe("ok");
    expect(verdictOf("x".repeat(MAX_CHAT_TEMPLATE_BYTES + 1))).toBe("limit");
  });

  it("admits the constructs real templates use", () => {
    for (const t of [
      "{% set ns = namespace(found=false) %}{% for m in messages %}{% if m.role == 'system' %}{% set ns.found = true %}{% endif %}{% endfor %}",
      "{{ messages[messages|length - 1]['content'] }}{{ messages[1:] }}{{ messages[-1].content }}",
      "{% for k, v in tools[0].items() %}{{ k }}={{ v|tojson }}{% endfor %}",
      "{% for m in messages %}{% for k in m.keys() %}{{ m[k] }}{% endfor %}{% endfor %}",
      "{{ raise_exception('bad role') if messages[0].role != 'user' else '' }}{{ strftime_now('%Y-%m-%d') }}",
      "{% macro render(x, indent=2) %}{{ x|tojson(indent=indent) }}{% endmacro %}{{ render(tools) }}",
      "{{ messages|selectattr('role', 'equalto', 'user')|map(attribute='content')|join('\\n') }}",
    ]) {
      expect([t, verdictOf(t)]).toEqual([t, "ok"]);
    }
  });
});

describe("Hugging Face folders: chat_template in tokenizer_config.json, chat_template.jinja and chat_template.json", () => {
  const fixture = (name: string): Buffer => readFileSync(join(FIXTURES, "other", name));
  const rejecting = (report: { findings: { code: string; severity: string }[] }): string[] => [
    ...new Set(report.findings.filter((f) => f.severity !== "innocuous").map((f) => f.code)),
  ];

  it.each(["hf_chat_template_benign.tar.gz", "hf_chat_template_list.zip"])("admits %s", async (name) => {
    expect(rejecting(await inspectBytes(fixture(name), name))).toEqual([]);
  });

  it.each(["hf_chat_template_ssti.tar.gz", "hf_chat_template_jinja_ssti.zip", "hf_chat_template_json_ssti.zip"])("%s -> unsafe_template", async (name) => {
    const report = await inspectBytes(fixture(name), name);
    expect(rejecting(report)).toEqual(["unsafe_template"]);
    expect(report.findings.find((f) => f.code === "unsafe_template")?.severity).toBe("dangerous");
  });
});
