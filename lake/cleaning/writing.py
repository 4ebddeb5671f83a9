"""Writing a pass's output: one zstd cleaned file per object and event date, one
quarantine file per object with its refused records (raw text, reason, reason code).

With the lake's Iceberg tables (`Destination.sharing`), an object's rows of one event date
that are fewer than SHARE_ROWS go to the pass's shared file for its arrival hour and that
date instead (lake.layout.shared_file; the manifest's `shared` range, lake.ledger), when
the pass has two such parts of that hour and date at least: a Parquet file's fixed cost
(~0.85-1.35 ms CPU) is paid once per pass, hour and date, not once per small object."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime

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
from lake.ledger import SharedPart
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
# An object's rows of one event date fewer than this share the pass's file for its hour and
# the date (with tables): a file's fixed cost is ~14% of a 10,000-row file, over a quarter
# of a 3,000-row one (bench/README.md, "passwrite").
SHARE_ROWS = 10_000


@dataclass(frozen=True)
class Sharing:
    """What names a pass's shared files: the run's token and the pass's number."""

    token: str
    n: int


@dataclass(frozen=True)
class Destination:
    """Where and as what a pass's files are written."""

    lake: Storage
    spec: StreamSpec
    hours: list[datetime]  # each object's arrival hour
    ingested_at: datetime
    objects: list[ObjectInfo]  # index in this list = `_object`
    names: list[str]  # their output names, in the same order
    sharing: Sharing | None = None  # None: every object's rows in files of its own


@dataclass(frozen=True)
class Cleaned:
    """What write_cleaned made, by object index: the files holding its rows alone, and
    its parts of the pass's shared files (sorted by file)."""

    files: dict[int, list[str]]
    shared: dict[int, list[SharedPart]]


@dataclass(frozen=True)
class Quarantined:
    """What write_quarantine made: QUARANTINED (every record set aside, with its reason
    code), each object's records by code, and each object's quarantine file."""

    by_code: dict[int, dict[str, int]]
    files: dict[int, str]
    relation: str = QUARANTINED


def write_cleaned(to: Destination, typed: Typed, deduped: Deduped) -> Cleaned:
    """One zstd file per object and event date, records in their order, but for the parts
    that share a file of the pass (`to.sharing`: see the module). `typed` is in
    object and position order, so each object is a run of rows (no sort); should an
    object ever come in pieces, the rows are sorted and all files rewritten."""
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
    shares = _shares(rows, to) if to.sharing is not None else []
    shared_days = {(index, share.day) for share in shares for index in share.objects}

    def encode(part: pa.Table) -> bytes:
        part = as_json_columns(part.drop_columns(["_dt"]), json_names)
        plain = unique if part.num_rows >= _DICTIONARY_ROWS else set(part.column_names)
        return parquet_bytes(part, no_dictionary=plain)

    def write(group: GroupKey, part_rows: pa.Table) -> list[str]:
        index = group[0]
        assert isinstance(index, int)
        days = pc.unique(part_rows["_dt"]).to_pylist()
        keys = []
        for day in (d for d in days if (index, d) not in shared_days):
            part = (
                part_rows if len(days) == 1 else part_rows.filter(pc.equal(part_rows["_dt"], day))
            )
            keys.append(layout.cleaned_file(spec.name, day, to.names[index]))
            store(keys[-1], encode(part))
        return keys

    lineage = _Lineage(to, record_columns)
    with _Uploads(to.lake) as store:
        try:
            files = write_groups(lineage.of(rows.to_reader(_BATCH_ROWS)), ["_object"], write)
        except GroupsNotConsecutive:
            store.wait()  # the files stored so far, before they are written again
            rows = rows.sort_by([("_object", "ascending"), ("_position", "ascending")])
            files = write_groups(lineage.of(rows.to_reader(_BATCH_ROWS)), ["_object"], write)
        shared: dict[int, list[SharedPart]] = {}
        for share in shares:
            part = lineage.of(_share_rows(rows, share).to_reader(_BATCH_ROWS)).read_all()
            store(share.key, encode(part.drop_columns(["_object"])))
            for index, first, count in share.ranges():
                shared.setdefault(index, []).append(SharedPart(share.key, first, count))
    own = {index: keys for (index,), keys in files.items()}  # type: ignore[misc]
    return Cleaned(own, {i: sorted(parts, key=lambda p: p.file) for i, parts in shared.items()})


@dataclass(frozen=True)
class _Share:
    """One shared file of a pass: its key, event date, and its objects (ascending) with
    their rows of that date."""

    key: str
    day: date
    objects: dict[int, int]

    def ranges(self) -> Iterator[tuple[int, int, int]]:
        """(object index, first row, rows) of each object, in file order."""
        first = 0
        for index, count in self.objects.items():
            yield index, first, count
            first += count


def _shares(rows: pa.Table, to: Destination) -> list[_Share]:
    """The pass's shared files: per arrival hour and event date, the objects with fewer
    than SHARE_ROWS rows of that date, when two of them at least. A file holds one hour's
    objects: a parallel run's settle pass cleans an hour again by itself (replacing its
    files), and a run writes the same files whether its hours are cleaned in chunks or not."""
    sharing = to.sharing
    assert sharing is not None
    counts = rows.group_by(["_object", "_dt"], use_threads=False).aggregate([([], "count_all")])
    small: dict[tuple[datetime, date], dict[int, int]] = {}
    for index, day, count in zip(
        counts["_object"].to_pylist(), counts["_dt"].to_pylist(), counts["count_all"].to_pylist(),
        strict=True,
    ):  # fmt: skip
        if count < SHARE_ROWS:
            small.setdefault((to.hours[index], day), {})[index] = count
    shares = []
    for (hour, day), objects in sorted(small.items()):
        if len(objects) > 1:
            key = layout.shared_file(to.spec.name, day, hour, sharing.token, sharing.n)
            shares.append(_Share(key, day, dict(sorted(objects.items()))))
    return shares


def _share_rows(rows: pa.Table, share: _Share) -> pa.Table:
    """The rows of a shared file, in (_object, _position) order."""
    objects = pa.array(list(share.objects), rows.schema.field("_object").type)
    mask = pc.and_(pc.equal(rows["_dt"], share.day), pc.is_in(rows["_object"], value_set=objects))
    part = rows.filter(mask)
    rid = pc.add(pc.multiply(part["_object"], ROW_SPAN), part["_position"])
    if part.num_rows > 1 and not pc.all(pc.less(rid[:-1], rid[1:])).as_py():
        part = part.sort_by([("_object", "ascending"), ("_position", "ascending")])
    return part


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
