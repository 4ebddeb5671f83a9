"""One pass of a cleaning run: some of its objects staged, typed, deduplicated, written.

A run cleans the new objects of one arrival hour (a micro-batch) or of many (a range run);
its passes take the objects in (hour, key) order, about CLEAN_CHUNK_BYTES at a time
whatever hour they arrived in, so a backfill of many small hours pays the passes' fixed
costs (typing query, Arrow round trips, key probes) per pass, not per hour. Each object
carries its arrival hour (event time bounds, lineage, quarantine files) and its counts go
to its hour's report.

Each step returns what it made, naming the DuckDB relation it left on the hour's one
connection (lake.cleaning.tables) for the steps after it:

    staging.stage_objects -> Staged (STAGED: raw records; rejected ones)
    typed.type_records    -> Typed (TYPED: typed records or reasons, as one Arrow table)
    dedup.drop_duplicates -> Deduped (FIRSTS: records kept; row ids dropped)
    writing.write_cleaned, writing.write_quarantine -> files (QUARANTINED: by reason code)
    dedup.keep_keys       -> NEW_KEYS grows for the next pass and the hour (by the run's
                             object index: CleaningRun.names holds the output names)

The typed records come back once, as an Arrow table in (object, position) order: DuckDB
queries it for dedup and counts, and each object's rows are a slice of it, so they are
materialized once. The run's passes share the keys seen so far and the keys written.

A pass's cleaned files are written on a thread of their own (pyarrow and DuckDB release
the GIL) while the next pass is fetched, staged, typed and deduplicated: the writing needs
only the pass's Arrow tables, not the connection. The next pass waits for them before it
writes anything itself, so the lake sees the passes' files in the same order as before,
and a failed write raises before any later pass has written (CleaningRun.close raises it
if the run stops first).
"""

from __future__ import annotations

import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from lake import layout
from lake.cleaning.dedup import Deduped, create_new_keys, drop_duplicates, keep_keys
from lake.cleaning.key_files import KeyWindow
from lake.cleaning.report import HourReport, ObjectCounts
from lake.cleaning.staging import Staged, stage_objects
from lake.cleaning.tables import OBJECTS
from lake.cleaning.typed import Typed, type_records
from lake.cleaning.writing import Cleaned, Destination, Sharing, write_cleaned, write_quarantine
from lake.hive_types import Struct
from lake.storage import ObjectInfo, Storage
from lake.streams import StreamSpec


class CleaningRun:
    """What one cleaning run shares across its passes over its hours' objects."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        spec: StreamSpec,
        landing: Storage,
        lake: Storage,
        reports: dict[datetime, HourReport],
        scratch: Path,
        schema: Struct,
        ingested_at: datetime | None,
        assigned: dict[tuple[str, ...], str] | None = None,
        json_paths: frozenset[tuple[str, ...]] | None = None,
    ) -> None:
        self.con, self.spec, self.landing, self.lake = con, spec, landing, lake
        self.reports, self.scratch, self.schema = reports, scratch, schema  # reports by hour
        self.assigned = assigned or {}  # the catalog's column names (lake.column_names)
        self.json_paths = spec.json.paths if json_paths is None else json_paths
        self.ingested_at = ingested_at or datetime.now(UTC)
        self.per_object: dict[str, ObjectCounts] = {}
        self.new_keys = create_new_keys(con)
        # the output name and arrival hour of each of the run's objects, in pass order: a
        # key in NEW_KEYS names its object by its index here
        self.names: list[str] = []
        self.name_hours: list[datetime] = []
        self.window = KeyWindow(lake, spec.name, [])  # no earlier keys unless clean_hours sets one
        self.share_token: str | None = None  # set: small objects share files (writing.Sharing)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="clean-write")
        self._writing: _Writing | None = None  # the last pass's cleaned files, being written

    def clean_pass(
        self,
        chunk: list[ObjectInfo],
        names: list[str],
        hours: list[datetime],
        n: int,
        file_names: list[str] | None = None,
    ) -> None:
        """Stage, type, deduplicate and write some of the run's objects (`names` are their
        output names, `hours` their arrival hours; `file_names` their files' names, the
        output names by default)."""
        work = self.scratch / f"pass-{n}"
        work.mkdir()
        staged = stage_objects(self.con, self.spec, self.landing, chunk, work)
        split = set(staged.python_split)
        for o, hour in zip(chunk, hours, strict=True):
            self.reports[hour].objects_split_in_python += o.key in split
        typed = type_records(
            self.con, staged, self.spec, hours, self.schema, self.assigned, self.json_paths
        )
        self._note_new_fields(typed)
        self.con.register(OBJECTS, _objects_table(chunk, names, hours))
        deduped = drop_duplicates(self.con, typed, self.window)
        self.per_object.update({name: ObjectCounts() for name in names})
        self.finish_writing()  # the last pass's files are written before this pass writes
        to = Destination(
            self.lake, self.spec, hours, self.ingested_at, chunk, file_names or names,
            None if self.share_token is None else Sharing(self.share_token, n),
        )  # fmt: skip
        cleaned = self._writer.submit(write_cleaned, to, typed, deduped)
        quarantined = write_quarantine(self.con, to, staged, typed, OBJECTS)
        for index, by_code in quarantined.by_code.items():
            self.reports[hours[index]].quarantined_by_reason.update(by_code)
        self._writing = _Writing(cleaned, names, hours, quarantined.files)
        self._count(staged, typed, deduped, names)
        keep_keys(self.con, deduped, len(self.names))
        self.names += names
        self.name_hours += hours
        self.con.unregister(typed.relation)
        shutil.rmtree(work)  # fetched S3 objects and links made for this pass

    def finish_writing(self) -> None:
        """Wait for the last pass's cleaned files (raising its failure) and note each
        object's files, its cleaned files before its quarantine file, and its parts of
        shared files."""
        writing, self._writing = self._writing, None
        if writing is None:
            return
        cleaned = writing.cleaned.result()
        for index, files in cleaned.files.items():
            self.per_object[writing.names[index]].files += files
            self._note_days(writing.hours[index], files)
        for index, parts in cleaned.shared.items():
            self.per_object[writing.names[index]].shared += parts
            self._note_days(writing.hours[index], [p.file for p in parts])
        for index, file in writing.quarantine_files.items():
            self.per_object[writing.names[index]].files.append(file)

    def _note_days(self, hour: datetime, files: list[str]) -> None:
        days = {f"{d:%Y-%m-%d}" for f in files if (d := layout.cleaned_file_day(f))}
        self.reports[hour].event_dates |= days

    def close(self) -> None:
        """Let the last pass's writing end (a run that stops early still leaves the files
        of the passes before; a failed write raises, as it did before the next pass)."""
        try:
            if self._writing is not None:
                self._writing.cleaned.result()
        finally:
            self._writer.shutdown()

    def _note_new_fields(self, typed: Typed) -> None:
        """Keep the fields added for the run (later passes type with them) and report them
        in every hour's report: the run types all its hours' records with them."""
        self.schema = typed.schema
        if typed.added is None:
            return
        for hour_report in self.reports.values():
            report = hour_report.columns_not_in_catalog
            report["added"] = report.get("added", []) + typed.added
            if typed.refused:
                report["over_limits"] = list(typed.refused)

    def _count(self, staged: Staged, typed: Typed, deduped: Deduped, names: list[str]) -> None:
        counts = self.con.execute(
            f"""SELECT _object, count(*) FILTER (WHERE _reason IS NULL),
                       count(*) FILTER (WHERE _reason IS NOT NULL)
                FROM {typed.relation} GROUP BY _object"""
        ).fetchall()
        kept = dict(
            self.con.execute(
                f"SELECT _object, count(*) FROM {deduped.relation} GROUP BY _object"
            ).fetchall()
        )
        for index, good, bad in counts:
            c = self.per_object[names[index]]
            c.records_in += good + bad
            c.records_quarantined += bad
            c.records_cleaned = kept.get(index, 0)
            c.duplicates_dropped = good - c.records_cleaned
        for r in staged.rejected:
            c = self.per_object[names[r.object_index]]
            c.records_in += 1
            c.records_quarantined += 1


@dataclass(frozen=True)
class _Writing:
    """A pass whose cleaned files are being written, and what to note when they are."""

    cleaned: Future[Cleaned]  # write_cleaned's own files and shared parts by object index
    names: list[str]
    hours: list[datetime]
    quarantine_files: dict[int, str]


def _objects_table(chunk: list[ObjectInfo], names: list[str], hours: list[datetime]) -> pa.Table:
    return pa.table(
        {
            "_object": pa.array(range(len(chunk)), pa.int64()),
            "_source_key": pa.array([o.key for o in chunk], pa.string()),
            "_name": pa.array(names, pa.string()),
            "_arrival_hour": pa.array(hours, pa.timestamp("us", tz="UTC")),
        }
    )
