#!/usr/bin/python3
"""Generate src/pickle/numpyDtypeTable.ts from the real numpy.

Run: /usr/bin/python3 scripts/gen_numpy_dtype_table.py   (numpy 1.24 on x86-64 Linux)

For every type code numpy knows (np.typecodes['All'], plus O, V, S, U, every datetime and
timedelta unit) and every byte order ('<', '>', '|', '='), it records what `dtype.__reduce__()`
writes: the type string of the `numpy.dtype(<type string>, False, True)` call and the BUILD state
`(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])`. Rows of the
same type string must agree; the script asserts the rules the TypeScript check relies on
(flexible sizes, datetime metadata, how structured and subarray dtypes derive their flags and
alignment from their members) against the real numpy, so a numpy whose pickles differ fails here
instead of producing a wrong table. It never unpickles anything.
"""
import json
import os
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "pickle", "numpyDtypeTable.ts")
BYTE_ORDERS = "<>|="
DATETIME_UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as", "generic"]
# numpy/core/include/numpy/ndarraytypes.h: the flags a structured dtype takes from its fields.
NPY_FROM_FIELDS = 0x1B
NPY_ALIGNED_STRUCT = 0x80


def u8(flags):
    """numpy writes the flags char as a signed int (-112 for 0x90); the table keeps the byte."""
    return flags & 0xFF


def reduce_of(d):
    cls, args, state = d.__reduce__()
    assert cls is np.dtype, cls
    assert len(args) == 3 and args[1] is False and args[2] is True, args
    return args[0], state


def fixed_rows():
    rows = {}
    for code in np.typecodes["All"] + "O":
        if code in "SUVMm":
            continue
        for bo in BYTE_ORDERS:
            d = np.dtype(code).newbyteorder(bo)
            ts, st = reduce_of(d)
            assert len(st) == 8 and st[0] == 3, (code, st)
            assert st[2:5] == (None, None, None) and st[5] == -1 and st[6] == -1, (code, st)
            row = rows.setdefault(ts, {"byteOrders": set(), "itemsize": d.itemsize, "alignment": d.alignment, "flags": u8(st[7])})
            assert row["itemsize"] == d.itemsize and row["alignment"] == d.alignment and row["flags"] == u8(st[7]), (code, row)
            row["byteOrders"].add(st[1])
    return rows


def flexible_rows():
    rows = {}
    for kind in "SUV":
        unit = None
        for n in [0, 1, 2, 3, 7, 16, 255, 4096]:
            for bo in BYTE_ORDERS:
                d = np.dtype(f"{kind}{n}").newbyteorder(bo)
                ts, st = reduce_of(d)
                assert ts == f"{kind}{n}", (ts, kind, n)
                assert len(st) == 8 and st[0] == 3 and st[2:5] == (None, None, None), st
                if unit is None:
                    unit = d.itemsize // n if n else None
                row = rows.setdefault(kind, {"byteOrders": set(), "alignment": st[6], "flags": u8(st[7]), "unit": None})
                assert st[5] == d.itemsize, (kind, n, st)
                assert row["alignment"] == st[6] == d.alignment and row["flags"] == u8(st[7]), (kind, n, st)
                if n:
                    assert d.itemsize % n == 0
                    row["unit"] = row["unit"] or d.itemsize // n
                    assert row["unit"] == d.itemsize // n
                row["byteOrders"].add(st[1])
    return rows


def datetime_rows():
    rows = {}
    for kind in "Mm":
        for unit in DATETIME_UNITS:
            for num in [1, 10] if unit != "generic" else [1]:
                name = f"{kind}8" if unit == "generic" else f"{kind}8[{num}{unit}]"
                for bo in BYTE_ORDERS:
                    d = np.dtype(name).newbyteorder(bo)
                    ts, st = reduce_of(d)
                    assert ts == f"{kind}8", ts
                    assert len(st) == 9 and st[0] == 4 and st[2:5] == (None, None, None) and st[5] == -1 and st[6] == -1, st
                    meta = st[8]
                    assert isinstance(meta, tuple) and len(meta) == 2 and meta[0] == {}, meta
                    assert meta[1] == (unit.encode(), num, 1, 1), (name, meta)
                    row = rows.setdefault(ts, {"byteOrders": set(), "itemsize": d.itemsize, "alignment": d.alignment, "flags": u8(st[7])})
                    assert row["flags"] == u8(st[7]) and row["itemsize"] == d.itemsize
                    row["byteOrders"].add(st[1])
    return rows


def check_composite_rules(fixed, flexible):
    """The rules numpyDtype.ts applies to structured and subarray dtypes, checked on the real numpy."""
    # A structured dtype of one flag-free field: what every structured dtype has of its own.
    assert u8(np.dtype("u1").flags) == 0
    struct_base = u8(np.dtype([("a", "u1")]).flags)
    samples = [np.dtype(t) for t in list(fixed) + ["S3", "U2", "V5", "M8[ns]", "m8"]]
    samples.append(np.dtype([("x", "O"), ("y", "<f8")]))
    for t in samples:
        for align in (False, True):
            s = np.dtype([("p", "u1"), ("a", t)], align=align)
            ts, st = reduce_of(s)
            assert ts == f"V{s.itemsize}" and st[0] == 3 and st[1] == "|" and st[2] is None and st[3] == ("p", "a"), st
            want = struct_base | ((u8(t.flags) | u8(np.dtype("u1").flags)) & NPY_FROM_FIELDS) | (NPY_ALIGNED_STRUCT if align else 0)
            assert u8(st[7]) == want, (t, align, st[7], want)
            assert st[5] == s.itemsize
            assert st[6] == (max(t.alignment, 1) if align else 1), (t, align, st[6])
        sub = np.dtype((t, (2, 3)))
        ts, st = reduce_of(sub)
        assert ts == f"V{sub.itemsize}" and st[2][1] == (2, 3) and st[3] is None and st[4] is None, st
        assert u8(st[7]) == u8(t.flags) and st[5] == t.itemsize * 6 and st[6] == t.alignment, (t, st)
    # numpy.record dtypes (recarrays) are written with the class instead of a type string, the rest as V.
    rec = np.dtype((np.record, [("a", "O"), ("b", "<f8")]))
    cls, args, st = rec.__reduce__()
    assert args == (np.record, False, True) and st == reduce_of(np.dtype([("a", "O"), ("b", "<f8")]))[1], st
    titled = np.dtype({"names": ["x"], "formats": ["<f4"], "titles": ["T"]})
    _, st = reduce_of(titled)
    assert st[4]["T"] == st[4]["x"] and len(st[4]["x"]) == 3, st
    meta = np.dtype("f8", metadata={"k": 1})
    _, st = reduce_of(meta)
    assert len(st) == 9 and st[0] == 4 and st[8] == {"k": 1}, st
    return struct_base


def ts_set(s):
    return "[" + ", ".join(json.dumps(b) for b in sorted(s)) + "]"


def main():
    fixed = fixed_rows()
    flexible = flexible_rows()
    dt = datetime_rows()
    struct_base = check_composite_rules(fixed, flexible)
    lines = [
        "// GENERATED by scripts/gen_numpy_dtype_table.py from numpy " + np.__version__ + " (" + sys.platform + "); do not edit.",
        "// Run `/usr/bin/python3 scripts/gen_numpy_dtype_table.py` to regenerate.",
        "",
        "/** What numpy's dtype.__reduce__ writes for one type string of `numpy.dtype(<type string>, False, True)`. */",
        "export interface NumpyFixedDtypeRow {",
        "  /** Byte orders written in the state: \"|\" for types without one, else \"<\" and \">\" (never \"=\"). */",
        "  byteOrders: readonly string[];",
        "  itemsize: number;",
        "  /** dtype.alignment (the state writes -1 for these types). */",
        "  alignment: number;",
        "  /** The flags byte of the state (numpy writes it as a signed char: values >= 128 appear negative). */",
        "  flags: number;",
        "  /** State version: 3, or 4 with the datetime metadata tuple for M8/m8. */",
        "  version: 3 | 4;",
        "}",
        "",
        "export interface NumpyFlexibleDtypeRow {",
        "  byteOrders: readonly string[];",
        "  /** elsize = unit * N for type string <kind>N. */",
        "  unit: number;",
        "  /** The alignment the state writes. */",
        "  alignment: number;",
        "  flags: number;",
        "}",
        "",
        "/** Non-flexible type strings (b1, i8, f16, c32, O8, M8, m8...). */",
        "export const NUMPY_FIXED_DTYPES: Readonly<Record<string, NumpyFixedDtypeRow>> = {",
    ]
    for ts, row in sorted(list(fixed.items()) + list(dt.items())):
        version = 4 if ts in dt else 3
        lines.append(
            f"  {json.dumps(ts)}: {{ byteOrders: {ts_set(row['byteOrders'])}, itemsize: {row['itemsize']}, alignment: {row['alignment']}, flags: {row['flags']}, version: {version} }},"
        )
    lines.append("};")
    lines.append("")
    lines.append("/** Flexible kinds: type string <kind><N>, N the count of units (bytes for S and V, code points for U). */")
    lines.append("export const NUMPY_FLEXIBLE_DTYPES: Readonly<Record<string, NumpyFlexibleDtypeRow>> = {")
    for kind, row in sorted(flexible.items()):
        lines.append(f"  {kind}: {{ byteOrders: {ts_set(row['byteOrders'])}, unit: {row['unit']}, alignment: {row['alignment']}, flags: {row['flags']} }},")
    lines.append("};")
    lines.append("")
    lines.append("/** Datetime units numpy writes in the (unit, num, 1, 1) metadata tuple of M8/m8 states. */")
    lines.append("export const NUMPY_DATETIME_UNITS: readonly string[] = [" + ", ".join(json.dumps(u) for u in DATETIME_UNITS) + "];")
    lines.append("")
    lines.append("/** Flags every structured dtype has (NPY_NEEDS_PYAPI), before those taken from its fields. */")
    lines.append(f"export const NUMPY_STRUCT_BASE_FLAGS = {struct_base};")
    lines.append("/** NPY_FROM_FIELDS: the flags a structured dtype takes from its fields (OR of theirs). */")
    lines.append(f"export const NUMPY_FROM_FIELDS = {NPY_FROM_FIELDS};")
    lines.append("/** NPY_ALIGNED_STRUCT: set when the dtype was made with align=True. */")
    lines.append(f"export const NUMPY_ALIGNED_STRUCT = {NPY_ALIGNED_STRUCT};")
    lines.append("")
    with open(OUT, "w") as f:
        f.write("\n".join(lines))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
