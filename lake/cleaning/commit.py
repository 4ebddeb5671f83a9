"""The end of a cleaning run: its files registered in the Iceberg tables, then the ledger.

Hours of a run (one for a micro-batch, many for a backfill) write their files and keep
their ledger manifests back; `RunCommit.commit` then registers every cleaned file in
`cleaned.<stream>` and every quarantine file in `quarantine.<stream>`, each in one Iceberg
transaction that also removes the earlier files of the objects the run re-cleaned (a
full refresh, an object overwritten under its key), and only then writes the manifests.
Killed before the commit, a run leaves the tables as they were and the ledger without its
objects, so the next run cleans them again (its deterministic file names are rewritten,
never added twice). Killed between commit and manifests, the next run re-cleans them and
its commit replaces what this one added (the replace is by source key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial

from pyiceberg.expressions import In

from lake import layout
from lake.cleaning.columns import leaf_columns_of
from lake.iceberg.adopt import ledger_files
from lake.iceberg.catalog import CLEANED, QUARANTINE, LakeTables
from lake.iceberg.commit import Committed, TableShape, commit_files
from lake.storage import Storage
from lake.streams import StreamSpec

SOURCE_KEY = {CLEANED: "_source_key", QUARANTINE: "source_key"}  # the replace key
QUARANTINE_DAY = "arrival_hour"  # quarantine files are in the dt= of their arrival day


@dataclass
class RunCommit:
    """What a cleaning run registers at its end (tables None: the ledger alone)."""

    tables: LakeTables | None
    spec: StreamSpec
    lake: Storage | None = None  # with it, files from before the tables are adopted
    event_column: str | None = None  # the event time's column name, once typed
    files: dict[str, list[str]] = field(default_factory=lambda: {CLEANED: [], QUARANTINE: []})
    source_keys: list[str] = field(default_factory=list)
    days: dict[str, set[date]] = field(default_factory=lambda: {CLEANED: set(), QUARANTINE: set()})
    arrival_hours: list[datetime] = field(default_factory=list)
    ledger_writes: list[Callable[[], object]] = field(default_factory=list)
    commits: dict[str, Committed] = field(default_factory=dict)

    def add_hour(
        self,
        hour: datetime,
        source_keys: list[str],
        files: list[str],
        earlier_files: list[str],
        ledger_writes: list[Callable[[], object]],
    ) -> None:
        """An hour's output: its objects' keys, the files it wrote and those of earlier
        runs for the same keys (whose days the replace must cover), its manifest writes."""
        self.arrival_hours.append(hour)
        self.source_keys += source_keys
        for key in files:
            self.files[_layer_of(key)].append(key)
        for key in files + earlier_files:
            if (day := layout.file_day(key)) is not None:
                self.days[_layer_of(key)].add(day)
        self.days[QUARANTINE].add(hour.date())
        self.ledger_writes += ledger_writes

    def note_columns(self, schema, assigned, json_paths) -> None:  # type: ignore[no-untyped-def]
        """Remember the event time's column (how the cleaned table is partitioned)."""
        for column in leaf_columns_of(schema, self.spec, assigned, json_paths):
            if column.path == (self.spec.event_time_field,):
                self.event_column = column.name

    def commit(self) -> dict[str, Committed]:
        """Register the run's files (cleaned, then quarantine), then write the ledger."""
        if self.tables is not None and self.source_keys:
            summary = {
                "lake.stream": self.spec.name,
                "lake.arrival-hours": ",".join(f"{h:%Y-%m-%dT%H}" for h in self.arrival_hours[:24]),
                "lake.objects": str(len(self.source_keys)),
            }
            shapes = {
                CLEANED: TableShape(self.event_column, whole_stats=(SOURCE_KEY[CLEANED],)),
                QUARANTINE: TableShape(QUARANTINE_DAY, whole_stats=(SOURCE_KEY[QUARANTINE],)),
            }
            for layer in (CLEANED, QUARANTINE):
                self.commits[layer] = commit_files(
                    self.tables,
                    layer,
                    self.spec.name,
                    sorted(self.files[layer]),
                    shapes[layer],
                    replace=In(SOURCE_KEY[layer], sorted(set(self.source_keys))),
                    replace_days=sorted(self.days[layer]),
                    summary=summary,
                    adopt=None
                    if self.lake is None
                    else partial(ledger_files, self.lake, layer, self.spec.name),
                )
        for write in self.ledger_writes:
            write()
        self.ledger_writes = []
        return self.commits


def _layer_of(key: str) -> str:
    return CLEANED if layout.is_cleaned_file(key) else QUARANTINE
