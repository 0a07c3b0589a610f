#!/usr/bin/python3
"""Generate modelgate's pickle name tables from the real installed packages.

Run:  /usr/bin/python3 scripts/gen_pickle_names.py      (from the repository root; ~1 minute)
Needs the Debian python3-sklearn, -scipy, -numpy, -torch, -joblib and -pandas packages (whichever
are installed are walked; the versions go into the generated headers) and node with the
repository's node_modules (to read the safe set from src/pickle/safeSet.ts). No network. This script
imports every importable module of those packages (that is how it sees what each name *is*), fits
small sklearn estimators on random data and pickles them; it never unpickles anything.

Writes three TypeScript files (commit them with this script):

1. src/pickle/aliasMap.generated.ts - the ALIAS MAP. Pickle's find_class resolves `module.name`
   by importing `module` and reading the attribute `name` (Lib/pickle.py `_Unpickler.find_class`,
   `_getattribute`), so a name under an allowed prefix can be a re-export of something else.
   Every importable module of the walked packages is imported, and every attribute `module.attr`
   (its namespace, plus what __all__ and __dir__ list for a PEP 562 module __getattr__)
   (dunder names aside: no pattern or exact name may contain one) is recorded when its object is:
     f  a hard-floor callable: its own pickle name (`__module__` + `__qualname__`) is on the hard
        floor (src/pickle/floor.ts, parsed from that file), or it *is* (identity) the object a
        floor entry names (`functools.reduce` is `_functools.reduce`);
     m  a module object (`sklearn.utils.np` is numpy; a module handed to any callable is a
        `getattr` away from os.system);
     c  a callable that runs code: a Python function, or a Python class whose __new__, __init__,
        __setstate__, __setitem__, append or extend (what REDUCE, NEWOBJ, BUILD, SETITEMS and
        APPENDS call) is Python code, where that code or any code nested in it (inner functions,
        lambdas, comprehensions) reaches - through a global of its module or a builtin
        (LOAD_GLOBAL), an attribute of a module (LOAD_GLOBAL np; LOAD_ATTR load), or a
        function-level import (IMPORT_NAME/IMPORT_FROM) - a hard-floor callable that is either
          - in a floor group of ALWAYS_DANGEROUS_GROUPS (code-execution, import-machinery,
            nested-deserialization, network, debuggers-profilers, package-tools: eval, exec,
            compile, open, __import__, importlib.import_module, pickle.loads, joblib.load, ...),
            except native bindings in BINDINGS_ON_FLOOR (torch._C behind every tensor method), or
          - named in DANGEROUS_ATTRS (os.system, subprocess.run/Popen/check_output, os.remove,
            shutil.rmtree, tempfile.mkstemp, ...: the processes, filesystem and interpreter-state
            groups are otherwise mostly harmless helpers such as os.path.join or os.cpu_count).
        The reflective builtins of ORDINARY_BUILTINS (getattr, setattr, vars, ...) do not count:
        they appear in most code. Code objects are what the interpreter runs, so code that never
        names such a callable cannot call it directly. Calls into the walked packages' own
        functions and classes are followed MAX_CALL_DEPTH levels, and through decorators
        (__wrapped__, closure cells), bound methods and functools.partial; arguments forwarded to
        getattr are not (documented in README "Aliases of dangerous callables"). A callable the
        rule misses is still only reachable through a policy that allows it.
   Names already on the hard floor are not repeated. Entries are grouped by containing module.
   Test suites shipped inside the packages (a module segment tests/test/conftest or test_*) are
   not walked: no wildcard admits them. KNOWN_OTHER_VERSIONS pins the aliases the issue cites, so
   that a walk of other versions (where a module moved or is missing) still lists them.

2. src/pickle/wildcardNames.generated.ts - names a wildcard pattern ("sklearn.*") may admit
   although a module segment or the final name starts with "_": the name pickle itself writes for
   a public attribute (pickle a public class/function by reference and read the GLOBAL it writes:
   `sklearn.linear_model.LogisticRegression` is written as
   `sklearn.linear_model._logistic.LogisticRegression`), plus every import that the pickles of real
   objects reference (fitted sklearn estimators, numpy arrays/scalars/RandomState, scipy sparse,
   pandas frames, torch tensors): these are the libraries' documented pickle reconstructors
   (`sklearn.tree._tree.Tree`, `pandas._libs.internals._unpickle_block`, ...). Test modules (a
   segment `tests`, `testing`, `_testing`, `conftest`) and alias-map names are never listed.

3. src/pickle/sklearnPreset.generated.ts - the "sklearn" preset: every estimator class of
   sklearn.utils.all_estimators() and every BaseEstimator subclass sklearn defines (Pipeline,
   FeatureUnion, _BinMapper) by its pickle name, every class defined in sklearn's loss, link
   and tree-structure modules, and every import of the pickles of fitted instances of each
   estimator this script can construct (_construct_instance, fitted on small random data), which
   brings in the Cython helpers (`sklearn.tree._tree.Tree`, `sklearn.neighbors._kd_tree.newObj`,
   `sklearn._loss._loss.CyHalfBinomialLoss`), numpy/scipy reconstructors, and nothing from the
   alias map (a conflict stops the script).
"""

import contextlib
import functools
import io
import importlib
import os
import pickle
import pickletools
import pkgutil
import re
import signal
import sys
import types
import warnings

warnings.simplefilter("ignore")
warnings.showwarning = lambda *_a, **_k: None
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ["sklearn", "scipy", "numpy", "torch", "joblib", "pandas"]
# A wildcard never admits a name in a module with one of these segments (src/pickle/policy.ts).
TEST_SEGMENTS = {"tests", "testing", "_testing", "conftest"}
# Test suites shipped inside the packages (sklearn/tests, joblib/test, scipy/*/tests/test_*.py):
# not walked for the alias map. No wildcard admits them; only an exact name could.
TEST_SUITE_SEGMENTS = {"tests", "test", "conftest"}

# Floor groups whose every callable runs code, opens connections or deserializes; for the groups
# processes, filesystem and interpreter-state (os, io, shutil, sys, threading: mostly harmless
# helpers such as os.path.join or os.cpu_count) only the callables named in DANGEROUS_ATTRS count.
ALWAYS_DANGEROUS_GROUPS = {"code-execution", "import-machinery", "nested-deserialization", "debuggers-profilers", "package-tools", "network"}
DANGEROUS_ATTRS = {
    "system", "popen", "Popen", "run", "call", "check_call", "check_output", "getoutput", "getstatusoutput",
    "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp",
    "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe", "fork", "forkpty", "kill", "killpg",
    "open", "fdopen", "FileIO", "remove", "unlink", "rmdir", "removedirs", "rmtree", "rename", "renames", "replace", "move",
    "copy", "copy2", "copyfile", "copytree", "truncate", "chmod", "chown", "symlink", "link", "makedirs", "mkdir", "putenv",
    "chdir", "mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "TemporaryDirectory", "SpooledTemporaryFile",
    "start_new_thread", "settrace", "setprofile", "addaudithook",
}
# Native bindings and test helpers on the floor that library code calls everywhere (torch._C
# behind every tensor method, numpy.testing, joblib.parallel): a pickle may not import them, but
# code that calls them is judged like the processes/filesystem groups (DANGEROUS_ATTRS only).
BINDINGS_ON_FLOOR = ("torch._C", "torch.ops", "torch.classes", "torch.jit", "torch._ops", "numpy.testing", "joblib.parallel", "joblib.externals", "ctypes", "_ctypes", "numpy.ctypeslib")
ORDINARY_BUILTINS = {"getattr", "setattr", "delattr", "vars", "globals", "locals", "input", "help", "breakpoint"}
CLASS_ENTRY_METHODS = ("__new__", "__init__", "__setstate__", "__setitem__", "append", "extend")

# Aliases in versions of these packages that are not the installed ones (alias -> target, kind).
KNOWN_OTHER_VERSIONS = {
    "sklearn.utils.discovery.import_module": ("importlib.import_module", "f"),
    "sklearn.utils.discovery.all_estimators": ("sklearn.utils.discovery.all_estimators", "c"),
    "sklearn.utils._testing.check_output": ("subprocess.check_output", "f"),
    "sklearn.utils._joblib.load": ("joblib.numpy_pickle.load", "f"),
    "sklearn.utils._testing.assert_run_python_script": ("sklearn.utils._testing.assert_run_python_script", "c"),
}


# ---------------------------------------------------------------------------------------------
# the hard floor, read from src/pickle/floor.ts


def read_floor():
    """floor entry -> group name, parsed from FLOOR_GROUPS in src/pickle/floor.ts."""
    src = open(os.path.join(ROOT, "src", "pickle", "floor.ts"), encoding="utf8").read()
    builtin_names = re.findall(r'"([^"]+)"', re.search(r"const BUILTIN_EXEC = \[(.*?)\];", src, re.S).group(1))
    groups_block = src[src.index("export const FLOOR_GROUPS") : src.index("/** Every floor entry")]
    entries = {}
    for group, block in re.findall(r'name: "([^"]+)",.*?entries:\s*\[(.*?)\],\n  \}', groups_block, re.S):
        if "...BUILTIN_EXEC" in block:
            entries.update({f"builtins.{n}": group for n in builtin_names})
        entries.update({e: group for e in re.findall(r'"([^"]+)"', block)})
    assert entries.get("subprocess") == "processes" and entries.get("builtins.eval") == "code-execution", "floor.ts layout changed"
    assert entries.get("joblib.load") == "nested-deserialization" and entries.get("sys") == "interpreter-state", "floor.ts layout changed"
    return entries


FLOOR = read_floor()


def floor_group(path):
    parts = path.split(".")
    for i in range(1, len(parts) + 1):
        group = FLOOR.get(".".join(parts[:i]))
        if group is not None:
            return group
    return None


def on_floor(path):
    return floor_group(path) is not None


def floor_objects():
    """id(object) -> floor entry, for every floor entry that resolves to a non-module object."""
    out = {}
    for entry in sorted(FLOOR):
        parts = entry.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except BaseException:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                obj = None
            if obj is not None and not isinstance(obj, types.ModuleType):
                out[id(obj)] = (entry, obj)
            break
    return out


# ---------------------------------------------------------------------------------------------
# walking


def walk(package):
    """Every importable module of `package` (name -> module), in a stable order."""
    try:
        root = importlib.import_module(package)
    except BaseException:
        return {}
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, package + ".", onerror=lambda _n: None):
        names.append(info.name)
    mods = {}
    for name in sorted(set(names)):
        try:
            mods[name] = importlib.import_module(name)
        except BaseException:  # an optional dependency missing, a module that exits on import
            continue
    return mods


def module_attributes(mod):
    """(name, object) of every attribute find_class can read: the module's namespace plus what
    its __all__ and __dir__ list, which a module-level __getattr__ may serve lazily (PEP 562)."""
    names = set(vars(mod))
    with contextlib.suppress(BaseException):
        names |= {n for n in getattr(mod, "__all__", ()) if isinstance(n, str)}
    with contextlib.suppress(BaseException):
        names |= {n for n in dir(mod) if isinstance(n, str)}
    out = []
    for name in sorted(names):
        obj = vars(mod)[name] if name in vars(mod) else attribute(mod, name)
        if obj is not None or name in vars(mod):
            out.append((name, obj))
    return out


def pickle_name(obj):
    """The GLOBAL that pickle writes for `obj` by reference, or None."""
    try:
        data = pickle.dumps(obj, protocol=2, fix_imports=False)
    except BaseException:
        return None
    ops = list(pickletools.genops(io.BytesIO(data)))
    if [op.name for op, _a, _p in ops if op.name not in ("BINPUT", "MEMOIZE")] != ["PROTO", "GLOBAL", "STOP"]:
        return None
    return ops[1][1].replace(" ", ".", 1)


def own_name(obj):
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if isinstance(mod, str) and isinstance(qual, str):
        return f"{mod}.{qual}"
    return None


def code_objects(code):
    yield code
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from code_objects(c)


def python_codes(obj):
    """The Python code objects a pickle reaches by calling `obj` (function) or building it (class)."""
    if isinstance(obj, types.FunctionType):
        out = [(obj.__code__, obj.__globals__)]
        # A decorated function runs what it wraps: functools.wraps' __wrapped__ (numpy's
        # array_function_dispatch, contextlib.contextmanager, pandas' Appender) and functions held
        # in its closure cells.
        inner = [getattr(obj, "__wrapped__", None)] + [attribute(c, "cell_contents") for c in obj.__closure__ or ()]
        for f in inner:
            if isinstance(f, types.FunctionType) and f is not obj:
                out.append((f.__code__, f.__globals__))
        return out
    if isinstance(obj, types.MethodType):  # a bound method at module level (random.seed-style)
        return python_codes(obj.__func__)
    if isinstance(obj, functools.partial):
        return python_codes(obj.func)
    if isinstance(obj, type):
        out = []
        for meth in CLASS_ENTRY_METHODS:
            f = getattr(obj, meth, None)
            f = getattr(f, "__func__", f)
            if isinstance(f, types.FunctionType):
                out.append((f.__code__, f.__globals__))
        return out
    return []


def attribute(obj, name):
    """getattr that treats any error (module __getattr__ raising ImportError) as absent."""
    try:
        return getattr(obj, name, None)
    except BaseException:
        return None


def floor_hit(obj, floor_ids):
    """The floor group of a callable (identity with a floor entry, or its own pickle name), or None."""
    if isinstance(obj, types.ModuleType) or not callable(obj):
        return None
    hit = floor_ids.get(id(obj))
    if hit is not None and hit[1] is obj:
        return FLOOR[hit[0]]
    own = own_name(obj)
    return floor_group(own) if own is not None and names_itself(own, obj) else None


def names_itself(own, obj):
    """Whether `module.qualname` really resolves to obj, as pickle's save_global insists (Cython
    enums claim __module__ "importlib._bootstrap" and are not there)."""
    for i in range(own.count("."), 0, -1):
        mod, qual = own.rsplit(".", i)[0], ".".join(own.rsplit(".", i)[1:])
        module = sys.modules.get(mod)
        if module is None:
            continue
        target = module
        for part in qual.split("."):
            target = attribute(target, part)
        return target is obj
    return False


def dangerous_reference(name, obj, floor_ids):
    """Whether code that reaches `obj` under the name `name` runs code (the RULE of the header)."""
    if name in ORDINARY_BUILTINS:
        return False
    group = floor_hit(obj, floor_ids)
    if group is None:
        return False
    own = own_name(obj) or ""
    binding = any(own == b or own.startswith(b + ".") for b in BINDINGS_ON_FLOOR)
    return (group in ALWAYS_DANGEROUS_GROUPS and not binding) or name in DANGEROUS_ATTRS


def scan_code(obj, floor_ids):
    """(the name through which `obj`'s own code reaches a dangerous callable or None, the Python
    functions and classes of the walked packages that its code references)."""
    import builtins
    import dis

    refs = []

    def note(target):
        if isinstance(target, (types.FunctionType, type)) and str(getattr(target, "__module__", "")).split(".")[0] in PACKAGES:
            refs.append(target)

    for code, globs in python_codes(obj):
        for c in code_objects(code):
            prev = None
            import_base = None
            imported = {}
            for ins in dis.get_instructions(c):
                op, arg = ins.opname, ins.argval
                if op in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(arg, str):
                    target = globs.get(arg, getattr(builtins, arg, None))
                    if dangerous_reference(arg, target, floor_ids):
                        return arg, refs
                    note(target)
                    prev = target if isinstance(target, types.ModuleType) else None
                    continue
                if op == "IMPORT_NAME" and isinstance(arg, str):
                    # `import a.b` binds a; `from a.b import c` reads c from a.b (IMPORT_FROM)
                    import_base = sys.modules.get(arg)
                    prev = sys.modules.get(arg.split(".")[0])
                    continue
                if op == "IMPORT_FROM" and isinstance(arg, str) and import_base is not None:
                    target = attribute(import_base, arg)
                    if dangerous_reference(arg, target, floor_ids):
                        return f"{import_base.__name__}.{arg}", refs
                    note(target)
                    prev = target if isinstance(target, types.ModuleType) else None
                    continue
                if op in ("LOAD_FAST", "LOAD_DEREF") and isinstance(arg, str):
                    prev = imported.get(arg)
                    continue
                if op in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(arg, str) and prev is not None:
                    target = attribute(prev, arg)
                    if dangerous_reference(arg, target, floor_ids):
                        return f"{prev.__name__}.{arg}", refs
                    note(target)
                    prev = target if isinstance(target, types.ModuleType) else None
                    continue
                if op in ("STORE_FAST", "STORE_DEREF") and prev is not None and isinstance(arg, str):
                    imported[arg] = prev  # a module bound to a local by a function-level import
                if op == "POP_TOP":
                    import_base = None
                prev = None
    return None, refs


# Calls are followed this many levels into the walked packages' own functions (scipy.io.savemat
# -> _open_file_context -> _open_file -> open): deep enough for the helpers libraries put
# between an API and the builtin, shallow enough not to reach everything through shared utilities.
MAX_CALL_DEPTH = 3
_scanned = {}


def runs_code(obj, floor_ids, depth=0):
    """The RULE of the header: the chain through which calling/building `obj` runs dangerous code, or None."""
    key = id(obj)
    if key not in _scanned:
        _scanned[key] = (obj,) + scan_code(obj, floor_ids)
    _obj, why, refs = _scanned[key]
    if why is not None:
        return why
    if depth >= MAX_CALL_DEPTH:
        return None
    for ref in refs:
        if ref is obj:
            continue
        inner = runs_code(ref, floor_ids, depth + 1)
        if inner is not None:
            return f"{own_name(ref)} -> {inner}"
    return None


def is_private_path(full):
    return any(seg.startswith("_") for seg in full.split("."))


def is_test_suite(module):
    return any(seg in TEST_SUITE_SEGMENTS or seg.startswith("test_") for seg in module.split("."))


def is_test_path(full):
    return any(seg in TEST_SEGMENTS for seg in full.split(".")[:-1])


def is_dunder(seg):
    return len(seg) > 4 and seg.startswith("__") and seg.endswith("__")


# ---------------------------------------------------------------------------------------------
# sklearn and real-object pickles


def pickle_imports(data):
    """Every GLOBAL of a protocol-2 pickle (fix_imports off: the Python 3 names)."""
    out = set()
    for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
        if op.name in ("GLOBAL", "INST"):
            out.add(arg.replace(" ", ".", 1))
        assert not op.name.startswith("EXT"), "extension opcode in a harvested pickle"
    return out


class Timeout(Exception):
    pass


def _alarm(_sig, _frm):
    raise Timeout()


def fitted_sklearn_pickles():
    """{estimator pickle name: imports of pickles of its fitted (or at least constructed) instance}."""
    import numpy as np
    from sklearn.utils import all_estimators
    from sklearn.utils.estimator_checks import _construct_instance

    rng = np.random.RandomState(0)
    X = np.abs(rng.rand(40, 4)) + 0.1
    y_cls = np.array([0, 1, 2, 1] * 10)
    y_bin = np.array([0, 1] * 20)
    y_reg = rng.rand(40)
    y_multi = np.stack([y_bin, 1 - y_bin], axis=1)
    signal.signal(signal.SIGALRM, _alarm)
    found = {}
    for _name, cls in all_estimators():
        try:
            est = _construct_instance(cls)
        except BaseException:
            continue
        imports = set()
        for args in ((X, y_cls), (X, y_bin), (X, y_reg), (X, y_multi), (X,), (y_cls,)):
            signal.alarm(20)
            try:
                est.fit(*args)
            except BaseException:
                continue
            finally:
                signal.alarm(0)
            try:
                imports |= pickle_imports(pickle.dumps(est, protocol=2, fix_imports=False))
            except BaseException:
                pass
        try:
            imports |= pickle_imports(pickle.dumps(_construct_instance(cls), protocol=2, fix_imports=False))
        except BaseException:
            pass
        found[pickle_name(cls) or own_name(cls)] = imports
    return found


def extra_sklearn_models():
    """Models whose pickles need more than _construct_instance gives: loss choices, sparse input."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, SGDClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    rng = np.random.RandomState(0)
    X = rng.rand(40, 4)
    y_bin = np.array([0, 1] * 20)
    y_cls = np.array([0, 1, 2, 1] * 10)
    y_reg = rng.rand(40)
    models = []
    for loss in ("log_loss", "exponential"):
        models.append(GradientBoostingClassifier(n_estimators=2, loss=loss).fit(X, y_bin))
    models.append(GradientBoostingClassifier(n_estimators=2).fit(X, y_cls))
    for loss in ("squared_error", "absolute_error", "huber", "quantile"):
        models.append(GradientBoostingRegressor(n_estimators=2, loss=loss).fit(X, y_reg))
    models.append(HistGradientBoostingClassifier(max_iter=2).fit(X, y_bin))
    models.append(HistGradientBoostingClassifier(max_iter=2).fit(X, y_cls))
    for loss in ("squared_error", "absolute_error", "poisson", "quantile"):
        kw = {"quantile": 0.5} if loss == "quantile" else {}
        models.append(HistGradientBoostingRegressor(max_iter=2, loss=loss, **kw).fit(X, y_reg + 0.1))
    models.append(RandomForestClassifier(n_estimators=2, random_state=np.random.RandomState(0)).fit(X, y_bin))
    models.append(LogisticRegression().fit(sp.csr_matrix(X), y_bin))
    models.append(SGDClassifier().fit(sp.csr_matrix(X), y_bin))
    for algo in ("kd_tree", "ball_tree"):
        models.append(KNeighborsClassifier(algorithm=algo).fit(X, y_bin))
    models.append(TfidfVectorizer().fit(["alpha beta", "beta gamma", "gamma delta"]))
    models.append(OneHotEncoder().fit([["a"], ["b"]]))
    models.append(FunctionTransformer(np.log1p).fit(X))
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.linear_model import LinearRegression
    from sklearn.decomposition import PCA

    models.append(Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y_bin))
    models.append(FeatureUnion([("pca", PCA(n_components=2)), ("scale", StandardScaler())]).fit(X))
    models.append(ColumnTransformer([("scale", StandardScaler(), [0, 1]), ("pca", PCA(n_components=1), [2, 3])], remainder="drop").fit(X))
    models.append(TransformedTargetRegressor(regressor=LinearRegression(), func=np.log1p, inverse_func=np.expm1).fit(X, y_reg))
    return [pickle_imports(pickle.dumps(m, protocol=2, fix_imports=False)) for m in models]


def other_library_pickles():
    objs = []
    import numpy as np

    objs += [np.arange(3), np.float64(1.5), np.int64(2), np.random.RandomState(0), np.random.default_rng(0), np.dtype([("a", "<f4")]), np.ma.array([1, 2], mask=[0, 1])]
    try:
        import scipy.sparse as sp

        objs += [sp.csr_matrix(np.eye(2)), sp.csc_matrix(np.eye(2)), sp.coo_matrix(np.eye(2)), sp.lil_matrix(np.eye(2)), sp.dok_matrix(np.eye(2)), sp.bsr_matrix(np.eye(2)), sp.dia_matrix(np.eye(2))]
    except ImportError:
        pass
    try:
        import pandas as pd

        objs += [pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), pd.Series([1.0]), pd.Categorical(["a"]), pd.Timestamp(0), pd.Timedelta(1),
                 pd.date_range("2000", periods=2), pd.MultiIndex.from_tuples([(1, 2)]), pd.Index(["a"]), pd.Interval(0, 1), pd.Period("2000")]
    except ImportError:
        pass
    try:
        import torch

        objs += [torch.nn.Linear(2, 2).state_dict()]
    except ImportError:
        pass
    out = []
    for o in objs:
        try:
            out.append(pickle_imports(pickle.dumps(o, protocol=2, fix_imports=False)))
        except BaseException:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# main


def versions():
    out = {}
    for p in PACKAGES:
        try:
            out[p] = importlib.import_module(p).__version__
        except BaseException:
            pass
    return out


def main():
    import inspect

    # torch.package replaces inspect.getfile process-wide when imported (package_importer.py,
    # `inspect.getfile = _patched_getfile`); the walk imports it, so put the real one back after.
    real_getfile = inspect.getfile
    floor_ids = floor_objects()
    aliases = {}  # alias -> (kind, target)
    wildcard = set()
    walked = {}
    for package in PACKAGES:
        with contextlib.redirect_stdout(io.StringIO()):  # numpy.f2py and others print on import
            mods = walk(package)
        walked.update(mods)
        inspect.getfile = real_getfile
        print(f"{package}: {len(mods)} modules", file=sys.stderr)
    for mname, mod in sorted(walked.items()):
        if is_test_suite(mname):
            continue
        for attr, obj in module_attributes(mod):
            if is_dunder(attr) or not isinstance(attr, str):
                continue
            full = f"{mname}.{attr}"
            if on_floor(full):
                continue
            if isinstance(obj, types.ModuleType):
                aliases[full] = ("m", obj.__name__)
                continue
            if not callable(obj):
                continue
            if isinstance(obj, functools.partial) and floor_hit(obj.func, floor_ids) is not None:
                aliases[full] = ("f", own_name(obj.func) or full)
                continue
            hit = floor_ids.get(id(obj))
            own = own_name(obj)
            if hit is not None and hit[1] is obj:
                aliases[full] = ("f", hit[0])
                continue
            if own is not None and on_floor(own) and names_itself(own, obj):
                aliases[full] = ("f", own)
                continue
            why = runs_code(obj, floor_ids)
            if why is not None and os.environ.get("GEN_DEBUG"):
                print(f"c {full}: {why}", file=sys.stderr)
            if why is not None:
                aliases[full] = ("c", own or full)
                continue
            # names a wildcard may admit although private: what pickle writes for a public attribute
            by_reference = isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) or type(obj).__name__ == "ufunc"
            if by_reference and not is_private_path(full) and not is_test_path(full):
                spelled = pickle_name(obj)
                if spelled and spelled.split(".")[0] == mname.split(".")[0] and is_private_path(spelled):
                    wildcard.add(spelled)
    for alias, (target, kind) in KNOWN_OTHER_VERSIONS.items():
        aliases.setdefault(alias, (kind, target))

    sk = fitted_sklearn_pickles()
    extra = extra_sklearn_models()
    others = other_library_pickles()
    preset = set()
    for est, imports in sk.items():
        preset.add(est)
        preset |= imports
    for imports in extra:
        preset |= imports
    import sklearn.utils

    for name in ("sklearn._loss.loss", "sklearn._loss.link", "sklearn._loss._loss", "sklearn.ensemble._gb_losses", "sklearn.tree._tree",
                 "sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree", "sklearn.ensemble._hist_gradient_boosting.predictor",
                 "sklearn.ensemble._hist_gradient_boosting.binning"):
        mod = walked.get(name)
        for attr, obj in sorted(vars(mod).items()) if mod else []:
            if isinstance(obj, type) and obj.__module__ == name and not is_dunder(attr):
                preset.add(pickle_name(obj) or own_name(obj))
    # Every estimator class sklearn defines (all_estimators() leaves out Pipeline, FeatureUnion
    # and private helpers such as _BinMapper), by the name pickle writes for it.
    from sklearn.base import BaseEstimator

    for mname, mod in sorted(walked.items()):
        if mname.split(".")[0] != "sklearn" or is_test_suite(mname):
            continue
        for attr, obj in sorted(vars(mod).items(), key=lambda kv: kv[0]):
            if isinstance(obj, type) and issubclass(obj, BaseEstimator) and obj.__module__ == mname and not is_test_path(f"{mname}.{attr}"):
                preset.add(pickle_name(obj) or own_name(obj))
    preset.add(pickle_name(sklearn.utils.Bunch))
    harvested = set(preset)
    for imports in others:
        harvested |= imports
    wildcard |= {n for n in harvested if is_private_path(n)}

    safe = read_safe_set()
    wildcard = {n for n in wildcard if n not in aliases and not is_test_path(n) and not on_floor(n) and n not in safe}
    preset = {n for n in preset if n not in safe and not on_floor(n) and not n.startswith("builtins.")}
    conflicts = sorted(n for n in preset | harvested | safe if n in aliases)
    if conflicts:
        for n in conflicts:
            print(f"CONFLICT: real pickles import {n}, which the alias map lists as {aliases[n]}", file=sys.stderr)
        sys.exit(1)
    write_alias_map(aliases)
    write_list("wildcardNames.generated.ts", "WILDCARD_PRIVATE_NAMES", sorted(wildcard),
               "Names in private modules (or with a private final name) that a wildcard pattern may still admit:\n"
               " * what pickle writes for public attributes, and what real pickles of these libraries import.")
    write_list("sklearnPreset.generated.ts", "SKLEARN_PRESET", sorted(preset),
               "The \"sklearn\" content-policy preset: exact names that real scikit-learn pickles import.")
    kinds = {}
    for k, _t in aliases.values():
        kinds[k] = kinds.get(k, 0) + 1
    print(f"aliases {len(aliases)} {kinds}; wildcard private names {len(wildcard)}; sklearn preset {len(preset)}", file=sys.stderr)


def read_safe_set():
    """The exact names of the built-in safe set: src/pickle/safeSet.ts (no imports) run through
    the repository's own TypeScript compiler (node_modules/typescript), nothing else."""
    import json
    import subprocess

    js = (
        "const ts=require('typescript');const fs=require('fs');"
        "const out=ts.transpileModule(fs.readFileSync('src/pickle/safeSet.ts','utf8'),{compilerOptions:{module:ts.ModuleKind.CommonJS}}).outputText;"
        "const m={exports:{}};new Function('module','exports','require',out)(m,m.exports,require);"
        "process.stdout.write(JSON.stringify([...m.exports.SAFE_GLOBALS]));"
    )
    names = set(json.loads(subprocess.run(["node", "-e", js], cwd=ROOT, check=True, capture_output=True, text=True).stdout))
    assert "torch._utils._rebuild_tensor_v2" in names and "numpy.dtype" in names
    return names


def header(what):
    vs = ", ".join(f"{k} {v}" for k, v in versions().items())
    return (f"// GENERATED by scripts/gen_pickle_names.py (/usr/bin/python3 scripts/gen_pickle_names.py) from {vs},\n"
            f"// Python {sys.version.split()[0]}. Do not edit; regenerate. {what}\n")


def write_alias_map(aliases):
    by_module = {}
    for full, (kind, target) in aliases.items():
        mod, attr = full.rsplit(".", 1)
        if (kind == "m" and target in (attr, f"{mod}.{attr}")) or (kind == "c" and target == full):
            item = f"{kind}:{attr}"
        else:
            item = f"{kind}:{attr}={target}"
        by_module.setdefault(mod, []).append(item)
    lines = [header("The alias map (see the script's header for the rule)."), "",
             "/**",
             " * One line per containing module: the module, then its attributes that are aliases, each",
             " * \"<kind>:<attr>[=<target>]\". kind f: a hard-floor callable; m: a module object; c: a callable",
             " * that runs code (imports, executes, opens files, spawns processes). Without a target: the module",
             " * `<module>.<attr>` itself (m) or the callable's own definition (c). Parsed by aliasMap.ts.",
             " */",
             "export const ALIAS_TABLE = `"]
    for mod in sorted(by_module):
        lines.append(" ".join([mod] + sorted(by_module[mod])))
    lines.append("`;")
    text = "\n".join(lines) + "\n"
    assert "`" not in text.split("ALIAS_TABLE = `", 1)[1][:-3] and "${" not in text
    with open(os.path.join(ROOT, "src", "pickle", "aliasMap.generated.ts"), "w", encoding="utf8") as fh:
        fh.write(text)


def write_list(file, const, names, doc):
    lines = [header(""), "", "/**", f" * {doc}", " */", f"export const {const}: readonly string[] = ["]
    lines += [f'  "{n}",' for n in names]
    lines.append("];")
    with open(os.path.join(ROOT, "src", "pickle", file), "w", encoding="utf8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
