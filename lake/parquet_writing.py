"""Writing Parquet: one table as zstd bytes, or a stream of rows as one file per group.

For write_groups, the rows arrive ordered by their group columns (say the source object),
so each group is a run of consecutive rows, complete as soon as the next one starts.
pyarrow encodes and compresses with the GIL released, so two writer threads keep both
cores busy; for many small files this is faster than DuckDB's PARTITION_BY (measured in
bench/README.md).
"""

from __future__ import annotations

import functools
import io
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

T = TypeVar("T")

GroupKey = tuple[object, ...]
WriteGroup = Callable[[GroupKey, pa.Table], T]

WRITER_THREADS = 2
_IN_FLIGHT = 2 * WRITER_THREADS  # groups handed over but not written yet


def parquet_bytes(table: pa.Table, no_dictionary: set[str] = frozenset()) -> bytes:
    """zstd Parquet; `no_dictionary` names columns whose values are (nearly) all distinct,
    where a dictionary only costs time. No Arrow schema is stored in the file: a JSON
    column keeps Parquet's JSON type (DuckDB reads JSON, Redshift SUPER) but reads back
    into Arrow as a string, which Iceberg (pyiceberg) takes; the stored schema would bring
    back Arrow's JSON extension type, which Iceberg has no type for."""
    buf = io.BytesIO()
    table = _without_null_types(table)
    dictionary = [c for c in table.column_names if c not in no_dictionary]
    pq.write_table(table, buf, compression="zstd", use_dictionary=dictionary, store_schema=False)
    return buf.getvalue()


def _without_null_types(table: pa.Table) -> pa.Table:
    """Columns of Arrow's null type (a SQL `NULL AS x`, a field only ever seen null) as
    strings: Iceberg has no type for them and would refuse the file."""
    nulls = [i for i, f in enumerate(table.schema) if pa.types.is_null(f.type)]
    for i in nulls:
        name = table.schema.field(i).name
        table = table.set_column(i, name, pa.nulls(table.num_rows, pa.string()))
    return table


class GroupsNotConsecutive(ValueError):
    """The rows of a group were not consecutive in the reader."""


def write_groups(
    reader: pa.RecordBatchReader, group_columns: list[str], write: WriteGroup[T]
) -> dict[GroupKey, T]:
    """Call `write(key, rows)` once per run of equal `group_columns` values (those columns
    are left out of `rows`), in writer threads; return what each call returned, by key.
    Rows of one group must be consecutive in `reader` (else GroupsNotConsecutive, after
    the groups handed over are written)."""
    results: dict[GroupKey, Future[T]] = {}
    pending: deque[Future[T]] = deque()
    with ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="parquet") as pool:
        for key, table in _groups(reader, group_columns):
            if key in results:
                raise GroupsNotConsecutive(f"rows of group {key} are not consecutive")
            results[key] = pool.submit(write, key, table.drop_columns(group_columns))
            pending.append(results[key])
            while len(pending) > _IN_FLIGHT:
                pending.popleft().result()
    return {key: future.result() for key, future in results.items()}


def _groups(
    reader: pa.RecordBatchReader, columns: list[str]
) -> Iterator[tuple[GroupKey, pa.Table]]:
    current: GroupKey | None = None
    parts: list[pa.RecordBatch] = []
    for batch in reader:
        for key, part in _runs(batch, columns):
            if key != current and parts:
                yield current, pa.Table.from_batches(parts)  # type: ignore[misc]
                parts = []
            current = key
            parts.append(part)
    if parts:
        yield current, pa.Table.from_batches(parts)  # type: ignore[misc]


def _changes(col: pa.Array) -> pa.Array:
    """True where a value differs from the one before it (from the second row on)."""
    n = len(col)
    return pc.fill_null(pc.not_equal(col.slice(1), col.slice(0, n - 1)), True)


def _runs(batch: pa.RecordBatch, columns: list[str]) -> Iterator[tuple[GroupKey, pa.RecordBatch]]:
    """Slices of the batch with equal group values, in order."""
    n = batch.num_rows
    if n == 0:
        return
    starts = [0]
    if n > 1:
        steps = [_changes(batch.column(name)) for name in columns]
        changed = functools.reduce(pc.or_, steps)
        starts += [i + 1 for i in pc.indices_nonzero(changed).to_pylist()]
    for start, end in zip(starts, [*starts[1:], n], strict=True):
        key = tuple(batch.column(name)[start].as_py() for name in columns)
        yield key, batch.slice(start, end - start)
