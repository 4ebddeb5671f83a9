"""The committed files of a table: what a reader of the catalog sees.

Scan planning on the table's current snapshot gives the data files (pruned to the days
asked for by the partition's bounds); they are handed to DuckDB as a literal list
(lake.literal_paths), so a run's files are read once its commit is in, never before.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThan,
)
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import DateType

from lake import layout
from lake.iceberg.catalog import LakeTables


def committed_keys(
    tables: LakeTables, layer: str, name: str, days: list[date] | None = None
) -> list[str] | None:
    """Lake keys of the table's current data files in its `dt=` folders of `days` (every
    file when None), in key order; None when the table does not exist."""
    table = tables.load(layer, name)
    if table is None:
        return None
    return files_of(table, tables, days)


def files_of(table: Table, tables: LakeTables, days: list[date] | None = None) -> list[str]:
    """As committed_keys, for a loaded table."""
    if table.current_snapshot() is None:
        return []
    keys = []
    for task in table.scan(row_filter=day_filter(table, days)).plan_files():
        key = tables.key_of(task.file.file_path)
        if key is not None:
            keys.append(key)
    if days is not None:  # an unpartitioned table: the dt= folder tells the day
        wanted = set(days)
        keys = [k for k in keys if layout.file_day(k) in wanted]
    return sorted(keys)


def day_filter(table: Table, days: list[date] | None) -> BooleanExpression:
    """A row filter the partition `dt` prunes by: the source column within the days."""
    if days is None:
        return AlwaysTrue()
    partition = next((f for f in table.spec().fields if f.name == "dt"), None)
    if partition is None:
        return AlwaysTrue()
    column = table.schema().find_field(partition.source_id).name
    if isinstance(partition.transform, IdentityTransform):
        return (
            In(column, [d.isoformat() for d in days])
            if len(days) > 1
            else EqualTo(column, days[0].isoformat())
        )
    if isinstance(partition.transform, DayTransform):
        first, end = min(days), max(days) + timedelta(days=1)
        if not isinstance(table.schema().find_type(column), DateType):
            first = datetime.combine(first, time(), UTC)  # type: ignore[assignment]
            end = datetime.combine(end, time(), UTC)  # type: ignore[assignment]
        return And(GreaterThanOrEqual(column, first.isoformat()), LessThan(column, end.isoformat()))
    return AlwaysTrue()
