"""Hive type names as Glue writes them, inferred from JSON values, and the merge rules.

A type is a plain string for scalars (`boolean`, `int`, `bigint`, `double`, `string`,
`timestamp`, `date`, and the internal `null` for "only nulls seen so far"), a `Struct`
or an `Array`. The merge rules are documented in docs/schema-rules.md.
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Any

NULL = "null"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_NUMERIC_RANK = {"int": 0, "bigint": 1, "double": 2}
_SAFE_NAME = re.compile(r"[^a-z0-9_]")
_SCALAR = re.compile(r"decimal\(\d+,\s*\d+\)|[a-z][a-z0-9_]*")


@dataclass
class Struct:
    fields: dict[str, HiveType] = field(default_factory=dict)


@dataclass
class Array:
    element: HiveType = NULL


HiveType = str | Struct | Array


@dataclass
class MergeReport:
    conflicts: list[str] = field(default_factory=list)


@lru_cache(maxsize=65536)  # the same few hundred keys repeat in every record
def normalize_name(name: str) -> str:
    """Glue lower-cases column names; anything but [a-z0-9_] becomes '_'."""
    safe = _SAFE_NAME.sub("_", name.lower())
    if not safe or safe[0].isdigit():
        safe = "_" + safe
    return safe


def infer(value: Any) -> HiveType:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if INT32_MIN <= value <= INT32_MAX else "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        struct = Struct()
        for key, item in value.items():
            name = normalize_name(key)
            struct.fields[name] = merge(struct.fields.get(name, NULL), infer(item))
        return struct
    if isinstance(value, list):
        element: HiveType = NULL
        for item in value:
            element = merge(element, infer(item))
        return Array(element)
    return "string"


def merge(a: HiveType, b: HiveType, path: str = "", report: MergeReport | None = None) -> HiveType:
    """The wider of two types: null+T=T, int+bigint=bigint, number+double=double,
    number+string=string, struct+struct=union of fields, array<T>+array<U>=array<merge>,
    struct/array versus scalar = string (reported as a conflict)."""
    if a == NULL:
        return b
    if b == NULL or a == b:
        return a
    if isinstance(a, Struct) and isinstance(b, Struct):
        out = Struct(dict(a.fields))
        for name, t in b.fields.items():
            sub = f"{path}.{name}" if path else name
            out.fields[name] = merge(out.fields[name], t, sub, report) if name in out.fields else t
        return out
    if isinstance(a, Array) and isinstance(b, Array):
        return Array(merge(a.element, b.element, f"{path}[]", report))
    if isinstance(a, str) and isinstance(b, str):
        if a in _NUMERIC_RANK and b in _NUMERIC_RANK:
            return a if _NUMERIC_RANK[a] >= _NUMERIC_RANK[b] else b
        return "string"
    if report is not None:
        report.conflicts.append(f"{path or '<root>'}: {to_hive(a)} vs {to_hive(b)} -> string")
    return "string"


def add_new_fields(base: Struct, extra: Struct) -> Struct:
    """`base` plus the fields (at any depth) only `extra` has; `base` keeps its types.

    Glue's MergeNewColumns: used when cleaning meets fields the catalog has not crawled yet.
    """
    out = Struct(dict(base.fields))
    for name, t in extra.fields.items():
        if name not in out.fields or out.fields[name] == NULL:
            out.fields[name] = t
        elif isinstance(out.fields[name], Struct) and isinstance(t, Struct):
            out.fields[name] = add_new_fields(out.fields[name], t)
    return out


def to_hive(t: HiveType) -> str:
    """Glue's type string; a type that saw only nulls is written as string."""
    if isinstance(t, Struct):
        return "struct<" + ",".join(f"{n}:{to_hive(s)}" for n, s in t.fields.items()) + ">"
    if isinstance(t, Array):
        return f"array<{to_hive(t.element)}>"
    return "string" if t == NULL else t


def parse_hive(text: str) -> HiveType:
    """Inverse of to_hive: `struct<a:int,b:array<string>>` -> Struct({...})."""
    t, end = _parse(text.strip(), 0)
    if end != len(text.strip()):
        raise ValueError(f"trailing text in Hive type {text!r} at {end}")
    return t


def _parse(s: str, i: int) -> tuple[HiveType, int]:
    if s.startswith("struct<", i):
        i += len("struct<")
        struct = Struct()
        while s[i] != ">":
            colon = s.index(":", i)
            name = s[i:colon]
            sub, i = _parse(s, colon + 1)
            struct.fields[name] = sub
            if s[i] == ",":
                i += 1
        return struct, i + 1
    if s.startswith("array<", i):
        element, i = _parse(s, i + len("array<"))
        return Array(element), i + 1
    m = _SCALAR.match(s, i)
    if not m:
        raise ValueError(f"cannot parse Hive type {s!r} at {i}")
    return m.group(0), m.end()


def leaf_columns(name: str, t: HiveType, sep: str = "_") -> list[tuple[str, tuple[str, ...], str]]:
    """Flatten a column to (flat_name, path, leaf_type) leaves; arrays stay whole (as JSON)."""
    if isinstance(t, Struct):
        out = []
        for sub_name, sub in t.fields.items():
            for flat, path, leaf in leaf_columns(sub_name, sub, sep):
                out.append((f"{name}{sep}{flat}", (name, *path), leaf))
        return out
    return [(name, (name,), to_hive(t))]
