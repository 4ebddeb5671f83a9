"""Files a layer held before its Iceberg table existed: a lake written by a version of the
pipeline without tables. The commit that first finds a table not yet adopted registers
them (lake.iceberg.commit), so readers through the catalog and snapshot expiry never lose
them: the cleaning ledger's committed files for cleaned and quarantine (a file no manifest
names is a killed run's and stays out), every Parquet file of a mart's folder.

A cleaned file shared by several objects is registered whole only when every row of it
is committed (lake.committed). When a sharer was cleaned again since (its earlier rows in
the file stale), the committed rows are copied, in file order, into a new file beside it
(`compacted-<token>.parquet`, a file of the table alone, as compaction writes) and that
file is registered instead: no stale row twice, no current sharer's row lost. The
sharers' manifests keep naming their ranges of the shared file (still right, as after a
copy-on-write of it)."""

from __future__ import annotations

import io
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

from lake import layout
from lake.committed import CommittedFiles, SharedRows
from lake.parquet_writing import parquet_bytes
from lake.storage import Storage


def ledger_files(lake: Storage, layer: str, stream: str) -> list[str]:
    """The layer's committed files, and for each partly committed shared file a new file
    of its committed rows (written here)."""
    committed = CommittedFiles(lake, stream)
    whole = committed.of_days(layer, None)
    return whole + [_committed_copy(lake, stream, s) for s in committed.partly_of_days(layer, None)]


def _committed_copy(lake: Storage, stream: str, shared: SharedRows) -> str:
    """A new file beside the shared file holding its committed rows alone."""
    rows = pq.read_table(io.BytesIO(lake.read(shared.file)))
    kept = pa.concat_tables([rows.slice(first, count) for first, count in shared.ranges])
    day = layout.file_day(shared.file)
    if day is None:
        raise ValueError(f"not in a dt= folder: {shared.file!r}")
    key = layout.compacted_file(layout.CLEANED, stream, day, uuid.uuid4().hex)
    lake.write(key, parquet_bytes(kept, no_dictionary={"_position"}))
    return key


def mart_files(lake: Storage, mart: str) -> list[str]:
    """Every mart file holding rows (an empty day's file is no data file of the table:
    Iceberg could not place it in a partition)."""
    folder = layout.mart_folder(mart)
    return [
        info.key
        for info in lake.list(folder)
        if info.key.endswith(".parquet")
        and not info.key[len(folder) :].startswith("metadata/")
        and pq.read_metadata(io.BytesIO(lake.read(info.key))).num_rows > 0
    ]
