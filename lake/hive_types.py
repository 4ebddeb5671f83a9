"""Hive type names as Glue writes them, inferred from JSON values, and the merge rules.

A type is a plain string for scalars (`boolean`, `int`, `bigint`, `double`, `string`,
`timestamp`, `date`, `decimal(p,s)`, and the internal `null` for "only nulls seen so
far"), a `Struct` or an `Array`. Inside the crawler a Struct is keyed by the records'
original keys; Glue-safe names (lower case, [a-z0-9_], collisions suffixed) are made at
the catalog boundary by `catalog_names`, with a map back to the original keys.
The merge rules are documented in docs/schema-rules.md.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

NULL = "null"
MAX_NAME_CHARS = 127  # Redshift's limit for a column name (Glue's is 255)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_WIDENING = {("int", "bigint"), ("int", "double"), ("bigint", "double"), ("date", "timestamp")}
_SAFE_NAME = re.compile(r"[^a-z0-9_]")
_SCALAR = re.compile(r"decimal\(\d+,\s*\d+\)|[a-z][a-z0-9_]*")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?"
)


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
    """Glue lower-cases column names; anything but [a-z0-9_] becomes '_'. A name longer
    than MAX_NAME_CHARS keeps its head and gets a hash of the whole key (deterministic)."""
    safe = _SAFE_NAME.sub("_", name.lower())
    if not safe or safe[0].isdigit():
        safe = "_" + safe
    if len(safe) > MAX_NAME_CHARS:
        digest = hashlib.md5(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        safe = f"{safe[: MAX_NAME_CHARS - 9]}_{digest}"
    return safe


def infer(value: Any) -> HiveType:
    """The Hive type of one JSON value; ISO-8601 strings are timestamps or dates."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "int" if INT32_MIN <= value <= INT32_MAX else "bigint"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return _string_type(value)
    if isinstance(value, dict):
        struct = Struct()
        for key, item in value.items():
            struct.fields[key] = merge(struct.fields.get(key, NULL), infer(item))
        return struct
    if isinstance(value, list):
        element: HiveType = NULL
        for item in value:
            element = merge(element, infer(item))
        return Array(element)
    return "string"


def _string_type(value: str) -> str:
    if len(value) == 10 and _DATE.fullmatch(value):
        return "date"
    if 16 <= len(value) <= 35 and _TIMESTAMP.fullmatch(value):
        return "timestamp"
    return "string"


def merge(a: HiveType, b: HiveType, path: str = "", report: MergeReport | None = None) -> HiveType:
    """The wider of two types: null+T=T, int+bigint=bigint, int|bigint+double=double,
    date+timestamp=timestamp, other scalar pairs=string, struct+struct=union of fields
    (first-seen order), array<T>+array<U>=array<merge(T,U)>, struct/array versus anything
    else = string (reported as a conflict)."""
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
        if (a, b) in _WIDENING:
            return b
        if (b, a) in _WIDENING:
            return a
        return "string"
    if report is not None:
        report.conflicts.append(f"{path or '<root>'}: {to_hive(a)} vs {to_hive(b)} -> string")
    return "string"


def is_widening(old: str, new: str) -> bool:
    """A scalar change that readers of the old type can follow (int->bigint, ->string...)."""
    return (old, new) in _WIDENING or (new == "string" and old != NULL)


def add_new_fields(base: Struct, extra: Struct) -> Struct:
    """`base` plus the fields (at any depth) only `extra` has; `base` keeps its types.

    Glue's MergeNewColumns; also used when cleaning meets fields not crawled yet.
    """
    out = Struct(dict(base.fields))
    for name, t in extra.fields.items():
        if name not in out.fields or out.fields[name] == NULL:
            out.fields[name] = t
        elif isinstance(out.fields[name], Struct) and isinstance(t, Struct):
            out.fields[name] = add_new_fields(out.fields[name], t)
    return out


_DUCKDB_SCALARS = {
    "BOOLEAN": "boolean",
    "BIGINT": "bigint",
    "UBIGINT": "bigint",
    "DOUBLE": "double",
    "VARCHAR": "string",
    "NULL": NULL,
}


def from_duckdb_structure(structure: Any) -> HiveType:
    """A type from DuckDB's `json_group_structure` (mixed types, "JSON", become string)."""
    if isinstance(structure, dict):
        return Struct({k: from_duckdb_structure(v) for k, v in structure.items()})
    if isinstance(structure, list):
        return Array(from_duckdb_structure(structure[0]) if structure else NULL)
    return _DUCKDB_SCALARS.get(structure, "string")


def to_hive(t: HiveType) -> str:
    """Glue's type string with catalog-safe field names; a type that saw only nulls is string."""
    if isinstance(t, Struct):
        safe = safe_names(list(t.fields))
        return "struct<" + ",".join(f"{safe[n]}:{to_hive(s)}" for n, s in t.fields.items()) + ">"
    if isinstance(t, Array):
        return f"array<{to_hive(t.element)}>"
    return "string" if t == NULL else t


def safe_names(originals: list[str]) -> dict[str, str]:
    """Original key -> Glue-safe unique name, in order; a collision gets `_2`, `_3`..."""
    used: set[str] = set()
    out = {}
    for original in originals:
        base = name = normalize_name(original)
        n = 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        out[original] = name
    return out


def catalog_names(schema: Struct) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Top-level (catalog name, Hive type) pairs and the map back to the original keys.

    The map is keyed by the dotted path of catalog names and holds only the names that
    differ from their original key.
    """
    name_map: dict[str, str] = {}
    _collect_map(schema, "", name_map)
    top = safe_names(list(schema.fields))
    return [(top[n], to_hive(t)) for n, t in schema.fields.items()], name_map


def _collect_map(struct: Struct, prefix: str, name_map: dict[str, str]) -> None:
    for original, safe in safe_names(list(struct.fields)).items():
        path = f"{prefix}{safe}"
        if safe != original:
            name_map[path] = original
        inner = struct.fields[original]
        while isinstance(inner, Array):
            inner = inner.element
        if isinstance(inner, Struct):
            _collect_map(inner, f"{path}.", name_map)


def from_catalog(columns: list[tuple[str, str]], name_map: dict[str, str]) -> Struct:
    """Inverse of catalog_names: a Struct keyed by the original keys again."""
    out = Struct()
    for name, hive in columns:
        out.fields[name_map.get(name, name)] = _restore(parse_hive(hive), name, name_map)
    return out


def _restore(t: HiveType, path: str, name_map: dict[str, str]) -> HiveType:
    if isinstance(t, Array):
        return Array(_restore(t.element, path, name_map))
    if isinstance(t, Struct):
        return Struct(
            {
                name_map.get(f"{path}.{n}", n): _restore(s, f"{path}.{n}", name_map)
                for n, s in t.fields.items()
            }
        )
    return t


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


def leaf_count(t: HiveType) -> int:
    """Columns a type flattens to (a struct's leaves; an array or scalar is one)."""
    if isinstance(t, Struct):
        return sum(leaf_count(s) for s in t.fields.values())
    return 1


def without_paths(
    schema: Struct, drop: set[tuple[str, ...]], prefix: tuple[str, ...] = ()
) -> Struct:
    """`schema` less the given leaf paths (a struct left with no field goes too)."""
    out = Struct()
    for name, t in schema.fields.items():
        path = (*prefix, name)
        if isinstance(t, Struct) and t.fields:
            inner = without_paths(t, drop, path)
            if inner.fields:
                out.fields[name] = inner
        elif path not in drop:
            out.fields[name] = t
    return out


def leaf_columns(schema: Struct, sep: str = "_") -> list[tuple[str, tuple[str, ...], str]]:
    """Flatten to (flat catalog name, original key path, leaf type); arrays stay whole."""
    out = []
    for original, safe in safe_names(list(schema.fields)).items():
        t = schema.fields[original]
        if isinstance(t, Struct):
            for flat, path, leaf in leaf_columns(t, sep):
                out.append((f"{safe}{sep}{flat}", (original, *path), leaf))
        else:
            out.append((safe, (original,), to_hive(t)))
    return out
