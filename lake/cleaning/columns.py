"""The cleaned table's columns: the catalog table flattened into leaf columns with masks.

Every leaf of every struct becomes a `parent_child` column; arrays are kept whole as JSON
text (their element shape varies from record to record, and Redshift's JSON functions,
Athena and DuckDB all read JSON text, while a nested type would break on the first record
whose elements differ); a JSON field (lake.json_fields) is one column of JSON text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lake.catalog_store import column_assignment, stored_schema
from lake.column_names import LINEAGE_NAMES, RESERVED_NAMES, assign_columns
from lake.hive_types import Struct, leaf_columns
from lake.json_fields import Path, collapse_schema, paths_from_parameter
from lake.streams import StreamSpec

LINEAGE_TYPES = {  # the columns every cleaned file ends with, after the record's own
    "_source_key": "VARCHAR",
    "_position": "BIGINT",
    "_arrival_hour": "TIMESTAMPTZ",
    "_ingested_at": "TIMESTAMPTZ",
}
assert set(LINEAGE_TYPES) == LINEAGE_NAMES
DUCK_TYPES = {
    "boolean": "BOOLEAN",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
}
TEXT_TYPES = ("VARCHAR", "JSON")  # never fail to cast
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


@dataclass(frozen=True)
class Column:
    name: str  # flat, safe column name
    path: tuple[str, ...]  # the record's original keys from its root
    type: str  # Hive leaf type (arrays included, stored as JSON text)
    mask: str | None = None
    json: bool = False  # a JSON field (lake.json_fields): its value's JSON text
    inner_keys: tuple[tuple[str, str], ...] = ()  # pii paths inside a JSON field: key, mask

    @property
    def duck_type(self) -> str:
        if self.json:
            return "JSON"
        m = _DECIMAL.fullmatch(self.type)
        return f"DECIMAL({m.group(1)},{m.group(2)})" if m else DUCK_TYPES.get(self.type, "VARCHAR")


def columns_from_table(table: dict[str, Any] | None, spec: StreamSpec) -> list[Column]:
    schema, assigned = stored_schema(table), column_assignment(table)
    return leaf_columns_of(schema, spec, assigned, json_paths_of(table, spec))


def json_paths_of(table: dict[str, Any] | None, spec: StreamSpec) -> frozenset[Path]:
    """The stream's JSON fields: declared ones and those the crawler found (lake.json_fields)."""
    return spec.json.paths | paths_from_parameter(table)


def leaf_columns_of(
    schema: Struct,
    spec: StreamSpec,
    assigned: dict[tuple[str, ...], str] | None = None,
    json_paths: frozenset[Path] | None = None,
) -> list[Column]:
    """Flatten the schema into leaf columns with PII masks, named by the catalog's
    assignment (`assigned`, see lake.column_names); a leaf it lacks gets the name the
    crawler would give it. A JSON field is one column (its JSON text); a promoted
    sub-field of one is a typed column of its own, after the schema's leaves."""
    json_paths = spec.json.paths if json_paths is None else json_paths
    leaves = [
        (flat, path, leaf, path in json_paths)
        for flat, path, leaf in leaf_columns(collapse_schema(schema, json_paths))
    ]
    known = {path for _, path, _, _ in leaves}
    leaves += [(f, p, t, False) for f, p, t in spec.json.promoted() if p not in known]
    names = assign_columns(
        [(flat, path) for flat, path, _, _ in leaves],
        assigned or {},
        spec.limits.max_name_bytes,
        RESERVED_NAMES,
    )
    columns: list[Column] = []
    for _, path, leaf, is_json in leaves:
        inner: dict[str, str] = {}
        if is_json:
            how, inner = spec.pii.json_column(path)
            leaf = "string"
        else:
            how = spec.pii.column_mask(path)
        if how == "hash":
            leaf = "string"
        columns.append(Column(names[path], path, leaf, how, is_json, tuple(inner.items())))
    return columns


def json_pointer(path: tuple[str, ...]) -> str:
    """RFC 6901: `/` before every key, `~` written `~0` and `/` written `~1`."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)
