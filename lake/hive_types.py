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
from collections.abc import Iterator
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


def value_signature(value: Any, max_depth: int) -> tuple | str | None:
    """A hashable digest of a JSON value holding exactly what `infer`, the record limits
    and the JSON-field steps read: keys in order, nesting, nulls and each scalar's inferred
    type. Equal signatures give equal results there, so a crawl infers each distinct
    record shape once. None for a value with a container nested deeper than `max_depth`
    (the top level is 1) or a type other than JSON's: infer it value by value."""
    try:
        return _signature(value, max_depth)
    except _NoSignature:
        return None


class _NoSignature(Exception):
    pass


_SCALAR_TYPES = {float: "double", bool: "boolean", type(None): NULL}


def _signature(value: Any, depth_left: int) -> tuple | str:
    kind = type(value)
    if kind is dict:
        return ("{", tuple(value), _items_signature(value.values(), depth_left))
    if kind is list:
        return ("[", _items_signature(value, depth_left))
    return _items_signature((value,), 1)[0]  # a scalar: no depth to spend


def _items_signature(items: Any, depth_left: int) -> tuple:
    """The signatures of a container's items, scalars typed inline: a record's values
    are mostly scalars, and a call per value was most of the signature's cost."""
    if depth_left <= 0:
        raise _NoSignature
    out = []
    append = out.append
    for item in items:
        kind = type(item)
        if kind is str:
            size = len(item)  # only these lengths can be a date or a timestamp
            append(_string_type(item) if size == 10 or 16 <= size <= 35 else "string")
        elif kind is int:
            append("int" if INT32_MIN <= item <= INT32_MAX else "bigint")
        elif kind is dict:
            append(("{", tuple(item), _items_signature(item.values(), depth_left - 1)))
        elif kind is list:
            append(("[", _items_signature(item, depth_left - 1)))
        else:
            scalar = _SCALAR_TYPES.get(kind)
            if scalar is None:
                raise _NoSignature
            append(scalar)
    return tuple(out)


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
    """Glue's type string as Athena reads it: catalog-safe field names, keys that differ
    only by case folded into one field (athena_fields), and no empty struct (Athena
    rejects `struct<>`: an object only ever seen empty is `string`, its JSON text); a
    type that saw only nulls is string."""
    if isinstance(t, Struct):
        if not t.fields:
            return "string"
        return "struct<" + ",".join(f"{n}:{to_hive(s)}" for n, _, s in athena_fields(t)) + ">"
    if isinstance(t, Array):
        return f"array<{to_hive(t.element)}>"
    return "string" if t == NULL else t


def athena_fields(struct: Struct) -> list[tuple[str, list[str], HiveType]]:
    """(catalog name, original keys, type) of each field Athena sees in `struct`.

    Athena's names are case-insensitive and its JSON SerDes match keys ignoring case, so
    keys equal but for case (`accountId`, `accountid`) are one field typed by merging
    theirs; other collisions of the Glue-safe spelling (`a-b`, `a_b`) get `_2`, `_3`...
    """
    groups: dict[str, list[str]] = {}
    for original in struct.fields:
        groups.setdefault(original.lower(), []).append(original)
    safe = safe_names([members[0] for members in groups.values()])
    out: list[tuple[str, list[str], HiveType]] = []
    for members in groups.values():
        merged: HiveType = NULL
        for original in members:
            merged = merge(merged, struct.fields[original])
        out.append((safe[members[0]], members, merged))
    return out


def catalog_fields(struct: Struct, prefix: str = "") -> Iterator[CatalogField]:
    """Every field of the catalog's types, at any depth (through arrays), in column order."""
    for name, members, t in athena_fields(struct):
        path = f"{prefix}{name}"
        yield CatalogField(path, name, members, t, not prefix)
        inner = t
        while isinstance(inner, Array):
            inner = inner.element
        if isinstance(inner, Struct):
            yield from catalog_fields(inner, f"{path}.")


@dataclass(frozen=True)
class CatalogField:
    path: str  # dotted catalog names
    name: str
    originals: list[str]  # the JSON keys it reads (several when they differ only by case)
    type: HiveType
    top_level: bool


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
    differ from their original key (the first one seen, for keys folded by case).
    """
    name_map = {f.path: f.originals[0] for f in catalog_fields(schema) if f.name != f.originals[0]}
    return [(name, to_hive(t)) for name, _, t in athena_fields(schema)], name_map


def case_variants(schema: Struct) -> dict[str, dict[str, Any]]:
    """Catalog path -> {original key: its own type (encode_type)} for every field folded
    from keys that differ only by case, so that from_catalog gives each key back."""
    return {
        f.path: {o: _field_type(schema, f.path, o) for o in f.originals}
        for f in catalog_fields(schema)
        if len(f.originals) > 1
    }


def _field_type(schema: Struct, path: str, original: str) -> Any:
    node: HiveType = schema
    for part in path.split(".")[:-1]:
        node = _unwrap(node)
        node = next(t for n, _, t in athena_fields(node) if n == part)  # type: ignore[arg-type]
    return encode_type(_unwrap(node).fields[original])  # type: ignore[union-attr]


def _unwrap(t: HiveType) -> HiveType:
    while isinstance(t, Array):
        t = t.element
    return t


def encode_type(t: HiveType) -> Any:
    """A type keyed by original keys as JSON: "int", {"array": ...}, {"struct": [[k, ...]]}."""
    if isinstance(t, Struct):
        return {"struct": [[k, encode_type(v)] for k, v in t.fields.items()]}
    if isinstance(t, Array):
        return {"array": encode_type(t.element)}
    return t


def decode_type(doc: Any) -> HiveType:
    if isinstance(doc, dict) and "struct" in doc:
        return Struct({k: decode_type(v) for k, v in doc["struct"]})
    if isinstance(doc, dict) and "array" in doc:
        return Array(decode_type(doc["array"]))
    return str(doc)


def from_catalog(
    columns: list[tuple[str, str]],
    name_map: dict[str, str],
    variants: dict[str, dict[str, Any]] | None = None,
) -> Struct:
    """Inverse of catalog_names (and case_variants): a Struct keyed by the original keys."""
    folded = variants or {}
    out = Struct()
    for name, hive in columns:
        if name in folded:
            out.fields |= {o: decode_type(t) for o, t in folded[name].items()}
            continue
        out.fields[name_map.get(name, name)] = _restore(parse_hive(hive), name, name_map, folded)
    return out


def _restore(
    t: HiveType, path: str, name_map: dict[str, str], folded: dict[str, dict[str, Any]]
) -> HiveType:
    if isinstance(t, Array):
        return Array(_restore(t.element, path, name_map, folded))
    if isinstance(t, Struct):
        out = Struct()
        for n, s in t.fields.items():
            sub = f"{path}.{n}"
            if sub in folded:
                out.fields |= {o: decode_type(v) for o, v in folded[sub].items()}
            else:
                out.fields[name_map.get(sub, n)] = _restore(s, sub, name_map, folded)
        return out
    return t


def empty_object_paths(t: HiveType, prefix: tuple[str | None, ...] = ()) -> list[list[str | None]]:
    """Original-key paths (None = an array's element) of objects only ever seen empty;
    the catalog writes them as `string`, the crawler remembers them to merge later shapes."""
    if isinstance(t, Array):
        return empty_object_paths(t.element, (*prefix, None))
    if not isinstance(t, Struct):
        return []
    if not t.fields:
        return [list(prefix)] if prefix else []
    return [p for k, v in t.fields.items() for p in empty_object_paths(v, (*prefix, k))]


def restore_empty_objects(schema: Struct, paths: list[list[str | None]]) -> None:
    """Put back the empty objects the catalog wrote as `string` (see empty_object_paths)."""
    for path in paths:
        parent: HiveType = schema
        for part in path[:-1]:
            parent = _step(parent, part)
        last = path[-1]
        if last is None and isinstance(parent, Array) and parent.element in ("string", NULL):
            parent.element = Struct()
        elif isinstance(parent, Struct) and parent.fields.get(last or "", 0) in ("string", NULL):
            parent.fields[last or ""] = Struct()  # `string` as written: no shape seen since


def _step(node: HiveType, part: str | None) -> HiveType:
    if part is None:
        return node.element if isinstance(node, Array) else NULL
    return node.fields.get(part, NULL) if isinstance(node, Struct) else NULL


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
