import { IMPORT_MAPPING } from "./compatNames";

/**
 * The hard floor: imports that no policy can allow, whatever allowlist.json or --allow-global say.
 * The default verdict for any import is already reject (only the safe set and an operator's
 * patterns allow anything); the floor exists so that a broad pattern ("numpy.*", "torch.*",
 * "__builtin__.*") can never let through the callables that published pickle exploits use.
 *
 * An entry names a module (it covers the module and everything under it: "os" covers "os.system"
 * and "os.path.join") or a module attribute ("builtins.eval"). Matching is by dotted segments on
 * the full path `module.name`, so attribute traversal ("torch.hub.load", "builtins.eval.__call__")
 * is covered too. The Python 2 spelling of every entry (through CPython's _compat_pickle import
 * mapping: "__builtin__.eval", "commands", "cPickle", "urllib2", ...) is on the floor as well.
 */
export interface FloorGroup {
  name: string;
  /** What a pickle can do with these. */
  threat: string;
  entries: readonly string[];
}

const BUILTIN_EXEC = [
  "eval",
  "exec",
  "execfile",
  "compile",
  "__import__",
  "vars",
  "globals",
  "locals",
  "breakpoint",
  "getattr",
  "setattr",
  "delattr",
  "apply",
  "input",
  "raw_input",
  "reload",
  "help",
  "open",
  "file",
];

export const FLOOR_GROUPS: readonly FloorGroup[] = [
  {
    name: "code-execution",
    threat: "evaluate or compile source/bytecode, or reach any attribute by name (getattr chains to os.system)",
    entries: [
      ...BUILTIN_EXEC.map((n) => `builtins.${n}`),
      "runpy",
      "code",
      "codeop",
      "marshal",
      "types.FunctionType",
      "types.CodeType",
      "types.LambdaType",
      "types.MethodType",
      "operator.attrgetter",
      "operator.methodcaller",
      "operator.call",
      "_operator.attrgetter",
      "_operator.methodcaller",
      "_operator.call",
      "functools.reduce",
      "ctypes",
      "_ctypes",
      "cffi",
      "numpy.ctypeslib",
    ],
  },
  {
    name: "processes",
    threat: "start processes or replace the current one",
    entries: [
      "os",
      "posix",
      "nt",
      "subprocess",
      "_posixsubprocess",
      "pty",
      "popen2",
      "platform.popen",
      "pexpect",
      "multiprocessing",
      "_multiprocessing",
      "concurrent.futures.process",
      "asyncio",
      "signal",
      "_signal",
    ],
  },
  {
    name: "import-machinery",
    threat: "import arbitrary modules or run .pth / module code",
    entries: ["importlib", "pkgutil", "imp", "zipimport", "site", "modulefinder", "pydoc", "doctest", "unittest"],
  },
  {
    name: "nested-deserialization",
    threat: "deserialize another payload that this scan never sees",
    entries: [
      "pickle",
      "_pickle",
      "pickletools",
      "shelve",
      "dill",
      "cloudpickle",
      "jsonpickle",
      "joblib.load",
      "joblib.numpy_pickle.load",
      "joblib.numpy_pickle.NumpyUnpickler",
      "joblib.numpy_pickle_compat",
      "joblib.externals",
      "joblib.parallel",
      "numpy.load",
      "numpy.lib.npyio",
      "numpy.lib.format",
      "numpy.f2py",
      "numpy.distutils",
      "numpy.testing",
      "torch.load",
      "torch.serialization.load",
      "torch.serialization._load",
      "torch.storage._load_from_bytes",
      "torch.hub",
      "torch.jit",
      "torch.package",
      "torch.utils.cpp_extension",
      "torch._C",
      "torch.ops",
      "torch.classes",
      "pandas.read_pickle",
      "pandas.io.pickle",
      "yaml.load",
      "yaml.load_all",
      "yaml.unsafe_load",
      "yaml.unsafe_load_all",
      "yaml.full_load",
      "yaml.full_load_all",
    ],
  },
  {
    name: "debuggers-profilers",
    threat: "run a string of Python code (pdb.run, cProfile.run, timeit.timeit, trace.Trace.run)",
    entries: ["pdb", "bdb", "cProfile", "profile", "_lsprof", "timeit", "trace", "idlelib"],
  },
  {
    name: "package-tools",
    threat: "install packages or run setup scripts",
    entries: ["pip", "setuptools", "distutils", "pkg_resources", "ensurepip", "venv"],
  },
  {
    name: "network",
    threat: "open sockets, fetch URLs or open a browser",
    entries: [
      "socket",
      "_socket",
      "socketserver",
      "ssl",
      "http",
      "urllib",
      "urllib3",
      "requests",
      "httpx",
      "aiohttp",
      "ftplib",
      "smtplib",
      "telnetlib",
      "poplib",
      "imaplib",
      "nntplib",
      "xmlrpc",
      "webbrowser",
    ],
  },
  {
    name: "filesystem",
    threat: "create, truncate, copy or delete files",
    entries: ["shutil", "io", "_io", "tempfile", "zipfile", "tarfile", "gzip", "bz2", "lzma", "fileinput", "logging.FileHandler", "logging.config"],
  },
  {
    name: "interpreter-state",
    threat: "reach interpreter internals (sys.modules, gc referrers, frames) to escape any sandboxing",
    entries: ["sys", "gc", "inspect", "builtins.object.__subclasses__", "_thread", "threading", "__main__.__builtins__"],
  },
];

/** Every floor entry -> its group name, including the Python 2 spellings. */
export const FLOOR: ReadonlyMap<string, string> = buildFloor();

function buildFloor(): Map<string, string> {
  const floor = new Map<string, string>();
  for (const group of FLOOR_GROUPS) for (const e of group.entries) floor.set(e, group.name);
  // Python 2 spellings: an entry under a py3 module M is also on the floor under every py2 module
  // that _compat_pickle maps to M ("commands" -> "subprocess", "__builtin__" -> "builtins").
  for (const [py2, py3] of IMPORT_MAPPING) {
    for (const [entry, group] of [...floor]) {
      if (entry === py3 || entry.startsWith(`${py3}.`)) floor.set(py2 + entry.slice(py3.length), group);
      else if (py3.startsWith(`${entry}.`)) floor.set(py2, group);
    }
  }
  return floor;
}

/**
 * The floor group that `path` (a dotted "module.name" path) falls under, or undefined. Any
 * segment prefix of the path that is a floor entry is a hit: "os.path.join" hits "os".
 */
export function floorGroupOf(path: string): string | undefined {
  let dot = path.indexOf(".");
  for (;;) {
    const prefix = dot < 0 ? path : path.slice(0, dot);
    const group = FLOOR.get(prefix);
    if (group !== undefined) return group;
    if (dot < 0) return undefined;
    dot = path.indexOf(".", dot + 1);
  }
}
