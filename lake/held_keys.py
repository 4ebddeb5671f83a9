"""Which source keys the cleaned Iceberg table's current files hold rows of, for the
arrival hours of one reconciliation call at once (lake.reconcile's table check).

The table's files are planned once a call, pruned by `_arrival_hour` to the call's hours
when the table has that column, never with a filter on the keys: pyiceberg evaluates
`In(_source_key, keys)` key by key against every file's bounds (files x keys, and that
again for each hour). Keys are matched to files here, each by a dict or a bisect:
- a file named after an object (its output name, lake.ledger) holds that object's rows: a
  run commits all of an object's files at once, so the object is whole;
- a file whose `_source_key` bounds are one key holds that key's rows;
- any other file (shared by a pass's objects, a compacted day, a copy-on-write or retyped
  copy of either) has its `_source_key` column read, once a call, and only while its
  bounds admit a key not found yet. Keys compare as UTF-8 bytes, as Iceberg's bounds do.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, GreaterThanOrEqual, LessThan
from pyiceberg.table import Table
from pyiceberg.types import TimestampType, TimestamptzType

from lake.cleaning.commit import SOURCE_KEY
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.ledger import output_name_of_file

ARRIVAL = "_arrival_hour"


@dataclass
class TableFiles:
    """The cleaned table's current data files (of some arrival hours), as matched to keys."""

    table: Table
    named: frozenset[str]  # output names the files' names were made from
    single: frozenset[bytes]  # the keys of files whose bounds are that key alone
    ranges: list[tuple[bytes, bytes | None, str]]  # the others: (lower, upper, path), by lower
    read: dict[str, frozenset[str]] = field(default_factory=dict)  # path -> its keys

    def keys_in(self, path: str) -> frozenset[str]:
        if path not in self.read:
            self.read[path] = _source_keys_in(self.table, path)
        return self.read[path]


def plan_files(tables: LakeTables, stream: str, hours: list[datetime]) -> TableFiles | None:
    """The current files of the stream's cleaned table that may hold rows of `hours` (one
    scan plan); None without a table or snapshot."""
    table = tables.load(CLEANED, stream)
    if table is None or table.current_snapshot() is None:
        return None
    field_id = table.schema().find_field(SOURCE_KEY[CLEANED]).field_id
    named, single, ranges = set(), set(), []
    for task in table.scan(row_filter=_arrival_filter(table, hours)).plan_files():
        data = task.file
        lake_key = tables.key_of(data.file_path) or ""
        named.add(output_name_of_file(lake_key.rsplit("/", 1)[-1]))
        lower = (data.lower_bounds or {}).get(field_id)
        upper = (data.upper_bounds or {}).get(field_id)
        if lower is not None and lower == upper:
            single.add(lower)
        else:  # no bound: the file may hold any key
            ranges.append((lower or b"", upper, data.file_path))
    ranges.sort(key=lambda r: r[0])
    return TableFiles(table, frozenset(named), frozenset(single), ranges)


def _arrival_filter(table: Table, hours: list[datetime]) -> BooleanExpression:
    """Rows that arrived in the hours from the first to the last of `hours` (files without
    the column's bounds stay in the plan)."""
    try:
        kind = table.schema().find_field(ARRIVAL).field_type
    except ValueError:
        return AlwaysTrue()
    if not isinstance(kind, TimestampType | TimestamptzType):
        return AlwaysTrue()
    first, last = min(hours), max(hours) + timedelta(hours=1)
    return And(GreaterThanOrEqual(ARRIVAL, _micros(first)), LessThan(ARRIVAL, _micros(last)))


def _micros(hour: datetime) -> int:
    utc = hour if hour.tzinfo else hour.replace(tzinfo=UTC)
    return round(utc.timestamp() * 1_000_000)


def keys_held(files: TableFiles, names: dict[str, str]) -> set[str]:
    """The keys of `names` (output name -> source key) the files hold rows of."""
    held = {key for name, key in names.items() if name in files.named}
    held |= {key for key in names.values() if _utf8(key) in files.single}
    wanted = sorted({key for key in names.values() if key not in held}, key=_utf8)
    return held | _found_in_ranges(files, wanted)


def _found_in_ranges(files: TableFiles, wanted: list[str]) -> set[str]:
    """The `wanted` keys (sorted as UTF-8) the range files hold: a file is read when the
    first key not found yet at or after its lower bound is within its upper bound."""
    sorted_bytes = [_utf8(key) for key in wanted]
    position = {key: n for n, key in enumerate(wanted)}
    after = list(range(len(wanted) + 1))  # n while wanted[n] is not found, else a later n
    found: set[str] = set()
    for lower, upper, path in files.ranges:
        n = _first_open(after, bisect_left(sorted_bytes, lower))
        if n == len(wanted) or (upper is not None and sorted_bytes[n] > upper):
            continue
        for key in files.keys_in(path):
            m = position.get(key)
            if m is not None and after[m] == m:
                after[m] = m + 1
                found.add(key)
    return found


def _first_open(after: list[int], n: int) -> int:
    """The first index from `n` on whose key is not found yet (paths halved as walked)."""
    while after[n] != n:
        after[n] = after[after[n]]
        n = after[n]
    return n


def _utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def _source_keys_in(table: Table, path: str) -> frozenset[str]:
    """The distinct `_source_key` values of one data file (that column alone read)."""
    with table.io.new_input(path).open() as stream:
        column = pq.ParquetFile(stream).read(columns=[SOURCE_KEY[CLEANED]]).column(0)
    return frozenset(k for k in pc.unique(column).to_pylist() if k is not None)
