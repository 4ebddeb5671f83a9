"""What a record's top-level key list says, looked at once per record shape: keys twice,
keys past the stream's limits, and fields the catalog lacks (added for the run, typed from
the records, while the stream's limits allow them; a record with one that does not fit is
quarantined)."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lake.cleaning.columns import json_pointer
from lake.cleaning.tables import ROW_SPAN, TYPED
from lake.hive_types import Struct, from_duckdb_structure, leaf_columns, leaf_count
from lake.json_fields import Path, collapse_schema
from lake.record_limits import TOO_DEEP, TOO_MANY_COLUMNS, json_depth, key_problem, value_problem
from lake.sql_text import sql_string
from lake.streams import RecordLimits

Shapes = list[tuple[int, list[str]]]  # (shape hash, top-level keys), first seen first


def shape_keys(con: duckdb.DuckDBPyConnection, source: str) -> Shapes:
    """(_shape, keys) for every record shape in TYPED, in first-seen record order, the
    keys read from the shape's first record in `source`."""
    return con.execute(
        f"""
SELECT f._shape, json_keys(s.raw) AS keys
FROM (SELECT _shape, min(_object * {ROW_SPAN} + _position) AS rid
      FROM {TYPED} WHERE _shape IS NOT NULL GROUP BY _shape) f
JOIN {source} s ON s._object * {ROW_SPAN} + s._position = f.rid
ORDER BY f.rid"""
    ).fetchall()


def repeated_key(keys: list[str]) -> str | None:
    """The first key that appears twice in a record's key list."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


def keys_reason(keys: list[str], limits: RecordLimits) -> str | None:
    """Why a record's top-level key list alone makes it unusable, or None."""
    key = repeated_key(keys)
    if key is not None:
        return f"duplicate key in record: {key[:200]}"
    if len(keys) > limits.max_columns:
        return (
            f"{TOO_MANY_COLUMNS}: {len(keys)} top-level keys, the stream allows "
            f"{limits.max_columns} columns"
        )
    return next(filter(None, (key_problem(k, limits) for k in keys)), None)


def quarantine_shapes(
    con: duckdb.DuckDBPyConnection,
    typed: pa.Table,
    shapes: Shapes,
    refused: dict[str, str],
    limits: RecordLimits,
) -> pa.Table:
    """`typed` (registered again as TYPED) with the reasons that come from a record's key
    list, whatever else is wrong with it: a key twice is ambiguous (which value counts?);
    more top-level keys than the stream may have columns, or a field that did not fit
    them, is too many columns."""
    reasons = [(shape, _shape_reason(keys, refused, limits)) for shape, keys in shapes]
    reasons = [(shape, reason) for shape, reason in reasons if reason is not None]
    if not reasons:
        return typed
    column = typed["_reason"]
    for shape, reason in reasons:
        of_shape = pc.fill_null(pc.equal(typed["_shape"], pa.scalar(shape, pa.uint64())), False)
        column = pc.if_else(of_shape, reason, column)
    typed = typed.set_column(typed.schema.get_field_index("_reason"), "_reason", column)
    con.register(TYPED, typed)
    return typed


def _shape_reason(keys: list[str], refused: dict[str, str], limits: RecordLimits) -> str | None:
    if (reason := keys_reason(keys, limits)) is not None:
        return reason
    return next((refused[k] for k in keys if k in refused), None)


def unknown_structure(
    con: duckdb.DuckDBPyConnection,
    source: str,
    unknown: list[str],
    novel: list[int],
    refused: dict[str, str],
    limits: RecordLimits,
    json_paths: frozenset[Path],
) -> Struct:
    """The types of the unknown fields, from the records of the `novel` shapes; a field
    nested past max_nesting_depth or with a key past max_key_bytes goes to `refused`
    instead (checked on the text first, so that no parse recurses too deep)."""
    text = con.execute(_unknown_fields_sql(source, novel)).fetchall()[0][0]
    if json_depth(text) <= limits.max_nesting_depth:
        structure = json.loads(text)
    else:  # one field at a time, to find the deep ones
        structure = {}
        for key in unknown:
            sql = _unknown_fields_sql(source, novel, json_pointer((key,)))
            text = con.execute(sql).fetchall()[0][0]
            if json_depth(text) + 1 > limits.max_nesting_depth:
                refused[key] = (
                    f"{TOO_DEEP}: field {key[:200]!r} nests past {limits.max_nesting_depth} levels"
                )
            else:
                structure[key] = json.loads(text)
    for key in unknown:
        if key in structure and (problem := value_problem(structure[key], limits, 2)):
            refused[key] = f"{problem} (in field {key[:200]!r})"
    found = from_duckdb_structure({k: v for k, v in structure.items() if k not in refused})
    assert isinstance(found, Struct)
    return collapse_schema(found, json_paths)  # a JSON field is one column


def add_unknown_fields(
    schema: Struct,
    unknown: list[str],
    found: Struct,
    refused: dict[str, str],
    limits: RecordLimits,
) -> tuple[Struct, list[str]]:
    """`schema` with the fields added in first-seen order while the table stays within
    max_columns leaves (the others go to `refused`), and the names of those added."""
    room = limits.max_columns - len(leaf_columns(schema))
    fields = dict(schema.fields)
    added = []
    for key in unknown:
        if key in refused:
            continue
        t = found.fields.get(key, "string")
        if leaf_count(t) <= room:
            fields[key] = t
            room -= leaf_count(t)
            added.append(key)
        else:
            refused[key] = (
                f"{TOO_MANY_COLUMNS}: field {key[:200]!r} would take the stream past "
                f"{limits.max_columns} columns"
            )
    return Struct(fields), added


def _unknown_fields_sql(source: str, shapes: list[int], pointer: str = "") -> str:
    """The merged JSON structure of the records of the given shapes (those holding
    top-level keys the catalog lacks), or of the value at `pointer` in them."""
    listed = ", ".join(str(h) for h in shapes)
    value = f"json_extract(s.raw, {sql_string(pointer)})" if pointer else "s.raw::JSON"
    return (
        f"SELECT json_group_structure({value}) FROM {TYPED} t JOIN {source} s "
        f"USING (_object, _position) WHERE t._shape IN ({listed})"
    )
