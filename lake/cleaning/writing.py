"""Writing a pass's output: one zstd cleaned file per object and event date, one
quarantine file per object with its refused records (raw text, reason, reason code)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lake import layout
from lake.cleaning.dedup import Deduped
from lake.cleaning.reasons import reason_code_sql, reason_detail_sql
from lake.cleaning.staging import Staged
from lake.cleaning.tables import QUARANTINED, REJECTED, ROW_SPAN
from lake.cleaning.typed import Typed
from lake.json_fields import as_json_columns
from lake.parquet_writing import GroupKey, GroupsNotConsecutive, parquet_bytes, write_groups
from lake.sql_text import sql_string
from lake.storage import ObjectInfo, Storage
from lake.streams import StreamSpec

_BATCH_ROWS = 1 << 17  # rows handed to the Parquet writers at a time
# Below this many rows a file gets no dictionaries: too few repeats to pay for them, and
# each costs time per column (a small object's file wrote ~25% faster without them).
_DICTIONARY_ROWS = 1024
# encoded files (their bytes in memory) waiting at most to be stored on the lake's
# `writes_at_once` threads while the Parquet writers encode the next ones
_UPLOADS_HELD = 32
_UTC = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Destination:
    """Where and as what a pass's files are written."""

    lake: Storage
    spec: StreamSpec
    hours: list[datetime]  # each object's arrival hour
    ingested_at: datetime
    objects: list[ObjectInfo]  # index in this list = `_object`
    names: list[str]  # their output names, in the same order


@dataclass(frozen=True)
class Quarantined:
    """What write_quarantine made: QUARANTINED (every record set aside, with its reason
    code), each object's records by code, and each object's quarantine file."""

    by_code: dict[int, dict[str, int]]
    files: dict[int, str]
    relation: str = QUARANTINED


def write_cleaned(to: Destination, typed: Typed, deduped: Deduped) -> dict[int, list[str]]:
    """One zstd file per object and event date, records in their order; returns the files
    by object index. `typed` is in object and position order, so each object is a run of
    rows (no sort); should an object ever come in pieces, the rows are sorted and all
    files rewritten."""
    table, columns, spec = typed.table, typed.columns, to.spec
    keep = pc.is_null(table["_reason"])
    if deduped.dropped is not None:
        rid = pc.add(pc.multiply(table["_object"], ROW_SPAN), table["_position"])
        keep = pc.and_(keep, pc.invert(pc.is_in(rid, value_set=deduped.dropped)))
    record_columns = [c.name for c in columns]
    rows = table.select(record_columns + ["_position", "_dt", "_object"])
    if pc.sum(pc.invert(keep)).as_py():
        rows = rows.filter(keep)
    json_names = [c.name for c in columns if c.json]
    unique = {"_position"} | {
        c.name for c in columns if c.path in ((spec.dedup_key,), (spec.event_time_field,))
    }

    def write(group: GroupKey, part_rows: pa.Table) -> list[str]:
        index = group[0]
        assert isinstance(index, int)
        days = pc.unique(part_rows["_dt"]).to_pylist()
        keys = []
        for day in days:
            part = (
                part_rows if len(days) == 1 else part_rows.filter(pc.equal(part_rows["_dt"], day))
            )
            keys.append(layout.cleaned_file(spec.name, day, to.names[index]))
            part = as_json_columns(part.drop_columns(["_dt"]), json_names)
            plain = unique if part.num_rows >= _DICTIONARY_ROWS else set(part.column_names)
            store(keys[-1], parquet_bytes(part, no_dictionary=plain))
        return keys

    lineage = _Lineage(to, record_columns)
    with _Uploads(to.lake) as store:
        try:
            files = write_groups(lineage.of(rows.to_reader(_BATCH_ROWS)), ["_object"], write)
        except GroupsNotConsecutive:
            store.wait()  # the files stored so far, before they are written again
            rows = rows.sort_by([("_object", "ascending"), ("_position", "ascending")])
            files = write_groups(lineage.of(rows.to_reader(_BATCH_ROWS)), ["_object"], write)
    return {index: keys for (index,), keys in files.items()}  # type: ignore[misc]


class _Uploads:
    """Stores files on the lake's `writes_at_once` threads (in line when that is 1), at
    most _UPLOADS_HELD waiting; leaving the `with` waits for every one and raises the
    first failure."""

    def __init__(self, lake: Storage) -> None:
        self._lake, self._held = lake, threading.BoundedSemaphore(_UPLOADS_HELD)
        at_once = lake.writes_at_once
        self._pool = ThreadPoolExecutor(at_once, "upload") if at_once > 1 else None
        self._futures: list[Future[None]] = []

    def __call__(self, key: str, data: bytes) -> None:
        if self._pool is None:
            self._lake.write(key, data)
            return
        self._held.acquire()
        future = self._pool.submit(self._lake.write, key, data)
        future.add_done_callback(lambda _: self._held.release())
        self._futures.append(future)

    def wait(self) -> None:
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def __enter__(self) -> _Uploads:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()


class _Lineage:
    """Adds the lineage columns to batches of rows (record columns, _position, _dt,
    _object): the record columns, then _source_key, _position, _arrival_hour,
    _ingested_at (as each file has them), then _dt and _object. Made a batch at a time
    before the rows are split into objects: a small object's file costs no Arrow calls
    of its own for them."""

    def __init__(self, to: Destination, record_columns: list[str]) -> None:
        self._keys = pa.array([o.key for o in to.objects], pa.string())
        self._hours = pa.array(to.hours, _UTC)
        self._ingested_at = pa.scalar(to.ingested_at, _UTC)
        self._record_columns = record_columns

    def of(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        given = reader.schema
        fields = [given.field(name) for name in self._record_columns]
        fields += [pa.field("_source_key", pa.string()), given.field("_position")]
        fields += [pa.field("_arrival_hour", _UTC), pa.field("_ingested_at", _UTC)]
        schema = pa.schema([*fields, given.field("_dt"), given.field("_object")])
        batches = (self._with_lineage(batch, schema) for batch in reader)
        return pa.RecordBatchReader.from_batches(schema, batches)

    def _with_lineage(self, batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        index = batch.column("_object")
        arrays = [batch.column(name) for name in self._record_columns]
        arrays += [self._keys.take(index), batch.column("_position"), self._hours.take(index)]
        arrays += [pa.repeat(self._ingested_at, batch.num_rows), batch.column("_dt"), index]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_quarantine(
    con: duckdb.DuckDBPyConnection, to: Destination, staged: Staged, typed: Typed, objects: str
) -> Quarantined:
    """Typed records with a reason, and what staging refused, one file per object
    (`objects` is the relation of the pass's objects: _object, _source_key, _arrival_hour)."""
    if typed.quarantined == 0 and not staged.rejected:
        return Quarantined({}, {})
    con.register(REJECTED, _rejected_table(staged))
    ingested = sql_string(to.ingested_at.isoformat())
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {QUARANTINED} AS
            SELECT q._object, o._source_key AS source_key, q._position AS position, q.reason,
                   {reason_code_sql("q.reason")} AS reason_code,
                   {reason_detail_sql("q.reason")} AS reason_detail, q.raw AS raw_text,
                   o._arrival_hour AS arrival_hour,
                   {ingested}::TIMESTAMPTZ AS quarantined_at
            FROM (SELECT t._object, t._position, t._reason AS reason, s.raw
                  FROM {typed.relation} t JOIN {staged.relation} s USING (_object, _position)
                  WHERE t._reason IS NOT NULL
                  UNION ALL SELECT _object, _position, reason, raw FROM {REJECTED}) q
            JOIN {objects} o USING (_object)"""
    )
    by_code: dict[int, dict[str, int]] = {}
    counts = f"SELECT _object, reason_code, count(*) FROM {QUARANTINED} GROUP BY 1, 2"
    for index, code, count in con.execute(counts).fetchall():
        by_code.setdefault(index, {})[code] = count
    files = {}
    indexes = con.execute(f"SELECT DISTINCT _object FROM {QUARANTINED} ORDER BY 1").fetchall()
    for (index,) in indexes:
        rows = con.sql(
            "SELECT source_key, position, reason, reason_code, reason_detail, raw_text, "
            f"arrival_hour, quarantined_at FROM {QUARANTINED} WHERE _object = ? ORDER BY position",
            params=[index],
        ).to_arrow_table()
        files[index] = layout.quarantine_file(to.spec.name, to.hours[index], to.names[index])
        to.lake.write(files[index], parquet_bytes(rows))
    return Quarantined(by_code, files)


def _rejected_table(staged: Staged) -> pa.Table:
    return pa.table(
        {
            "_object": pa.array([r.object_index for r in staged.rejected], pa.int64()),
            "_position": pa.array([r.position for r in staged.rejected], pa.int64()),
            "reason": pa.array([r.reason for r in staged.rejected], pa.string()),
            "raw": pa.array([r.raw_text for r in staged.rejected], pa.string()),
        }
    )
