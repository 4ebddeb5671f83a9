"""Cleaning one arrival hour end to end: landed objects -> typed Parquet by event date.

DuckDB does the work (lake.record_staging gets the records in, lake.cleaning types them);
this module deduplicates, writes and keeps the ledger. Output names are deterministic
from (arrival hour, source object), so a re-run rewrites the same files; a per-object
manifest under _state/cleaned/ is the ledger of processed objects (a micro-batch run
skips them) and lets a re-run remove files it no longer produces.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.cleaning import (
    ROW_SPAN,
    Column,
    add_unknown_fields,
    leaf_columns_of,
    repeated_key,
    shape_keys_sql,
    sql_string,
    typing_sql,
    unknown_fields_sql,
)
from lake.crawler import sample_objects, stored_schema
from lake.dedup_state import SEEN_TABLE, load_seen, save_hour_keys, window_dates
from lake.grouped_parquet import GroupKey, GroupsNotConsecutive, write_groups
from lake.hive_types import Struct
from lake.record_staging import SOURCE_VIEW, Staged, stage_objects
from lake.storage import ObjectInfo, ObjectNotFound, Storage
from lake.streams import StreamSpec

MEMORY_LIMIT = os.environ.get("CLEAN_MEMORY_LIMIT", "1GB")  # DuckDB spills to disk past it
_BATCH_ROWS = 1 << 17  # rows a fetch from DuckDB to the Parquet writers
CHUNK_BYTES = int(os.environ.get("CLEAN_CHUNK_BYTES", str(32 << 20)))  # stored bytes a pass


@dataclass
class ObjectCounts:
    records_in: int = 0
    records_cleaned: int = 0
    records_quarantined: int = 0
    duplicates_dropped: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        accounted = self.records_cleaned + self.records_quarantined + self.duplicates_dropped
        return self.records_in == accounted


@dataclass
class HourReport:
    objects: int = 0
    objects_skipped: int = 0  # already in the ledger (processed by an earlier run)
    bytes_in: int = 0
    records_in: int = 0
    records_cleaned: int = 0
    records_quarantined: int = 0
    duplicates_dropped: int = 0
    late_beyond_allowed: int = 0  # cleaned, but older than the lateness the dedup covers
    objects_split_in_python: int = 0  # refused by DuckDB's reader (a bad record, a wrapper...)
    event_dates: set[str] = field(default_factory=set)
    files_written: list[str] = field(default_factory=list)
    unbalanced_objects: list[str] = field(default_factory=list)
    columns_not_in_catalog: dict[str, list[str]] = field(default_factory=dict)

    def add(self, info: ObjectInfo, counts: ObjectCounts) -> None:
        self.objects += 1
        self.bytes_in += info.size
        self.records_in += counts.records_in
        self.records_cleaned += counts.records_cleaned
        self.records_quarantined += counts.records_quarantined
        self.duplicates_dropped += counts.duplicates_dropped
        self.files_written += counts.files
        if not counts.balanced:
            self.unbalanced_objects.append(info.key)

    def absorb(self, other: HourReport) -> None:
        """Add another hour's counts to this one (a backfill run covers many hours)."""
        for name in ("objects", "objects_skipped", "bytes_in", "records_in", "records_cleaned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.records_quarantined += other.records_quarantined
        self.duplicates_dropped += other.duplicates_dropped
        self.late_beyond_allowed += other.late_beyond_allowed
        self.objects_split_in_python += other.objects_split_in_python
        self.event_dates |= other.event_dates
        self.files_written += other.files_written
        self.unbalanced_objects += other.unbalanced_objects
        for kind, names in other.columns_not_in_catalog.items():
            known = self.columns_not_in_catalog.setdefault(kind, [])
            known += [n for n in names if n not in known]

    @property
    def quarantine_ratio(self) -> float:
        return self.records_quarantined / self.records_in if self.records_in else 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "bytes_in": self.bytes_in,
            "records_in": self.records_in,
            "records_cleaned": self.records_cleaned,
            "records_quarantined": self.records_quarantined,
            "duplicates_dropped": self.duplicates_dropped,
            "objects_skipped": self.objects_skipped,
            "late_beyond_allowed": self.late_beyond_allowed,
            "objects_split_in_python": self.objects_split_in_python,
            "event_dates": sorted(self.event_dates),
        }


def clean_hour(
    spec: StreamSpec,
    table: dict[str, Any] | None,
    landing: Storage,
    lake: Storage,
    hour: datetime,
    objects: list[ObjectInfo],
    ingested_at: datetime | None = None,
    full_refresh: bool = False,
) -> HourReport:
    """Clean the hour's objects not processed yet (all of them with full_refresh).

    Duplicates are dropped within the run (first in key order and position wins) and
    against the keys already written for event dates inside the allowed lateness.
    """
    report = HourReport()
    done = set() if full_refresh else processed_outputs(lake, spec.name, hour)
    todo = sorted((o for o in objects if output_name(hour, o.key) not in done), key=lambda o: o.key)
    report.objects_skipped = len(objects) - len(todo)
    if not todo:
        return report
    schema = stored_schema(table)
    if not schema.fields:  # no crawl yet: type from a sample, as the crawler would
        schema = sample_objects(spec, landing, todo).schema
        report.columns_not_in_catalog = {"added": list(schema.fields)}
    all_names = [output_name(hour, o.key) for o in todo]
    window = window_dates(hour, spec.allowed_lateness_hours)
    with tempfile.TemporaryDirectory(prefix="clean-") as tmp:
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": tmp})
        try:
            con.execute("SET TimeZone = 'UTC'")
            run = _HourRun(con, spec, landing, lake, hour, Path(tmp), report, schema, ingested_at)
            load_seen(con, lake, spec.name, window, set(all_names), run.scratch)
            con.execute("CREATE TEMP TABLE new_keys (dt DATE, hi UBIGINT, lo UBIGINT, obj VARCHAR)")
            for n, chunk in enumerate(_chunks(todo, CHUNK_BYTES)):
                run.clean_pass(chunk, n)
            save_hour_keys(
                con, lake, spec.name, hour, "SELECT * FROM new_keys", set(all_names), run.scratch
            )
            report.late_beyond_allowed = con.execute(
                "SELECT count(*) FROM new_keys WHERE dt < ?", [window[0]]
            ).fetchall()[0][0]
        finally:
            con.close()
    for info, name in zip(todo, all_names, strict=True):
        report.add(info, run.per_object[name])
        _replace_manifest(lake, spec, hour, info.key, name, run.per_object[name])
    return report


def _chunks(objects: list[ObjectInfo], max_bytes: int) -> list[list[ObjectInfo]]:
    """Consecutive runs of objects of about max_bytes stored, so DuckDB never has to spill."""
    chunks: list[list[ObjectInfo]] = [[]]
    size = 0
    for info in objects:
        if chunks[-1] and size + info.size > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(info)
        size += info.size
    return chunks


class _HourRun:
    """What one clean_hour run shares across its DuckDB passes over the hour's objects."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        spec: StreamSpec,
        landing: Storage,
        lake: Storage,
        hour: datetime,
        scratch: Path,
        report: HourReport,
        schema: Struct,
        ingested_at: datetime | None,
    ) -> None:
        self.con, self.spec, self.landing, self.lake = con, spec, landing, lake
        self.hour, self.scratch, self.report, self.schema = hour, scratch, report, schema
        self.arrival = sql_string(hour.isoformat())
        self.ingested = sql_string((ingested_at or datetime.now(UTC)).isoformat())
        self.per_object: dict[str, ObjectCounts] = {}

    def clean_pass(self, chunk: list[ObjectInfo], n: int) -> None:
        """Stage, type, deduplicate and write some of the hour's objects."""
        work = self.scratch / f"pass-{n}"
        work.mkdir()
        names = [output_name(self.hour, o.key) for o in chunk]
        staged = stage_objects(self.con, self.spec, self.landing, chunk, work)
        self.report.objects_split_in_python += len(staged.python_split)
        columns = self._type_records()
        time_column = next(
            (c.name for c in columns if c.path == (self.spec.event_time_field,)), None
        )
        self.con.register("objects", _objects_table(chunk, names))
        dt = f'CAST("{time_column}" AS DATE)' if time_column else f"DATE '{self.hour:%Y-%m-%d}'"
        _drop_duplicates(self.con, dt)
        self.per_object.update({name: ObjectCounts() for name in names})
        self._write_cleaned(chunk, names, columns, dt)
        self._write_quarantine(staged, names)
        self._count(staged, names)
        self.con.execute(f"INSERT INTO new_keys {_NEW_KEYS_SQL}")
        self.con.execute(f"INSERT INTO {SEEN_TABLE} SELECT hi, lo FROM firsts")
        dates = self.con.execute("SELECT DISTINCT dt FROM firsts").fetchall()
        self.report.event_dates |= {f"{d:%Y-%m-%d}" for (d,) in dates}
        shutil.rmtree(work)  # fetched S3 objects and the files written for this pass

    def _type_records(self) -> list[Column]:
        """`typed`: every staged record with its typed columns or a reason. Top-level fields
        the catalog lacks are added, typed from the records (and reported), not dropped."""
        for _ in range(2):
            columns = leaf_columns_of(self.schema, self.spec)
            sql = typing_sql(SOURCE_VIEW, self.schema, columns, self.spec)
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE typed AS SELECT *, false AS _dropped FROM ({sql})"
            )
            shapes = self.con.execute(shape_keys_sql(SOURCE_VIEW, "typed")).fetchall()
            self._quarantine_repeated_keys(shapes)
            unknown: dict[str, None] = {}  # first-seen order
            novel = []
            for shape, keys in shapes:
                new = [k for k in keys if k not in self.schema.fields]
                unknown.update(dict.fromkeys(new))
                if new:
                    novel.append(shape)
            if not unknown:
                return columns
            added = self.report.columns_not_in_catalog.get("added", [])
            self.report.columns_not_in_catalog = {"added": added + list(unknown)}
            structure = self.con.execute(unknown_fields_sql(SOURCE_VIEW, novel)).fetchall()[0][0]
            self.schema = add_unknown_fields(self.schema, list(unknown), json.loads(structure))
        return columns

    def _quarantine_repeated_keys(self, shapes: list[tuple[int, list[str]]]) -> None:
        """A record with a key twice is ambiguous (which value counts?): it is quarantined,
        whatever else is wrong with it."""
        for shape, keys in shapes:
            key = repeated_key(keys)
            if key is not None:
                self.con.execute(
                    "UPDATE typed SET _reason = ? WHERE _shape = ?",
                    [f"duplicate key in record: {key}", shape],
                )

    def _write_cleaned(
        self, chunk: list[ObjectInfo], names: list[str], columns: list[Column], dt: str
    ) -> None:
        """One zstd file per object and event date, records in their order. The kept
        records are read in table order, which is object and position order (no sort);
        should DuckDB ever hand an object over in pieces, they are sorted and rewritten."""
        source_keys = "[" + ", ".join(sql_string(o.key) for o in chunk) + "]"
        query = f"""SELECT {", ".join(f'"{c.name}"' for c in columns)},
                           {source_keys}[_object + 1] AS _source_key, _position,
                           {self.arrival}::TIMESTAMPTZ AS _arrival_hour,
                           {self.ingested}::TIMESTAMPTZ AS _ingested_at, {dt} AS dt, _object
                    FROM typed WHERE _reason IS NULL AND NOT _dropped"""

        def write(group: GroupKey, table: pa.Table) -> list[str]:
            name = names[group[0]]  # type: ignore[index]
            days = pc.unique(table["dt"]).to_pylist()
            keys = []
            for day in days:
                rows = table if len(days) == 1 else table.filter(pc.equal(table["dt"], day))
                keys.append(f"cleaned/{self.spec.name}/dt={day:%Y-%m-%d}/{name}")
                self.lake.write(keys[-1], parquet_bytes(rows.drop_columns(["dt"])))
            return keys

        try:
            files = write_groups(
                self.con.sql(query).to_arrow_reader(_BATCH_ROWS), ["_object"], write
            )
        except GroupsNotConsecutive:
            ordered = self.con.sql(f"{query} ORDER BY _object, _position")
            files = write_groups(ordered.to_arrow_reader(_BATCH_ROWS), ["_object"], write)
        for (index,), keys in files.items():
            self.per_object[names[index]].files += keys

    def _write_quarantine(self, staged: Staged, names: list[str]) -> None:
        """Records with a reason, and what staging refused, one file per object."""
        self.con.register("rejected", _rejected_table(staged))
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE quarantined AS
                SELECT q._object, o._source_key AS source_key, q._position AS position, q.reason,
                       q.raw AS raw_text, {self.arrival}::TIMESTAMPTZ AS arrival_hour,
                       {self.ingested}::TIMESTAMPTZ AS quarantined_at
                FROM (SELECT t._object, t._position, t._reason AS reason, s.raw
                      FROM typed t JOIN {SOURCE_VIEW} s USING (_object, _position)
                      WHERE t._reason IS NOT NULL
                      UNION ALL SELECT _object, _position, reason, raw FROM rejected) q
                JOIN objects o USING (_object)"""
        )
        indexes = self.con.execute("SELECT DISTINCT _object FROM quarantined ORDER BY 1").fetchall()
        for (index,) in indexes:
            rows = self.con.sql(
                "SELECT source_key, position, reason, raw_text, arrival_hour, quarantined_at "
                "FROM quarantined WHERE _object = ? ORDER BY position",
                params=[index],
            ).to_arrow_table()
            key = f"quarantine/{self.spec.name}/dt={self.hour:%Y-%m-%d}/{names[index]}"
            self.lake.write(key, parquet_bytes(rows))
            self.per_object[names[index]].files.append(key)

    def _count(self, staged: Staged, names: list[str]) -> None:
        typed = self.con.execute(
            """SELECT _object, count(*) FILTER (WHERE _reason IS NULL),
                      count(*) FILTER (WHERE _reason IS NOT NULL)
               FROM typed GROUP BY _object"""
        ).fetchall()
        kept = dict(
            self.con.execute("SELECT _object, count(*) FROM firsts GROUP BY _object").fetchall()
        )
        for index, good, bad in typed:
            c = self.per_object[names[index]]
            c.records_in += good + bad
            c.records_quarantined += bad
            c.records_cleaned = kept.get(index, 0)
            c.duplicates_dropped = good - c.records_cleaned
        for r in staged.rejected:
            c = self.per_object[names[r.object_index]]
            c.records_in += 1
            c.records_quarantined += 1


_NEW_KEYS_SQL = "SELECT dt, hi, lo, o._name AS obj FROM firsts JOIN objects o USING (_object)"


def _rejected_table(staged: Staged) -> pa.Table:
    return pa.table(
        {
            "_object": pa.array([r.object_index for r in staged.rejected], pa.int64()),
            "_position": pa.array([r.position for r in staged.rejected], pa.int64()),
            "reason": pa.array([r.reason for r in staged.rejected], pa.string()),
            "raw": pa.array([r.raw_text for r in staged.rejected], pa.string()),
        }
    )


def _objects_table(todo: list[ObjectInfo], names: list[str]) -> pa.Table:
    return pa.table(
        {
            "_object": pa.array(range(len(todo)), pa.int64()),
            "_source_key": pa.array([o.key for o in todo], pa.string()),
            "_name": pa.array(names, pa.string()),
        }
    )


def _drop_duplicates(con: duckdb.DuckDBPyConnection, dt: str) -> None:
    """Mark typed records `_dropped` when their dedup key came earlier in (object, position)
    order in this run, or is among the keys already written. `firsts` (narrow: row id,
    object, event date `dt`, 128-bit key halves) lists the records kept."""
    rid = f"_object * {ROW_SPAN} + _position"
    keyed = f"SELECT {rid} AS rid, _key_hash AS h FROM typed WHERE _reason IS NULL"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE firsts AS
        SELECT h, arg_min(_object, rid) AS _object, min(rid) AS rid, arg_min(dt, rid) AS dt,
               count(*) AS copies,
               (h >> 64)::UBIGINT AS hi, (h & {(1 << 64) - 1})::UBIGINT AS lo
        FROM (SELECT _object, {rid} AS rid, {dt} AS dt, _key_hash AS h
              FROM typed WHERE _reason IS NULL)
        GROUP BY h
        """
    )
    seen = f"EXISTS (SELECT 1 FROM {SEEN_TABLE} s WHERE s.hi = firsts.hi AND s.lo = firsts.lo)"
    copies, seen_keys = con.execute(
        f"SELECT (SELECT max(copies) FROM firsts), (SELECT count(*) FROM {SEEN_TABLE})"
    ).fetchall()[0]
    if (copies or 0) <= 1 and not seen_keys:
        return  # nothing to drop (the usual first run of an hour)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dropped AS
        SELECT k.rid FROM ({keyed}) k JOIN (SELECT h, rid FROM firsts WHERE copies > 1) f
            ON f.h = k.h AND k.rid <> f.rid
        UNION ALL SELECT rid FROM firsts WHERE {seen}
        """
    )
    con.execute(f"DELETE FROM firsts WHERE {seen}")
    con.execute(f"UPDATE typed SET _dropped = true WHERE {rid} IN (SELECT rid FROM dropped)")


def output_name(hour: datetime, source_key: str) -> str:
    stem = source_key.rsplit("/", 1)[-1].removesuffix(".gz")
    return f"{hour:%Y%m%dT%H}-{stem}.parquet"


def manifest_prefix(stream: str, hour: datetime) -> str:
    return f"_state/cleaned/{stream}/{hour:%Y%m%dT%H}-"


def processed_outputs(lake: Storage, stream: str, hour: datetime) -> set[str]:
    """The ledger: output names (see output_name) of the hour's objects an earlier run
    processed. A listing, no reads: the manifest's key carries the name."""
    prefix = f"_state/cleaned/{stream}/"
    return {
        info.key.removeprefix(prefix).removesuffix(".json")
        for info in lake.list(manifest_prefix(stream, hour))
    }


def _replace_manifest(
    lake: Storage,
    spec: StreamSpec,
    hour: datetime,
    source_key: str,
    name: str,
    counts: ObjectCounts,
) -> None:
    manifest_key = f"_state/cleaned/{spec.name}/{name}.json"
    try:
        previous = json.loads(lake.read(manifest_key))["files"]
    except ObjectNotFound:
        previous = []
    for stale in set(previous) - set(counts.files):
        with contextlib.suppress(ObjectNotFound):
            lake.delete(stale)
    manifest = {
        "source_key": source_key,
        "files": counts.files,
        "records_in": counts.records_in,
        "records_cleaned": counts.records_cleaned,
        "records_quarantined": counts.records_quarantined,
        "duplicates_dropped": counts.duplicates_dropped,
    }
    lake.write(manifest_key, json.dumps(manifest, indent=1).encode())


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
