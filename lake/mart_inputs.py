"""Which files a mart reads of each input table: committed ones only.

With the lake's tables (lake.iceberg.catalog.LakeTables) an input is its Iceberg table's
current snapshot, planned for the days the mart reads (lake.iceberg.scan): a run's files
are read once its commit is in, and an input table with no file for those days still
gives its columns (an empty, typed input). Without them (core tests of the files alone),
or for an input whose table does not exist yet (a lake written before its tables, until
the table's first commit adopts its files), cleaned files are those a committed ledger
manifest lists (lake.committed) and a mart's files those in its partition folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa

from lake import layout
from lake.committed import CommittedFiles
from lake.iceberg.catalog import LakeTables
from lake.iceberg.scan import files_of
from lake.storage import Storage


@dataclass
class InputFiles:
    """What one input table of a mart holds for some days."""

    keys: list[str]  # lake keys, in key order
    schema: pa.Schema | None = None  # the table's columns (None: no table, or not asked)


@dataclass
class MartInputs:
    """The committed files of a mart's inputs, read once per instance (ledger listings,
    catalog connection) across the days of a backfill."""

    lake: Storage
    tables: LakeTables | None = None
    _ledgers: dict[str, CommittedFiles] = field(default_factory=dict)

    def files(self, layer: str, table: str, days: list[date] | None) -> InputFiles:
        """`<layer>.<table>`'s committed files of `days` (every day when None)."""
        found = None if self.tables is None else self.tables.load(layer, table)
        if found is not None and self.tables is not None:
            return InputFiles(files_of(found, self.tables, days), found.schema().as_arrow())
        # no table (yet): the files of a lake written before its tables, as its ledger
        # and folders tell (lake.iceberg.adopt registers them with the table's first commit)
        if layer in layout.LEDGER_LAYERS:
            ledger = self._ledgers.setdefault(table, CommittedFiles(self.lake, table))
            return InputFiles(ledger.of_days(layer, days))
        return InputFiles(_mart_files(self.lake, table, days))


def _mart_files(lake: Storage, mart: str, days: list[date] | None) -> list[str]:
    """Files in a mart's folders (written by its sink: one file a partition)."""
    if days is None:
        prefixes = [layout.mart_folder(mart)]
    else:
        prefixes = [layout.mart_day_folder(mart, d) for d in days]
    return [o.key for p in prefixes for o in lake.list(p) if o.key.endswith(".parquet")]
