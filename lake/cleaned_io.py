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
import pyarrow.parquet as pq

from lake.cleaning import (
    Column,
    add_unknown_fields,
    leaf_columns_of,
    sql_string,
    typing_sql,
    unknown_fields_sql,
)
from lake.crawler import sample_objects, stored_schema
from lake.dedup_state import SEEN_TABLE, load_seen, save_hour_keys, window_dates
from lake.hive_types import Struct
from lake.record_staging import SOURCE_VIEW, Staged, stage_objects
from lake.storage import ObjectInfo, ObjectNotFound, Storage
from lake.streams import StreamSpec

MEMORY_LIMIT = os.environ.get("CLEAN_MEMORY_LIMIT", "1GB")  # DuckDB spills to disk past it
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
    per_object: dict[str, ObjectCounts] = {}
    with tempfile.TemporaryDirectory(prefix="clean-") as tmp:
        scratch = Path(tmp)
        con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": tmp})
        try:
            con.execute("SET TimeZone = 'UTC'")
            load_seen(con, lake, spec.name, window, set(all_names), scratch)
            con.execute("CREATE TEMP TABLE new_keys (dt DATE, hi UBIGINT, lo UBIGINT, obj VARCHAR)")
            for n, chunk in enumerate(_chunks(todo, CHUNK_BYTES)):
                work = scratch / f"chunk-{n}"
                work.mkdir()
                schema = _clean_chunk(
                    con,
                    spec,
                    landing,
                    lake,
                    hour,
                    chunk,
                    schema,
                    ingested_at,
                    work,
                    report,
                    per_object,
                )
                shutil.rmtree(work)  # fetched S3 objects and written files of the chunk
            save_hour_keys(
                con, lake, spec.name, hour, "SELECT * FROM new_keys", set(all_names), scratch
            )
            report.late_beyond_allowed = con.execute(
                "SELECT count(*) FROM new_keys WHERE dt < ?", [window[0]]
            ).fetchall()[0][0]
        finally:
            con.close()
    for info, name in zip(todo, all_names, strict=True):
        report.add(info, per_object[name])
        _replace_manifest(lake, spec, hour, info.key, name, per_object[name])
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


def _clean_chunk(
    con: duckdb.DuckDBPyConnection,
    spec: StreamSpec,
    landing: Storage,
    lake: Storage,
    hour: datetime,
    chunk: list[ObjectInfo],
    schema: Struct,
    ingested_at: datetime | None,
    work: Path,
    report: HourReport,
    per_object: dict[str, ObjectCounts],
) -> Struct:
    """One DuckDB pass over some of the hour's objects; returns the (maybe widened) schema."""
    names = [output_name(hour, o.key) for o in chunk]
    staged = stage_objects(con, spec, landing, chunk, work)
    schema, columns = _type_records(con, spec, schema, report)
    time_column = next((c.name for c in columns if c.path == (spec.event_time_field,)), None)
    con.register("objects", _objects_table(chunk, names))
    _keep_first_unseen(con, hour, time_column)
    per_object.update(
        _write_outputs(con, spec, lake, hour, staged, names, columns, ingested_at, work)
    )
    con.execute(f"INSERT INTO new_keys {_NEW_KEYS_SQL}")
    con.execute(f"INSERT INTO {SEEN_TABLE} SELECT hi, lo FROM firsts")
    report.event_dates |= {
        f"{r[0]:%Y-%m-%d}" for r in con.execute("SELECT DISTINCT dt FROM firsts").fetchall()
    }
    return schema


_NEW_KEYS_SQL = "SELECT dt, hi, lo, o._name AS obj FROM firsts JOIN objects o USING (_object)"


def _type_records(
    con: duckdb.DuckDBPyConnection, spec: StreamSpec, schema: Struct, report: HourReport
) -> tuple[Struct, list[Column]]:
    """`typed`: every staged record with its typed columns or a reason. Top-level fields the
    catalog lacks are added as JSON text (and reported) rather than dropped."""
    for _ in range(2):
        columns = leaf_columns_of(schema, spec)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE typed AS {typing_sql(SOURCE_VIEW, schema, columns, spec)}"
        )
        first_seen = con.execute(
            "SELECT k FROM (SELECT unnest(_keys) AS k, _object, _position FROM typed) "
            "GROUP BY k ORDER BY min(_object), min(_position)"
        ).fetchall()
        unknown = [k for (k,) in first_seen if k not in schema.fields]
        if not unknown:
            return schema, columns
        added = report.columns_not_in_catalog.get("added", [])
        report.columns_not_in_catalog = {"added": added + unknown}
        structure = json.loads(con.execute(unknown_fields_sql(unknown)).fetchall()[0][0])
        schema = add_unknown_fields(schema, unknown, structure)
    return schema, columns


def _objects_table(todo: list[ObjectInfo], names: list[str]) -> pa.Table:
    return pa.table(
        {
            "_object": pa.array(range(len(todo)), pa.int64()),
            "_source_key": pa.array([o.key for o in todo], pa.string()),
            "_name": pa.array(names, pa.string()),
        }
    )


def _keep_first_unseen(
    con: duckdb.DuckDBPyConnection, hour: datetime, time_column: str | None
) -> None:
    """`firsts` (narrow: row id, object, event date, 128-bit key hash) names the typed
    records to keep: no reason, first occurrence of their key in (object, position) order,
    and not among the keys already written. The view `clean` joins them to their columns."""
    dt = f'CAST("{time_column}" AS DATE)' if time_column else f"DATE '{hour:%Y-%m-%d}'"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE firsts AS
        SELECT arg_min(_object, rid) AS _object, min(rid) AS rid, arg_min(dt, rid) AS dt,
               (h >> 64)::UBIGINT AS hi, (h & {(1 << 64) - 1})::UBIGINT AS lo
        FROM (SELECT _object, _object * {_ROW_SPAN} + _position AS rid, {dt} AS dt,
                     md5_number(_dedup) AS h
              FROM typed WHERE _reason IS NULL)
        GROUP BY h
        """
    )
    con.execute(
        f"DELETE FROM firsts WHERE EXISTS "
        f"(SELECT 1 FROM {SEEN_TABLE} s WHERE s.hi = firsts.hi AND s.lo = firsts.lo)"
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW clean AS
        SELECT t.* EXCLUDE (raw, _keys), o._source_key, f.dt
        FROM typed t
        JOIN objects o USING (_object)
        JOIN firsts f ON f.rid = t._object * {_ROW_SPAN} + t._position
        """
    )


_ROW_SPAN = 1 << 32  # row id = object index * span + position (positions stay below 2**32)


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


def _write_outputs(
    con: duckdb.DuckDBPyConnection,
    spec: StreamSpec,
    lake: Storage,
    hour: datetime,
    staged: Staged,
    names: list[str],
    columns: list[Column],
    ingested_at: datetime | None,
    scratch: Path,
) -> dict[str, ObjectCounts]:
    """Write cleaned rows (by event date) and quarantined records; count per object."""
    ingested = sql_string((ingested_at or datetime.now(UTC)).isoformat())
    arrival = sql_string(hour.isoformat())
    column_list = ", ".join(f'"{c.name}"' for c in columns)
    out = scratch / "cleaned"
    con.execute(
        f"""COPY (SELECT {column_list}, _source_key, _position,
                         {arrival}::TIMESTAMPTZ AS _arrival_hour, {ingested}::TIMESTAMPTZ AS _ingested_at,
                         dt, _object
                  FROM clean ORDER BY _object, _position)
            TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt, _object))"""
    )
    counts = {name: ObjectCounts() for name in names}
    for path in sorted(out.glob("dt=*/_object=*/*.parquet")):
        dt = path.parent.parent.name.removeprefix("dt=")
        name = names[int(path.parent.name.removeprefix("_object="))]
        key = f"cleaned/{spec.name}/dt={dt}/{name}"
        lake.write(key, path.read_bytes())
        counts[name].files.append(key)
    _write_quarantine(con, spec, lake, hour, staged, names, counts, arrival, ingested)
    _count(con, staged, names, counts)
    return counts


def _write_quarantine(
    con: duckdb.DuckDBPyConnection,
    spec: StreamSpec,
    lake: Storage,
    hour: datetime,
    staged: Staged,
    names: list[str],
    counts: dict[str, ObjectCounts],
    arrival: str,
    ingested: str,
) -> None:
    rejected = pa.table(
        {
            "_object": pa.array([r.object_index for r in staged.rejected], pa.int64()),
            "_position": pa.array([r.position for r in staged.rejected], pa.int64()),
            "reason": pa.array([r.reason for r in staged.rejected], pa.string()),
            "raw": pa.array([r.raw_text for r in staged.rejected], pa.string()),
        }
    )
    con.register("rejected", rejected)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE quarantined AS
            SELECT q._object, o._source_key AS source_key, q._position AS position, q.reason,
                   q.raw AS raw_text, {arrival}::TIMESTAMPTZ AS arrival_hour,
                   {ingested}::TIMESTAMPTZ AS quarantined_at
            FROM (SELECT _object, _position, _reason AS reason, raw FROM typed WHERE _reason IS NOT NULL
                  UNION ALL SELECT _object, _position, reason, raw FROM rejected) q
            JOIN objects o USING (_object)"""
    )
    for (index,) in con.execute("SELECT DISTINCT _object FROM quarantined ORDER BY 1").fetchall():
        rows = con.sql(
            "SELECT source_key, position, reason, raw_text, arrival_hour, quarantined_at "
            "FROM quarantined WHERE _object = ? ORDER BY position",
            params=[index],
        ).to_arrow_table()
        key = f"quarantine/{spec.name}/dt={hour:%Y-%m-%d}/{names[index]}"
        lake.write(key, parquet_bytes(rows))
        counts[names[index]].files.append(key)


def _count(
    con: duckdb.DuckDBPyConnection,
    staged: Staged,
    names: list[str],
    counts: dict[str, ObjectCounts],
) -> None:
    rows = con.execute(
        """SELECT _object,
                  count(*) FILTER (WHERE _reason IS NULL) AS good,
                  count(*) FILTER (WHERE _reason IS NOT NULL) AS bad
           FROM typed GROUP BY _object"""
    ).fetchall()
    cleaned = dict(con.execute("SELECT _object, count(*) FROM firsts GROUP BY _object").fetchall())
    for index, good, bad in rows:
        c = counts[names[index]]
        c.records_in += good + bad
        c.records_quarantined += bad
        c.records_cleaned = cleaned.get(index, 0)
        c.duplicates_dropped = good - c.records_cleaned
    for r in staged.rejected:
        c = counts[names[r.object_index]]
        c.records_in += 1
        c.records_quarantined += 1


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
