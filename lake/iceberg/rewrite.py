"""Committed data files rewritten to a replaced column's new type, within a transaction.

When lake.iceberg.evolve replaces a column (a widening Iceberg cannot promote), every data
file of the table's current snapshot holding the column in another type is read, cast with
cleaning's rules (lake.column_cast) and written next to it under a new unique name; in the
same transaction the old file is deleted from the table and the new one added. So every
file the table references matches its schema and a reader sees old and new rows in the new
type. The old files stay where they are for the snapshots before (expiry removes them).
"""

from __future__ import annotations

import contextlib
import re
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction

from lake.column_cast import cast_columns, duck_types
from lake.parquet_writing import parquet_bytes

NO_DICTIONARY = {"_position"}  # cleaning's row positions: all distinct
_RETYPED = re.compile(r"\.retyped-[0-9a-f]{12}$")  # an earlier rewrite's suffix: replaced


def rewrite_files(
    tx: Transaction, table: Table, replaced: pa.Schema, summary: dict[str, str] | None = None
) -> list[str]:
    """Within `tx` (whose schema already holds the replaced columns), swap every current
    data file holding a column of `replaced` in another type for a cast copy. Returns the
    URIs written (for the caller to discard when the commit fails)."""
    if not len(replaced) or table.current_snapshot() is None:
        return []
    target = duck_types(replaced)
    stale: list[DataFile] = []
    written: list[str] = []
    for task in table.scan().plan_files():
        rows = _read_if_holding(table.io, task.file.file_path, replaced)
        cast = cast_columns(rows, target) if rows is not None else None
        if cast is None:
            continue
        uri = _next_to(task.file.file_path)
        with table.io.new_output(uri).create(overwrite=False) as out:
            out.write(parquet_bytes(cast, no_dictionary=NO_DICTIONARY & set(cast.column_names)))
        stale.append(task.file)
        written.append(uri)
    if stale:
        with tx.update_snapshot(snapshot_properties=summary or {}).overwrite() as overwrite:
            for old in stale:
                overwrite.delete_data_file(old)
            for uri in written:
                overwrite.append_data_file(
                    parquet_file_to_data_file(table.io, tx.table_metadata, uri)
                )
    return written


def conform_files(io: FileIO, uris: list[str], narrower: pa.Schema) -> int:
    """Cast, in place, the run's own files (not committed yet, referenced by nothing) that
    hold a column of `narrower` in a narrower type to its type there (cleaning's widening
    rules); returns how many were rewritten."""
    if not len(narrower):
        return 0
    target = duck_types(narrower)
    conformed = 0
    for uri in uris:
        rows = _read_if_holding(io, uri, narrower)
        cast = cast_columns(rows, target) if rows is not None else None
        if cast is None:
            continue
        with io.new_output(uri).create(overwrite=True) as out:
            out.write(parquet_bytes(cast, no_dictionary=NO_DICTIONARY & set(cast.column_names)))
        conformed += 1
    return conformed


def discard(io: FileIO, uris: list[str]) -> None:
    """Remove files a failed commit wrote (no table references them)."""
    for uri in uris:
        with contextlib.suppress(OSError, FileNotFoundError):
            io.delete(uri)


def _read_if_holding(io: FileIO, uri: str, replaced: pa.Schema) -> pa.Table | None:
    """The file's rows when it holds a replaced column in another type, else None."""
    with io.new_input(uri).open() as stream:
        schema = pq.read_schema(stream)
    if not any(f.name in schema.names and schema.field(f.name).type != f.type for f in replaced):
        return None
    with io.new_input(uri).open() as stream:
        return pq.read_table(stream)


def _next_to(uri: str) -> str:
    """A new unique file name in the same folder (so the same dt= partition folder)."""
    stem = _RETYPED.sub("", uri.removesuffix(".parquet"))
    return f"{stem}.retyped-{uuid.uuid4().hex[:12]}.parquet"
