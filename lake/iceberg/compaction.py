"""Compaction of a day's small files: a table's day rewritten into files of a target size.

Cleaning writes one file per landed object and event date, so a minute-buffered stream
makes 1,440 files a day. For one table and one day, the committed data files smaller than
the target are bin-packed (in key order, so a file keeps its objects' records together and
in arrival order) into groups of about COMPACTION_TARGET_BYTES; each group with more than
one file is streamed, record batch by record batch, into one new file in the same `dt=`
folder, cast to the table's current schema (a column older files lack reads as NULL) so
that the table accepts it as it is. The new files replace the old ones in ONE snapshot
(an Iceberg overwrite that deletes exactly the planned files and adds the new ones).

The old files stay on disk, referenced by earlier snapshots, until snapshot expiry drops
those and deletes them (lake.iceberg.expiry). A commit since the plan that added or
removed one of the planned files (a re-clean of one of their objects, which may re-add a
file under the same name with other rows) stops the overwrite: the day is left as that
commit made it and the new files are deleted; the next run compacts it again. Statistics of the new files follow the table's metric properties, so
`_source_key` keeps whole bounds and a later re-clean of one object (delete by key)
rewrites only the compacted files that hold it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.exceptions import ValidationException
from pyiceberg.io.pyarrow import parquet_file_to_data_file, schema_to_pyarrow
from pyiceberg.manifest import DataFile, ManifestEntryStatus
from pyiceberg.table import Table, Transaction

from lake import layout
from lake.iceberg.catalog import LakeTables
from lake.iceberg.commit import with_retries
from lake.iceberg.scan import day_filter

BATCH_ROWS = 64_000  # rows read from an input file at a time
ROW_GROUP_BYTES = 64 << 20  # Arrow bytes buffered before a row group is written


class RowsChanged(RuntimeError):
    """The new files do not hold as many rows as the files they were to replace."""


class DayChanged(RuntimeError):
    """A commit since the plan added or removed one of the files to replace."""


@dataclass
class DayCompaction:
    """What compaction did to one day of one table (files and bytes of the whole day)."""

    table: str
    day: date
    files_before: int = 0
    bytes_before: int = 0
    files_after: int = 0
    bytes_after: int = 0
    files_rewritten: int = 0
    files_written: list[str] = field(default_factory=list)
    rows_rewritten: int = 0
    rows_written: int = 0
    snapshot_id: int | None = None
    skipped: str = ""  # why nothing was committed ("" when the day was compacted)

    def as_metadata(self) -> dict[str, object]:
        return {
            "table": self.table,
            "files_before": self.files_before,
            "bytes_before": self.bytes_before,
            "files_after": self.files_after,
            "bytes_after": self.bytes_after,
            "files_rewritten": self.files_rewritten,
            "files_written": len(self.files_written),
            "rows_rewritten": self.rows_rewritten,
            "rows_written": self.rows_written,
            "rows_checked_equal": self.rows_rewritten == self.rows_written,
            "snapshot_id": str(self.snapshot_id or ""),
            "skipped": self.skipped,
        }


def compact_day(
    tables: LakeTables,
    layer: str,
    name: str,
    day: date,
    target_bytes: int,
    min_files: int,
) -> DayCompaction:
    """Rewrite the day's committed files smaller than `target_bytes` into files of about
    that size, in one snapshot; nothing when fewer than `min_files` are that small."""
    table_id = tables.table_id(layer, name)
    result = DayCompaction(table_id, day)
    table = tables.load(layer, name)
    if table is None:
        result.skipped = "no table"
        return result
    planned = table.current_snapshot()
    files = day_files(table, tables, day)
    result.files_before = result.files_after = len(files)
    result.bytes_before = result.bytes_after = sum(f.file_size_in_bytes for f in files)
    small = [f for f in files if f.file_size_in_bytes < target_bytes]
    groups = [g for g in bin_pack(small, target_bytes) if len(g) > 1]
    if len(small) < min_files or not groups:
        result.skipped = f"{len(small)} small files (compacting from {min_files})"
        return result
    replaced = [f for g in groups for f in g]
    written = [_write_group(table, tables, layer, name, day, g) for g in groups]
    result.files_written = written
    new_files = [
        parquet_file_to_data_file(table.io, table.metadata, tables.uri_of(k)) for k in written
    ]
    result.rows_rewritten = sum(f.record_count for f in replaced)
    result.rows_written = sum(f.record_count for f in new_files)
    if result.rows_rewritten != result.rows_written:
        _delete(table, tables, written)
        raise RowsChanged(
            f"{table_id} {day}: {result.rows_written} rows written for {result.rows_rewritten}"
        )
    since = planned.snapshot_id if planned else None
    try:
        table = with_retries(
            tables, table_id, lambda t: _replace(t, since, replaced, new_files, day)
        )
    except (DayChanged, ValidationException) as exc:
        _delete(table, tables, written)
        result.files_written, result.rows_written = [], 0
        result.skipped = f"the day changed meanwhile: {exc}"
        return result
    snapshot = table.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id if snapshot else None
    result.files_rewritten = len(replaced)
    result.files_after = result.files_before - len(replaced) + len(new_files)
    result.bytes_after = (
        result.bytes_before
        - sum(f.file_size_in_bytes for f in replaced)
        + sum(f.file_size_in_bytes for f in new_files)
    )
    return result


def day_files(table: Table, tables: LakeTables, day: date) -> list[DataFile]:
    """The day's committed data files (those in its `dt=` folder), in key order."""
    if table.current_snapshot() is None:
        return []
    files = []
    for task in table.scan(row_filter=day_filter(table, [day])).plan_files():
        key = tables.key_of(task.file.file_path)
        if key is not None and layout.file_day(key) == day and not task.delete_files:
            files.append(task.file)
    return sorted(files, key=lambda f: f.file_path)


def bin_pack(files: list[DataFile], target_bytes: int) -> list[list[DataFile]]:
    """Consecutive files in groups of at most `target_bytes` (a group holds one file
    at least)."""
    groups: list[list[DataFile]] = []
    size = 0
    for f in files:
        if not groups or size + f.file_size_in_bytes > target_bytes:
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += f.file_size_in_bytes
    return groups


def _write_group(
    table: Table, tables: LakeTables, layer: str, name: str, day: date, group: list[DataFile]
) -> str:
    """One file of the group's rows in the table's schema; its lake key."""
    schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
    key = layout.compacted_file(layer, name, day, uuid.uuid4().hex)
    codec = table.properties.get("write.parquet.compression-codec", "zstd")
    with (
        table.io.new_output(tables.uri_of(key)).create() as out,
        pq.ParquetWriter(out, schema, compression=codec) as writer,
    ):
        buffered: list[pa.RecordBatch] = []
        for batch in _batches(table, group, schema):
            buffered.append(batch)
            if sum(b.nbytes for b in buffered) >= ROW_GROUP_BYTES:
                writer.write_table(pa.Table.from_batches(buffered, schema))
                buffered = []
        if buffered:
            writer.write_table(pa.Table.from_batches(buffered, schema))
    return key


def _batches(table: Table, group: list[DataFile], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for data_file in group:
        with table.io.new_input(data_file.file_path).open() as stream:
            for batch in pq.ParquetFile(stream).iter_batches(batch_size=BATCH_ROWS):
                yield _conform(batch, schema)


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch in `schema`: columns by name, cast; a column it lacks as NULLs."""
    names = set(batch.schema.names)
    columns = [
        batch.column(f.name).cast(f.type) if f.name in names else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _replace(
    table: Table, since: int | None, old: list[DataFile], new: list[DataFile], day: date
) -> Transaction:
    """The overwrite of `old` by `new`, unless a commit after snapshot `since` touched one
    of the old files: a re-clean re-adds a file under its same name with other rows, which
    pyiceberg's check (by path) would not see."""
    if _touched(table, since, {f.file_path for f in old}):
        raise DayChanged(f"a commit since snapshot {since} replaced files of the day")
    tx = table.transaction()
    summary = {"lake.maintenance": "compaction", "lake.day": day.isoformat()}
    with tx.update_snapshot(snapshot_properties=summary).overwrite() as overwrite:
        for data_file in old:
            overwrite.delete_data_file(data_file)
        for data_file in new:
            overwrite.append_data_file(data_file)
    return tx


def _touched(table: Table, since: int | None, paths: set[str]) -> bool:
    """Whether a snapshot after `since` added or deleted one of `paths` (True when
    `since` is no longer in the table's history)."""
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != since:
        for manifest in snapshot.manifests(table.io):
            if manifest.added_snapshot_id != snapshot.snapshot_id:
                continue  # carried over from an earlier snapshot
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                if (
                    entry.snapshot_id == snapshot.snapshot_id
                    and entry.status != ManifestEntryStatus.EXISTING
                    and entry.data_file.file_path in paths
                ):
                    return True
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return snapshot is None


def _delete(table: Table, tables: LakeTables, keys: list[str]) -> None:
    for key in keys:
        table.io.delete(tables.uri_of(key))
