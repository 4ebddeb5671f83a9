"""Files a layer held before its Iceberg table existed: a lake written by a version of the
pipeline without tables. The commit that first finds a table not yet adopted registers
them (lake.iceberg.commit), so readers through the catalog and snapshot expiry never lose
them: the cleaning ledger's committed files for cleaned and quarantine (a file no manifest
names is a killed run's and stays out), every Parquet file of a mart's folder."""

from __future__ import annotations

import io

import pyarrow.parquet as pq

from lake import layout
from lake.committed import CommittedFiles
from lake.storage import Storage


def ledger_files(lake: Storage, layer: str, stream: str) -> list[str]:
    return CommittedFiles(lake, stream).of_days(layer, None)


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
