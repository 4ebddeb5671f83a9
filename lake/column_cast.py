"""Columns cast to wider types with cleaning's rules, on Arrow tables (DuckDB does the casts).

Used wherever a committed file must take a column's newer, wider type: lake.retype (the
catalog widened a column) and lake.iceberg.rewrite (a table's column replaced by a type
Iceberg cannot promote to). Types are DuckDB type names, as cleaning writes them.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from lake.sql_text import quote_identifier


def arrow_types(duck_types: dict[str, str]) -> dict[str, pa.DataType]:
    """The Arrow (so Parquet) type cleaning gives each DuckDB type: asked of DuckDB itself."""
    if not duck_types:
        return {}
    con = _utc_connection()
    try:
        select = ", ".join(f"NULL::{t} AS {quote_identifier(n)}" for n, t in duck_types.items())
        schema = con.sql(f"SELECT {select}").to_arrow_table().schema
    finally:
        con.close()
    return {f.name: f.type for f in schema}


def duck_types(schema: pa.Schema) -> dict[str, str]:
    """Column name -> DuckDB's type name for each Arrow field: asked of DuckDB itself."""
    con = _utc_connection()
    try:
        con.register("typed_rows", schema.empty_table())
        return {name: kind for name, kind, *_ in con.execute("DESCRIBE typed_rows").fetchall()}
    finally:
        con.close()


def cast_columns(rows: pa.Table, target: dict[str, str]) -> pa.Table | None:
    """`rows` with every column named in `target` cast to its DuckDB type there (None when
    all already are). Widening only, with cleaning's rules: a timestamp becomes ISO-8601
    text in UTC (`2026-11-21T08:10:00Z`, `.ffffffZ` when it has fractions of a second),
    other values DuckDB's text (`1.5`, `true`, `2026-11-21`)."""
    arrow_target = arrow_types({n: target[n] for n in rows.column_names if n in target})
    changed = [n for n, t in arrow_target.items() if rows.schema.field(n).type != t]
    if not changed:
        return None
    con = _utc_connection()
    try:
        con.register("file_rows", rows.select(changed))
        select = ", ".join(_cast_sql(n, rows.schema.field(n).type, target[n]) for n in changed)
        cast = con.sql(f"SELECT {select} FROM file_rows").to_arrow_table()
    finally:
        con.close()
    for name in changed:  # the other columns keep their bytes and types
        index = rows.schema.get_field_index(name)
        column = cast.column(name).cast(arrow_target[name])
        rows = rows.set_column(index, rows.schema.field(name).with_type(arrow_target[name]), column)
    return rows


def _utc_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _cast_sql(name: str, source: pa.DataType, duck_type: str) -> str:
    v = quote_identifier(name)
    if duck_type != "VARCHAR":
        return f"CAST({v} AS {duck_type}) AS {v}"
    if pa.types.is_timestamp(source):
        text = (
            f"strftime({v}, CASE WHEN microsecond({v}) % 1000000 = 0 "
            "THEN '%Y-%m-%dT%H:%M:%SZ' ELSE '%Y-%m-%dT%H:%M:%S.%fZ' END)"
        )
    else:
        text = f"CAST({v} AS VARCHAR)"
    # widening to text starts from a number, boolean or time: no personal text to mask
    return f"{text} AS {v}"
