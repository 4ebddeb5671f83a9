"""Fields kept whole as JSON text: one column, never a struct (docs/schema-rules.md, 3a).

A sub-object whose shape depends on something else in the record (CloudTrail's
`requestParameters` differs for every API) would become a struct with hundreds of fields
and as many cleaned columns, and one key holding an object in one record and a string in
another would block the stream's schema check. Such a field is kept as one column holding
the value's JSON text: `string` in the catalog (as AWS's Athena table for CloudTrail types
it), VARCHAR holding valid JSON in cleaned Parquet (logical type JSON), SUPER in Redshift.

A field is JSON when the stream declares it (`json_fields:` in streams.yaml), or when the
crawler meets a struct or array under a key that also holds something else (applied, kept
in the table parameter `jsonFields`). A struct with many different field sets is only
proposed (`json_field_candidates`). Declared fields may promote sub-fields to typed
columns of their own, read by JSON pointer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from lake.hive_types import NULL, Array, HiveType, Struct, normalize_name

Path = tuple[str, ...]
PARAMETER = "jsonFields"  # catalog table parameter: JSON list of key paths
PROMOTE_TYPES = ("string", "boolean", "int", "bigint", "double", "timestamp", "date")
_PLACEHOLDER = "json"  # what the crawler infers a declared JSON value as: a plain string


class JsonFieldError(ValueError):
    """A `json_fields` entry of streams.yaml that cannot be used."""


@dataclass(frozen=True)
class JsonField:
    path: Path
    promote: tuple[tuple[Path, str], ...] = ()  # (sub-path under `path`, Hive type)


@dataclass(frozen=True)
class JsonSettings:
    """A stream's declared JSON fields (the crawler's detection settings are in
    lake.streams.CrawlerSettings: json_max_shapes, json_on_conflict)."""

    fields: tuple[JsonField, ...] = ()

    @property
    def paths(self) -> frozenset[Path]:
        return frozenset(f.path for f in self.fields)

    def promoted(self) -> list[tuple[str, Path, str]]:
        """(flat name, full key path, type) of every promoted sub-field."""
        out = []
        for f in self.fields:
            for sub, hive in f.promote:
                path = (*f.path, *sub)
                out.append(("_".join(normalize_name(k) for k in path), path, hive))
        return out


def parse_json_settings(declared: Any, where: str, reserved: Iterable[str]) -> JsonSettings:
    """`json_fields:`: a list of dotted paths, or a mapping path -> {promote: {sub: type}}.
    `reserved` are top-level keys that must stay scalar columns (event time, dedup key)."""
    if declared is None:
        declared = {}
    if isinstance(declared, list):
        declared = {str(p): None for p in declared}
    if not isinstance(declared, Mapping):
        raise JsonFieldError(f"{where}: json_fields must be a list or a mapping of field paths")
    fields = []
    for dotted, body in declared.items():
        path = _dotted(dotted, f"{where}: json_fields")
        if path[0] in set(reserved):
            raise JsonFieldError(
                f"{where}: json_fields {dotted!r} holds the event time or dedup key"
            )
        body = body or {}
        if not isinstance(body, Mapping) or set(body) - {"promote"}:
            raise JsonFieldError(f"{where}: json_fields {dotted!r}: only 'promote' may be given")
        promote = []
        for sub, hive in (body.get("promote") or {}).items():
            if hive not in PROMOTE_TYPES:
                raise JsonFieldError(
                    f"{where}: json_fields {dotted!r} promote {sub!r}: type {hive!r} "
                    f"is not one of {PROMOTE_TYPES}"
                )
            promote.append((_dotted(sub, f"{where}: json_fields {dotted!r} promote"), str(hive)))
        fields.append(JsonField(path, tuple(promote)))
    paths = [f.path for f in fields]
    for p in paths:
        if any(q != p and p[: len(q)] == q for q in paths):
            raise JsonFieldError(f"{where}: json_fields {'.'.join(p)!r} lies inside another one")
    return JsonSettings(tuple(fields))


def _dotted(text: Any, where: str) -> Path:
    path = tuple(str(text).split("."))
    if not str(text) or any(part == "" for part in path):
        raise JsonFieldError(f"{where}: empty field name in {text!r}")
    return path


def collapse_record(record: dict[str, Any], paths: Iterable[Path]) -> dict[str, Any]:
    """`record` with every non-null value at a JSON path replaced by a plain string, so the
    crawler never descends into it (copied only along the paths; the record is kept)."""
    out = record
    for path in paths:
        out = _replace(out, path)
    return out


def _replace(node: dict[str, Any], path: Path) -> dict[str, Any]:
    key = path[0]
    if key not in node or node[key] is None:
        return node
    if len(path) == 1:
        return {**node, key: _PLACEHOLDER}
    inner = node[key]
    return {**node, key: _replace(inner, path[1:])} if isinstance(inner, dict) else node


def collapse_schema(schema: Struct, paths: Iterable[Path]) -> Struct:
    """`schema` with the type at every JSON path made `string` (a null-only one stays)."""
    out = schema
    for path in paths:
        out = _collapse(out, path)
    return out


def _collapse(struct: Struct, path: Path) -> Struct:
    t = struct.fields.get(path[0])
    if t is None or t == NULL:
        return struct
    if len(path) == 1:
        return struct if t == "string" else Struct({**struct.fields, path[0]: "string"})
    if not isinstance(t, Struct):
        return struct
    inner = _collapse(t, path[1:])
    return struct if inner is t else Struct({**struct.fields, path[0]: inner})


def conflict_paths(a: HiveType, b: HiveType, prefix: Path = ()) -> list[Path]:
    """Key paths where one side is a struct or array and the other something else (a
    scalar, or the other of the two): what merge would turn into a `string` conflict.
    Inside arrays nothing is looked for: an array is one JSON text column already."""
    if a == NULL or b == NULL:
        return []
    if isinstance(a, Struct) and isinstance(b, Struct):
        return [
            p
            for k, t in b.fields.items()
            if k in a.fields
            for p in conflict_paths(a.fields[k], t, (*prefix, k))
        ]
    if isinstance(a, Array) and isinstance(b, Array):
        return []
    nested = isinstance(a, Struct | Array) or isinstance(b, Struct | Array)
    return [prefix] if nested and prefix else []


@dataclass
class ShapeCounter:
    """Distinct field sets of every struct in the sampled records, by key path (at most
    `limit` + 1 kept per path: enough to know it passed the threshold)."""

    limit: int
    shapes: dict[Path, set[int]] = field(default_factory=dict)

    def observe(self, record: dict[str, Any], skip: frozenset[Path], prefix: Path = ()) -> None:
        for key, value in record.items():
            if isinstance(value, dict):
                path = (*prefix, key)
                if path in skip:
                    continue
                seen = self.shapes.setdefault(path, set())
                if len(seen) <= self.limit:
                    seen.add(hash(tuple(value)))
                self.observe(value, skip, path)

    def candidates(self) -> list[Path]:
        """Outermost paths with more than `limit` shapes, in first-seen order."""
        many = [p for p, s in self.shapes.items() if len(s) > self.limit]
        return [p for p in many if not any(q != p and p[: len(q)] == q for q in many)]


def paths_from_parameter(table: Mapping[str, Any] | None) -> frozenset[Path]:
    text = ((table or {}).get("Parameters") or {}).get(PARAMETER)
    return frozenset(tuple(p) for p in json.loads(text)) if text else frozenset()


def to_parameter(paths: Iterable[Path]) -> str:
    return json.dumps(sorted(list(p) for p in paths))


def dotted(path: Path) -> str:
    return ".".join(path)


def as_json_columns(table: pa.Table, names: Iterable[str]) -> pa.Table:
    """`table` with the named text columns typed as Arrow's JSON extension, so Parquet
    marks them with the JSON logical type (DuckDB reads them as JSON; Athena, Spark and
    Redshift as text)."""
    for name in names:
        i = table.schema.get_field_index(name)
        if i < 0 or isinstance(table.schema.field(i).type, pa.JsonType):
            continue
        column = table.column(i).cast(pa.string())
        chunks = [pa.ExtensionArray.from_storage(pa.json_(), c) for c in column.chunks]
        table = table.set_column(i, name, pa.chunked_array(chunks, type=pa.json_()))
    return table
