"""The end of a cleaning run: its files registered in the Iceberg tables, then the ledger.

Hours of a run (one for a micro-batch, many for a backfill) write their files and keep
their ledger manifests back; `RunCommit.commit` then registers every cleaned file in
`cleaned.<stream>` and every quarantine file in `quarantine.<stream>`, each in one Iceberg
transaction that also removes the earlier files of the objects the run re-cleaned (a
full refresh, an object overwritten under its key), and only then writes the manifests.
With tables, a run names its files `<output name stem>-<run token>.parquet` (never a
file a snapshot references). Killed before the commit, a run leaves the tables as they
were and the ledger without its objects: the next run cleans them again, and the files it
left are orphans for snapshot expiry. The replace by source key covers the objects the
ledger shows an earlier run for, and those of a run killed between its commit and its
ledger writes: a marker `_state/commits/<stream>/<token>.json` names a run's objects from
just before its commit until its manifests are written. Objects neither names are new, so
a micro-batch's commit is an append that reads no earlier metadata.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial

from pyiceberg.expressions import In

from lake import layout
from lake.cleaning.columns import leaf_columns_of
from lake.cleaning.key_files import compact_due
from lake.hour_totals import DeltaMemo, record_manifests
from lake.iceberg.adopt import ledger_files
from lake.iceberg.catalog import CLEANED, QUARANTINE, LakeTables
from lake.iceberg.commit import Committed, TableShape, commit_files
from lake.ledger import run_file_name
from lake.storage import ObjectNotFound, Storage
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
    replaced_keys: set[str] = field(default_factory=set)  # with earlier manifests
    # each writes an object's manifest and returns (its key, what it holds)
    ledger_writes: list[Callable[[], tuple[str, dict]]] = field(default_factory=list)
    commits: dict[str, Committed] = field(default_factory=dict)
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    deltas: DeltaMemo = field(default_factory=DeltaMemo)  # the run's reads of hour totals

    def file_name(self, name: str) -> str:
        """The name of a file of output `name` this run writes."""
        return name if self.tables is None else run_file_name(name, self.token)

    def add_hour(
        self,
        hour: datetime,
        source_keys: list[str],
        files: list[str],
        earlier_files: list[str],
        replaced_keys: list[str],
        ledger_writes: list[Callable[[], tuple[str, dict]]],
    ) -> None:
        """An hour's output: its objects' keys, the files it wrote and those of earlier
        runs for the same keys (whose days the replace must cover), the keys the ledger
        shows an earlier run for, its manifest writes."""
        self.arrival_hours.append(hour)
        self.source_keys += source_keys
        self.replaced_keys |= set(replaced_keys)
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
        """Register the run's files (cleaned, then quarantine), write the ledger, then
        compact the dedup keys of the run's event dates that are due."""
        if self.tables is None or self.lake is None or not self.source_keys:
            self._write_ledger()
        else:
            self._commit_tables(self.tables, self.lake)
        if self.lake is not None:
            # once per date per run (not per hour): the dates the run wrote keys for are
            # among its cleaned files' days
            compact_due(self.lake, self.spec.name, self.days[CLEANED])
        return self.commits

    def _commit_tables(self, tables: LakeTables, lake: Storage) -> None:
        marker = layout.pending_commit(self.spec.name, self.token)
        leftover = _pending_markers(lake, self.spec.name)
        keys = set(self.source_keys)
        replaced = sorted(self.replaced_keys | (keys & set().union(*leftover.values())))
        lake.write(marker, json.dumps({"source_keys": sorted(keys)}).encode())
        summary = {
            "lake.stream": self.spec.name,
            "lake.arrival-hours": ",".join(f"{h:%Y-%m-%dT%H}" for h in self.arrival_hours[:24]),
            "lake.objects": str(len(keys)),
            "lake.run-token": self.token,
        }
        shapes = {
            CLEANED: TableShape(self.event_column, whole_stats=(SOURCE_KEY[CLEANED],)),
            QUARANTINE: TableShape(QUARANTINE_DAY, whole_stats=(SOURCE_KEY[QUARANTINE],)),
        }
        for layer in (CLEANED, QUARANTINE):
            self.commits[layer] = commit_files(
                tables,
                layer,
                self.spec.name,
                sorted(self.files[layer]),
                shapes[layer],
                replace=In(SOURCE_KEY[layer], replaced) if replaced else None,
                replace_days=sorted(self.days[layer]),
                summary=summary,
                adopt=partial(ledger_files, lake, layer, self.spec.name),
            )
        self._write_ledger()
        for done in [marker, *(m for m, k in leftover.items() if k <= keys)]:
            lake.discard(done)

    def _write_ledger(self) -> None:
        """The manifests, then the hours' running totals (lake.hour_totals) from them."""
        writes, self.ledger_writes = self.ledger_writes, []
        written = _run_all(writes, self.lake.writes_at_once if self.lake is not None else 1)
        if self.lake is not None and written:
            record_manifests(self.lake, self.spec.name, written, self.deltas)


def _run_all(writes: list[Callable[[], tuple[str, dict]]], at_once: int) -> list[tuple[str, dict]]:
    """Every write's result, in order, `at_once` at a time: each manifest is its own object
    (a PUT and a DELETE or two on S3), so a run of many small objects is bound by round
    trips; each write keeps its own order (stale files, manifest, earlier manifests), so a
    crash still leaves each object unprocessed or processed with nothing stale."""
    if len(writes) < 2 or at_once < 2:
        return [write() for write in writes]
    with ThreadPoolExecutor(at_once, thread_name_prefix="ledger") as pool:
        return list(pool.map(lambda write: write(), writes))


def _pending_markers(lake: Storage, stream: str) -> dict[str, set[str]]:
    """The markers runs left between their commit and their ledger writes: their keys."""
    markers: dict[str, set[str]] = {}
    for info in lake.list(layout.pending_commits_folder(stream)):
        try:
            keys = json.loads(lake.read(info.key))["source_keys"]
        except (ObjectNotFound, ValueError, KeyError, TypeError):
            continue  # gone meanwhile, or not a marker
        markers[info.key] = {k for k in keys if isinstance(k, str)}
    return markers


def _layer_of(key: str) -> str:
    return CLEANED if layout.is_cleaned_file(key) else QUARANTINE
