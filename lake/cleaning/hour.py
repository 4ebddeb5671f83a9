"""Cleaning a run's arrival hours end to end: landed objects -> typed Parquet by event date.

The entry point of lake.cleaning (clean_hours; clean_hour for one hour). The hours' new
objects are cleaned together, in (hour, key) order, in passes of about
CLEAN_CHUNK_BYTES decompressed (settings.clean_chunk_bytes; see lake.cleaning.passes;
lake.object_fetch gunzips each object within its stream's cap first), so memory stays
flat however big the hour is or how far its objects expand; this module
picks the objects, runs the passes, saves the dedup keys and keeps the ledger
(lake.ledger). Output names are deterministic from (arrival hour, full source key), so a
re-run rewrites the same files; a per-object manifest under _state/cleaned/, named by the
object's version (ETag and size), is the ledger of processed objects (a micro-batch run
skips them; an object overwritten under its key is cleaned again) and lets a re-run remove
files it no longer produces.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from lake import layout
from lake.catalog_store import column_assignment, stored_schema
from lake.cleaning.columns import json_paths_of, leaf_columns_of
from lake.cleaning.commit import RunCommit
from lake.cleaning.dedup import save_hour_keys, save_hours_keys, window_dates
from lake.cleaning.key_files import KeyWindow
from lake.cleaning.passes import CleaningRun
from lake.cleaning.peers import Peers, kept_keys
from lake.cleaning.report import HourReport
from lake.cleaning.tables import RUN_KEYS, RUN_OBJECTS
from lake.crawl_sample import sample_objects
from lake.firehose import is_folder_marker
from lake.iceberg.catalog import LakeTables
from lake.ledger import (
    Ledger,
    TypedAs,
    output_name,
    read_ledger,
    replace_manifest,
    rows_files_of,
)
from lake.object_fetch import LandedObject, fetch_objects
from lake.pii import PIIKey, install_key, key_from_env
from lake.settings import DEFAULTS, Settings
from lake.sql_text import quote_identifier
from lake.storage import ObjectInfo, Storage
from lake.streams import StreamSpec


def clean_hour(
    spec: StreamSpec,
    table: dict[str, Any] | None,
    landing: Storage,
    lake: Storage,
    hour: datetime,
    objects: list[ObjectInfo],
    **options: Any,
) -> HourReport:
    """Clean one arrival hour's objects: clean_hours with that hour alone (`options`: its
    keyword arguments)."""
    return clean_hours(spec, table, landing, lake, {hour: objects}, **options)[hour]


def clean_hours(
    spec: StreamSpec,
    table: dict[str, Any] | None,
    landing: Storage,
    lake: Storage,
    batches: dict[datetime, list[ObjectInfo]],
    ingested_at: datetime | None = None,
    full_refresh: bool = False,
    pii_key: PIIKey | None = None,
    settings: Settings = DEFAULTS,
    tables: LakeTables | None = None,
    run_commit: RunCommit | None = None,
    session: CleaningSession | None = None,
    peers: Peers | None = None,
) -> dict[datetime, HourReport]:
    """Clean the objects of each arrival hour of `batches` not processed yet (all of them
    with full_refresh); return each hour's report.

    The hours' objects go through the same passes (lake.cleaning.passes), in (hour, key)
    order, so a range run of many small hours costs about what one hour of the same
    records does. Duplicates are dropped within the run (first in hour, key and position
    order wins) and against the keys already written for the event dates inside the
    allowed lateness of any of its hours. PII fields are hashed with `pii_key` (default:
    lake.pii.key_from_env, which refuses the development key for S3 locations).

    The files are registered in the Iceberg tables of `tables` (None: none) and the ledger
    written by a RunCommit (lake.cleaning.commit): the run's own, committed before
    returning, or the caller's `run_commit`, which the caller commits once for its run.
    Likewise the DuckDB connection: the run's own, or the caller's `session`. `peers`:
    when these hours are a chunk of a parallel run (lake.cleaning.parallel), what they see
    of the rest of it (and where their kept keys go).
    """
    reports = {hour: HourReport() for hour in batches}
    todo: dict[datetime, list[ObjectInfo]] = {}
    ledgers = {}
    for hour, objects in sorted(batches.items()):
        report = reports[hour]
        report.folder_markers = [o.key for o in objects if is_folder_marker(o.key, o.size)]
        objects = [o for o in objects if not is_folder_marker(o.key, o.size)]
        ledgers[hour] = ledger = read_ledger(lake, spec.name, hour)
        new = sorted(
            (o for o in objects if full_refresh or not ledger.is_done(o)), key=lambda o: o.key
        )
        report.objects_skipped = len(objects) - len(new)
        if new:
            todo[hour] = new
    if not todo:
        return reports
    committing = RunCommit(tables, spec, lake) if run_commit is None else run_commit
    with contextlib.ExitStack() as stack:
        if session is None:
            session = stack.enter_context(CleaningSession(settings))
        session.use_key(pii_key if pii_key is not None else key_from_env(landing.uri, lake.uri))
        for group in _hour_groups(todo, settings.clean_chunk_bytes):
            _clean_group(
                spec, table, landing, lake, group, ledgers, reports,
                ingested_at, settings, tables, committing, session, peers,
            )  # fmt: skip
    if run_commit is None:
        commits = committing.commit()
        for hour in todo:
            reports[hour].commits = commits
    return reports


def _hour_groups(
    todo: dict[datetime, list[ObjectInfo]], max_bytes: int
) -> Iterator[dict[datetime, list[ObjectInfo]]]:
    """Consecutive hours whose objects hold about max_bytes stored (one hour at least):
    a group's hours share passes, and the keys it keeps stay in DuckDB until its end, so
    a long backfill's memory is bounded by a group, not by the run."""
    group: dict[datetime, list[ObjectInfo]] = {}
    size = 0
    for hour, objects in todo.items():
        hour_bytes = sum(o.size for o in objects)
        if group and size + hour_bytes > max_bytes:
            yield group
            group, size = {}, 0
        group[hour] = objects
        size += hour_bytes
    if group:
        yield group


def _clean_group(
    spec: StreamSpec,
    table: dict[str, Any] | None,
    landing: Storage,
    lake: Storage,
    todo: dict[datetime, list[ObjectInfo]],
    ledgers: dict[datetime, Ledger],
    reports: dict[datetime, HourReport],
    ingested_at: datetime | None,
    settings: Settings,
    tables: LakeTables | None,
    committing: RunCommit,
    session: CleaningSession,
    peers: Peers | None = None,
) -> None:
    """Clean a group of hours' new objects (`todo`) in shared passes on `session`; their
    keys, reports and ledger writes go to `reports` and `committing`."""
    # what earlier runs wrote for these keys (a full refresh, an object overwritten since),
    # shared files included: the replace and the dedup keys' dates cover their days
    earlier = {o.key: ledgers[h].earlier_manifests(o) for h, objs in todo.items() for o in objs}
    earlier_files = {key: rows_files_of(lake, manifests) for key, manifests in earlier.items()}
    reprocessed = {
        h: set().union(*(ledgers[h].earlier_names(o) for o in objs)) for h, objs in todo.items()
    }
    everything = [o for objs in todo.values() for o in objs]
    schema = stored_schema(table)
    json_paths = json_paths_of(table, spec)
    if not schema.fields:  # no crawl yet: type from a sample, as the crawler would
        sampled = sample_objects(spec, landing, everything)
        schema, json_paths = sampled.schema, json_paths | frozenset(sampled.json_fields)
        for hour in todo:
            reports[hour].columns_not_in_catalog = {"added": list(schema.fields)}
    hour_of = {o.key: hour for hour, objs in todo.items() for o in objs}
    windows = {hour: window_dates(hour, spec.allowed_lateness_hours) for hour in todo}
    with contextlib.ExitStack() as stack:
        con, tmp = session.con, session.hour_scratch()
        stack.callback(session.end_hour, tmp)
        run = CleaningRun(
            con,
            spec,
            landing,
            lake,
            reports,
            tmp,
            schema,
            ingested_at,
            column_assignment(table),
            json_paths,
        )
        stack.callback(run.close)
        if committing.tables is not None:  # the replace by key rewrites a shared file
            run.share_token = committing.token
        days = set().union(*windows.values())
        hidden = frozenset(set().union(*reprocessed.values()))
        if peers is not None:
            days, hidden = days | peers.days, hidden | peers.hidden
        run.window = KeyWindow(lake, spec.name, sorted(days), hidden)
        cap = spec.limits.max_object_expanded_bytes
        # an object larger than a pass's bytes is a pass of its own
        for n, chunk in enumerate(
            _chunks(fetch_objects(landing, everything, cap), settings.clean_chunk_bytes)
        ):
            hours = [hour_of[o.key] for o in chunk]
            names = [output_name(h, o.key) for h, o in zip(hours, chunk, strict=True)]
            run.clean_pass(chunk, names, hours, n, [committing.file_name(name) for name in names])
            for o in chunk:
                o.discard()
            pa.default_memory_pool().release_unused()  # the pass's Arrow buffers
        run.finish_writing()
        if peers is not None:
            peers.kept.append(kept_keys(con, run.new_keys, run.names))
        keys_sql = _run_keys(con, run, todo)
        for hour, days in _key_days(con, run.new_keys, todo).items():
            reports[hour].late_beyond_allowed = sum(
                n for day, n in days.items() if day < windows[hour][0]
            )
        run_names = pa.array(run.names, pa.string())
        stale = {
            h: _days_of([f for o in objs for f in earlier_files[o.key]]) for h, objs in todo.items()
        }
        if len(todo) == 1:
            (hour,) = todo
            save_hour_keys(
                con, lake, spec.name, hour, keys_sql, run_names, reprocessed[hour], stale[hour]
            )
        else:
            save_hours_keys(
                con, lake, spec.name, list(todo), keys_sql, run_names, reprocessed, stale
            )
    typed_as = TypedAs(
        int(table.get("VersionId", 0)) if table else 0,
        {
            c.name: c.duck_type
            for c in leaf_columns_of(run.schema, spec, run.assigned, run.json_paths)
        },
    )
    committing.note_columns(run.schema, run.assigned, run.json_paths)
    for hour, objs in todo.items():
        names = [output_name(hour, o.key) for o in objs]
        writes = []
        for info, name in zip(objs, names, strict=True):
            reports[hour].add(info, run.per_object[name])
            writes.append(
                partial(
                    replace_manifest,
                    lake,
                    spec.name,
                    info,
                    name,
                    run.per_object[name],
                    earlier[info.key],
                    earlier_files[info.key],
                    typed_as,
                    delete_stale=tables is None,
                )
            )
        shared = sorted({p.file for name in names for p in run.per_object[name].shared})
        committing.add_hour(
            hour,
            [o.key for o in objs],
            [f for name in names for f in run.per_object[name].files] + shared,
            [f for o in objs for f in earlier_files[o.key]],
            [o.key for o in objs if earlier[o.key]],
            writes,
        )


def _run_keys(
    con: duckdb.DuckDBPyConnection, run: CleaningRun, todo: dict[datetime, list[ObjectInfo]]
) -> str:
    """SQL giving the run's kept keys: for one hour, NEW_KEYS itself (dt, hi, lo, o: an
    index in run.names); for several, (h, dt, hi, lo, o) in that order from RUN_KEYS, each
    key with its hour's index (the run's keys are not held twice), read in one scan
    (dedup.save_hours_keys; each date's keys come sorted, so its file is not sorted again)."""
    hours = list(todo)
    if len(hours) == 1:
        return f"SELECT dt, hi, lo, o FROM {run.new_keys}"
    index = {h: n for n, h in enumerate(hours)}
    objects = {"o": range(len(run.names)), "h": [index[h] for h in run.name_hours]}
    con.register("run_object_hours", pa.table(objects))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {RUN_OBJECTS} AS FROM run_object_hours")
    con.unregister("run_object_hours")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {RUN_KEYS} AS SELECT r.h, k.o, k.dt, k.hi, k.lo "
        f"FROM {run.new_keys} k JOIN {RUN_OBJECTS} r USING (o)"
    )
    return f"SELECT h, dt, hi, lo, o FROM {RUN_KEYS} ORDER BY h, dt, hi, lo"


def _key_days(
    con: duckdb.DuckDBPyConnection, new_keys: str, todo: dict[datetime, list[ObjectInfo]]
) -> dict[datetime, dict[date, int]]:
    """Each hour's kept keys counted by event date, in one query for the run's hours
    (RUN_KEYS, made by _run_keys, when there are several)."""
    hours = list(todo)
    source = f"SELECT 0 AS h, dt FROM {new_keys}" if len(hours) == 1 else f"FROM {RUN_KEYS}"
    days: dict[datetime, dict[date, int]] = {hour: {} for hour in hours}
    for h, day, n in con.execute(
        f"SELECT h, dt, count(*) FROM ({source}) GROUP BY h, dt"
    ).fetchall():
        days[hours[h]][day] = n
    return days


class CleaningSession:
    """One DuckDB connection and scratch folder for every hour a run cleans: the
    connection's set-up and the PII key are paid once per run, not once per hour.

    Each hour works in its own scratch subfolder; `end_hour` drops the relations the hour
    left on the connection (lake.cleaning.tables) and its subfolder.
    """

    def __init__(self, settings: Settings = DEFAULTS, key: PIIKey | None = None) -> None:
        self._settings, self._key = settings, key
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._installed: PIIKey | None = None
        self._hours = itertools.count()

    @property
    def scratch(self) -> Path:
        if self._tmp is None:  # made on first use: a run with nothing new opens nothing
            self._tmp = tempfile.TemporaryDirectory(prefix="clean-")
        return Path(self._tmp.name)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            memory = self._settings.clean_memory_limit  # DuckDB spills to disk past it
            config = {"memory_limit": memory, "temp_directory": str(self.scratch)}
            self._con = duckdb.connect(config=config)
            self._con.execute("SET TimeZone = 'UTC'")
        if self._key is not None and self._key != self._installed:
            install_key(self._con, self._key)
            self._installed = self._key
        return self._con

    def use_key(self, key: PIIKey) -> None:
        self._key = key

    def hour_scratch(self) -> Path:
        folder = self.scratch / f"hour-{next(self._hours)}"
        folder.mkdir()
        return folder

    def end_hour(self, folder: Path) -> None:
        for kind, column in (("TABLE", "table_name"), ("VIEW", "view_name")):
            catalog = "duckdb_tables()" if kind == "TABLE" else "duckdb_views()"
            names = self.con.execute(
                f"SELECT {column} FROM {catalog} WHERE temporary AND NOT internal"
            ).fetchall()
            for (name,) in names:
                self.con.execute(f"DROP {kind} IF EXISTS {quote_identifier(name)}")
        shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> CleaningSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(objects: Iterable[LandedObject], max_bytes: int) -> Iterator[list[LandedObject]]:
    """Consecutive runs of objects of about max_bytes decompressed, each handed over as
    soon as it is full (the objects after it are fetched meanwhile)."""
    chunk: list[LandedObject] = []
    size = 0
    for landed in objects:
        if chunk and size + landed.expanded_bytes > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(landed)
        size += landed.expanded_bytes
    if chunk:
        yield chunk


def _days_of(files: list[str]) -> set[date]:
    """Event dates of cleaned files (their dedup keys are in that date's state)."""
    return {day for f in files if (day := layout.cleaned_file_day(f)) is not None}
