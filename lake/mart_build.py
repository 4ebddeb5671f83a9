"""Building a mart partition: run its SQL in DuckDB over the lake.

`build_mart` computes one daily partition (or the whole table when not partitioned) and
writes nothing: the result is handed to the sinks of lake.mart_sinks (lake Parquet
files, DuckDB warehouse, Redshift files, alerts).

A mart's SQL reads its partition's day as `getvariable('mart_day')` (NULL when not
partitioned) and whether that day's data is complete as `getvariable('day_complete')`
(lake.day_completeness: every stream it reads, directly or through marts, has data that
arrived past the day's end plus the stream's allowed lateness; NULL when not partitioned). Cleaned inputs are typed from the catalog: a column no file of the day has yet, or a day
with no file at all, reads as NULLs of the right type, so a mart does not break because a
rare field (a failed console login) did not occur that day. Only committed files are
read (lake.mart_inputs: an Iceberg table's current snapshot), each through a literal path
(lake.literal_paths), so a cleaning run killed mid-way or a key with glob characters
never changes what a mart counts.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path

import duckdb
import pyarrow as pa

from lake import layout
from lake.cleaning.columns import LINEAGE_TYPES
from lake.day_completeness import is_day_complete
from lake.json_fields import as_json_columns
from lake.literal_paths import literal_links
from lake.mart_inputs import MartInputs
from lake.marts import MartDefinitionError, MartSpec
from lake.parquet_writing import parquet_bytes
from lake.sql_text import quote_identifier, sql_string
from lake.storage import Storage
from lake.streams import load_streams

InputColumns = dict[str, list[tuple[str, str]]]  # cleaned stream -> [(column, DuckDB type)]
InputSchema = dict[str, dict[str, dict[str, str]]]  # layer -> table -> column -> DuckDB type
CLEANED_EXTRA = [*LINEAGE_TYPES.items(), ("dt", "DATE")]  # lineage, then the Hive dt folder


@dataclass
class MartBuild:
    """One partition of a mart as built, before any sink (lake.mart_sinks) writes it."""

    spec: MartSpec
    day: date | None  # None when not partitioned by day
    missing_inputs: list[str] = field(default_factory=list)  # not built yet: mart skipped
    empty_inputs: list[str] = field(default_factory=list)  # no data that day: read as empty
    result: pa.Table | None = None
    day_complete: bool | None = None  # None when not partitioned by day
    input_schema: InputSchema = field(default_factory=dict)  # the views the SQL read
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:16])  # names its file

    @property
    def rows(self) -> int:
        return 0 if self.result is None else self.result.num_rows

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [] if self.result is None else [(f.name, str(f.type)) for f in self.result.schema]

    @property
    def partition(self) -> str | None:
        return f"dt={self.day}" if self.day else None

    @property
    def parquet_key(self) -> str:
        """This build's file of the partition (`marts/<mart>/dt=<day>/<mart>-<token>.parquet`)."""
        return layout.mart_file(self.spec.name, self.day, self.token)

    @cached_property
    def parquet(self) -> bytes | None:
        """The result as Parquet, encoded once for every sink that writes or copies it."""
        return None if self.result is None else parquet_bytes(self.result)


def build_mart(
    spec: MartSpec,
    day: date | None,
    lake: Storage,
    cleaned_columns: InputColumns | None = None,
    inputs: MartInputs | None = None,
    lateness_hours: Mapping[str, int] | None = None,
) -> MartBuild:
    """Compute one mart (one day of it when daily) from the lake; writing it is the
    sinks' work (lake.mart_sinks). `inputs` finds the committed input files (give one
    with the lake's tables, shared by the days of a backfill; by default the ledger's);
    `lateness_hours` is each stream's allowed lateness (by default that of streams.yaml)."""
    build = MartBuild(spec, day)
    inputs = MartInputs(lake) if inputs is None else inputs
    if day is not None:
        build.day_complete = _day_complete(lake, spec, day, lateness_hours)
    with tempfile.TemporaryDirectory(prefix="mart-") as scratch:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for layer, table in spec.deps:
            found = inputs.files(layer, table, _input_days(spec, day))
            paths = literal_links(lake, found.keys, Path(scratch))
            columns = (cleaned_columns or {}).get(table) if layer == "cleaned" else None
            if not paths and columns is None and found.schema is None:
                build.missing_inputs.append(f"{layer}.{table}")
                continue
            if not paths:
                build.empty_inputs.append(f"{layer}.{table}")
            if paths or columns is not None:
                _create_input_view(con, layer, table, paths, columns, spec.names_used)
            else:  # a table with no file for these days: its columns, no rows
                _create_empty_view(con, layer, table, found.schema)
            view = f"{quote_identifier(layer)}.{quote_identifier(table)}"
            described = con.execute(f"DESCRIBE {view}").fetchall()
            build.input_schema.setdefault(layer, {})[table] = {r[0]: r[1] for r in described}
        if not build.missing_inputs:
            build.result = _run(con, spec, day, build.day_complete)
        con.close()
    return build


def _input_days(spec: MartSpec, day: date | None) -> list[date] | None:
    if day is None:
        return None
    return [day - timedelta(days=n) for n in range(spec.lookback_days, -1, -1)]


def _day_complete(
    lake: Storage, spec: MartSpec, day: date, lateness_hours: Mapping[str, int] | None
) -> bool:
    if lateness_hours is None:
        lateness_hours = {n: s.allowed_lateness_hours for n, s in load_streams().streams.items()}
    return all(
        is_day_complete(lake, stream, day, lateness_hours[stream]) for stream in spec.streams
    )


def _run(
    con: duckdb.DuckDBPyConnection, spec: MartSpec, day: date | None, complete: bool | None
) -> pa.Table:
    """The mart's rows; its SQL can read the partition's day as getvariable('mart_day')
    and whether the day is complete as getvariable('day_complete')."""
    con.execute(f"SET VARIABLE mart_day = {f'DATE {sql_string(str(day))}' if day else 'NULL'}")
    complete_sql = "NULL" if complete is None else str(complete).upper()
    con.execute(f"SET VARIABLE day_complete = CAST({complete_sql} AS BOOLEAN)")
    relation = con.sql(spec.sql)
    json_names = [
        n for n, t in zip(relation.columns, relation.types, strict=True) if str(t) == "JSON"
    ]
    if spec.partitioned_by == "day":
        if "dt" not in relation.columns:
            raise MartDefinitionError(f"{spec.path.name}: a daily mart must select a dt column")
        if day is not None:  # lookback marts read earlier days: keep the partition's own
            relation = con.sql(f"SELECT * FROM ({spec.sql}) WHERE dt = DATE '{day}'")
    # DuckDB hands JSON over as plain text: mark it, for Parquet's JSON type and SUPER
    return as_json_columns(relation.to_arrow_table(), json_names)


def _create_input_view(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    table: str,
    paths: list[Path],
    columns: list[tuple[str, str]] | None,
    names_used: tuple[str, ...] = (),
) -> None:
    """`<layer>.<table>` over the files; with `columns` (cleaned, from the catalog) every
    catalog column is there, NULL where the files do not have it, and so is every name
    the mart's SQL uses that neither has (a field no record has carried yet)."""
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
    view = f'"{layer}"."{table}"'
    if paths:
        files = ", ".join(sql_string(str(p)) for p in paths)
        hive = "true" if layer == "cleaned" else "false"
        source = f"read_parquet([{files}], union_by_name=true, hive_partitioning={hive})"
        if columns is None:
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {source}")
            return
        present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    else:
        source, present = "(SELECT 1) WHERE false", set()
    assert columns is not None
    named = {name for name, _ in columns}
    wanted = columns + [(n, t) for n, t in CLEANED_EXTRA if n not in named]
    # CAST: a file cleaned before the catalog widened a column may still hold the old type
    # (lake.retype rewrites it); union_by_name gives the files' common type, the cast the
    # catalog's
    select = ", ".join(
        f"CAST({quote_identifier(name)} AS {duck_type}) AS {quote_identifier(name)}"
        if name in present
        else f"NULL::{duck_type} AS {quote_identifier(name)}"
        for name, duck_type in wanted
    )
    extra = sorted(present - {name for name, _ in wanted})
    if extra:  # columns the catalog does not know yet (added by cleaning): keep them
        select += ", " + ", ".join(quote_identifier(name) for name in extra)
    unseen = sorted(set(names_used) - present - {name for name, _ in wanted})
    if unseen:  # untyped NULLs take the type their use asks for
        select += ", " + ", ".join(f"NULL AS {quote_identifier(name)}" for name in unseen)
    con.execute(f"CREATE VIEW {view} AS SELECT {select} FROM {source}")


def _create_empty_view(
    con: duckdb.DuckDBPyConnection, layer: str, table: str, schema: pa.Schema
) -> None:
    """`<layer>.<table>` with the table's columns and no rows."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(layer)}")
    empty = f"empty {layer}.{table}"
    con.register(empty, schema.empty_table())
    view = f"{quote_identifier(layer)}.{quote_identifier(table)}"
    con.execute(f"CREATE VIEW {view} AS SELECT * FROM {quote_identifier(empty)}")
