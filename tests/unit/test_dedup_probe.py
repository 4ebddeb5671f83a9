"""Dedup probes the window's key files (issue 15): sorted files with small row groups, a
pass reads the row groups its keys fall in, dates compacted, a multi-hour run reads each
key file once, S3 key files read by ranges without local copies."""

from __future__ import annotations

import base64
import gzip
import json
import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from botocore.exceptions import ClientError

from lake import layout
from lake.cleaning import hour as hour_module
from lake.cleaning import key_files
from lake.cleaning.commit import RunCommit
from lake.cleaning.dedup import save_hour_keys
from lake.cleaning.hour import clean_hour
from lake.cleaning.key_files import (
    ABSORBED,
    COMPACT_AFTER_FILES,
    GROUP_STARTS,
    ROW_GROUP_ROWS,
    KeyWindow,
    compact_due,
    key_file_bytes,
)
from lake.cleaning.tables import NEW_KEYS
from lake.firehose import hour_prefix
from lake.ledger import output_name
from lake.settings import DEFAULTS
from lake.storage import LocalStorage, open_storage
from lake.streams import load_streams
from tests.incremental_lake import TABLE

SPEC = load_streams()["robot_telemetry"]  # allowed lateness: 48 hours
DAY = date(2026, 11, 19)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def hour_of(day: date, h: int) -> datetime:
    return datetime(day.year, day.month, day.day, h, tzinfo=UTC)


def land(landing: LocalStorage, hour: datetime, ids: list[str], ts: str, name: str = "a") -> None:
    text = "".join(json.dumps({"event_id": i, "ts": ts, "robot_id": "R1"}) for i in ids)
    key = f"{hour_prefix(SPEC.name, hour)}{SPEC.name}-1-{hour:%Y-%m-%d-%H}-00-00-{name}.gz"
    landing.write(key, gzip.compress(text.encode(), mtime=0))


def clean(landing: LocalStorage, lake: Any, hour: datetime, **kw: Any):
    objects = list(landing.list(hour_prefix(SPEC.name, hour)))
    return clean_hour(SPEC, TABLE, landing, lake, hour, objects, **kw)


def random_keys(n: int, seed: int, obj: str = "o") -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "hi": pa.array([rng.getrandbits(64) for _ in range(n)], pa.uint64()),
            "lo": pa.array([rng.getrandbits(64) for _ in range(n)], pa.uint64()),
            "obj": [obj] * n,
        }
    )


def save(lake: Any, hour: datetime, keys: pa.Table, reprocessed: frozenset[str] = frozenset()):
    con = duckdb.connect()
    names = pc.unique(keys["obj"])
    o = pc.index_in(keys["obj"], value_set=names).cast(pa.int32())
    days = pa.array([DAY] * keys.num_rows, pa.date32())
    con.register("k", pa.table({"dt": days, "hi": keys["hi"], "lo": keys["lo"], "o": o}))
    sql = "SELECT * FROM k"
    return save_hour_keys(con, lake, SPEC.name, hour, sql, names, set(reprocessed), [DAY])


def test_key_files_are_sorted_by_key_in_small_row_groups() -> None:
    keys = random_keys(5 * ROW_GROUP_ROWS + 7, seed=1)
    parquet = pq.ParquetFile(pa.BufferReader(key_file_bytes(keys)))
    meta = parquet.metadata
    assert meta.num_rows == keys.num_rows
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [
        ROW_GROUP_ROWS
    ] * 5 + [7]
    hi = parquet.read()["hi"].to_pylist()
    assert hi == sorted(keys["hi"].to_pylist())
    ranges = [
        (meta.row_group(g).column(0).statistics.min, meta.row_group(g).column(0).statistics.max)
        for g in range(meta.num_row_groups)
    ]
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # disjoint
    assert meta.row_group(0).column(1).statistics is None  # lo carries none: a smaller footer
    starts = base64.b64decode(parquet.schema_arrow.metadata[GROUP_STARTS])
    assert [int.from_bytes(starts[i : i + 8], "little") for i in range(0, len(starts), 8)] == [
        hi[g * ROW_GROUP_ROWS] for g in range(meta.num_row_groups)
    ]


def test_a_key_file_written_in_slices_holds_every_row_in_order_with_its_names(
    monkeypatch: pytest.MonkeyPatch, lake: LocalStorage
) -> None:
    """Big hours' keys are sorted by index and written a slice at a time with their names
    dictionary-encoded (memory): the file must be what one sorted write gives, names
    (hostile ones too) as plain strings, row groups aligned with GROUP_STARTS."""
    monkeypatch.setattr(key_files, "WRITE_ROWS", 2 * ROW_GROUP_ROWS)
    names = ["o", "", "ü/../x'\"\n", "o" * 300]
    chunks = [random_keys(3 * ROW_GROUP_ROWS + 5, seed=s, obj=n) for s, n in enumerate(names)]
    keys = pa.concat_tables(chunks)  # several chunks, one name each
    parquet = pq.ParquetFile(pa.BufferReader(key_file_bytes(keys)))
    meta, read = parquet.metadata, parquet.read()
    assert read.schema.field("obj").type == pa.string()
    expected = keys.sort_by([("hi", "ascending"), ("lo", "ascending")])
    assert read.select(["hi", "lo", "obj"]).equals(expected)
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [
        ROW_GROUP_ROWS
    ] * 12 + [20]
    starts = base64.b64decode(parquet.schema_arrow.metadata[GROUP_STARTS])
    hi = read["hi"].to_pylist()
    assert [int.from_bytes(starts[i : i + 8], "little") for i in range(0, len(starts), 8)] == [
        hi[g * ROW_GROUP_ROWS] for g in range(meta.num_row_groups)
    ]
    # an hour file saved from DuckDB (the names fetched in encoded batches) reads the same
    hour = hour_of(DAY, 8)
    (written,) = save(lake, hour, keys)
    saved = pq.read_table(lake.path(written))
    assert saved.schema.field("obj").type == pa.string()
    assert saved.select(["hi", "lo", "obj"]).equals(expected)


def test_a_key_written_two_days_ago_inside_the_lateness_is_dropped(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    early = hour_of(DAY, 8)
    land(landing, early, [f"e-{i}" for i in range(100)], "2026-11-19T08:05:00Z")
    assert clean(landing, lake, early).records_cleaned == 100
    later = early + timedelta(hours=46)  # the 19th is still inside its 48-hour window
    ids = [f"e-{i}" for i in range(0, 100, 2)] + [f"n-{i}" for i in range(30)]
    land(landing, later, ids, "2026-11-19T09:00:00Z", name="b")
    report = clean(landing, lake, later)
    assert (report.records_in, report.duplicates_dropped, report.records_cleaned) == (80, 50, 30)


def test_a_key_older_than_the_window_is_not_probed(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    early = hour_of(DAY, 8)
    land(landing, early, [f"e-{i}" for i in range(10)], "2026-11-19T08:05:00Z")
    clean(landing, lake, early)
    later = hour_of(DAY + timedelta(days=3), 8)  # window: the 20th to the 22nd
    land(landing, later, [f"e-{i}" for i in range(10)], "2026-11-22T08:00:00Z", name="b")
    report = clean(landing, lake, later)
    assert (report.duplicates_dropped, report.records_cleaned) == (0, 10)


def test_a_reprocessed_objects_own_keys_do_not_drop_its_records_even_once_compacted(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    hours = [hour_of(DAY, h) for h in range(COMPACT_AFTER_FILES)]
    for n, hour in enumerate(hours):
        land(landing, hour, [f"h{n}-{i}" for i in range(20)], "2026-11-19T10:00:00Z")
        clean(landing, lake, hour)
    assert lake.exists(layout.dedup_keys_compacted(SPEC.name, DAY))  # every hour file in it
    refreshed = clean(landing, lake, hours[1], full_refresh=True)
    assert (refreshed.duplicates_dropped, refreshed.records_cleaned) == (0, 20)
    # its keys still count against any other object
    later = hour_of(DAY, 20)
    land(landing, later, [f"h1-{i}" for i in range(20)], "2026-11-19T10:00:00Z", name="b")
    assert clean(landing, lake, later).duplicates_dropped == 20


def test_compaction_absorbs_hour_files_and_a_rewritten_hour_file_replaces_its_rows(
    lake: LocalStorage,
) -> None:
    hours = [hour_of(DAY, h) for h in range(COMPACT_AFTER_FILES)]
    keys = [random_keys(300, seed=n, obj=f"obj{n}") for n in range(len(hours))]
    for hour, part in zip(hours[:-1], keys, strict=False):
        save(lake, hour, part)
    compacted = layout.dedup_keys_compacted(SPEC.name, DAY)
    assert compact_due(lake, SPEC.name, [DAY]) == []
    assert not lake.exists(compacted)  # three hour files: not yet
    save(lake, hours[-1], keys[-1])
    assert not lake.exists(compacted)  # saving never compacts: the run's end does
    assert compact_due(lake, SPEC.name, [DAY]) == [DAY]
    table = pq.read_table(lake.path(compacted))
    assert table.num_rows == 1200
    assert sorted(json.loads(table.schema.metadata[ABSORBED])) == [
        f"{h:%Y%m%dT%H}.parquet" for h in hours
    ]
    window = KeyWindow(lake, SPEC.name, [DAY])
    probe = pa.concat_tables(keys).slice(0, 600).select(["hi", "lo"])  # obj0 and obj1
    assert window.hits(probe).num_rows == 600

    save(lake, hours[0], random_keys(0, 9), reprocessed=frozenset({"obj0"}))  # obj0 refreshed
    hits = window.hits(probe)
    assert sorted(hits["hi"].to_pylist()) == sorted(keys[1]["hi"].to_pylist())
    assert KeyWindow(lake, SPEC.name, [DAY], frozenset({"obj1"})).hits(probe).num_rows == 0


class CountingStorage(LocalStorage):
    """A local lake that counts the writes of each key."""

    def __init__(self, root: Any) -> None:
        super().__init__(root)
        self.writes: Counter[str] = Counter()

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        self.writes[key] += 1
        return super().write_if(key, data, expected)


def test_a_multi_hour_run_reads_each_key_file_version_once(
    landing: LocalStorage, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = CountingStorage(tmp_path / "counted")
    opens: Counter[str] = Counter()
    real = key_files._opened

    def counted(storage: Any, info: Any) -> Any:
        opens[info.key] += 1
        return real(storage, info)

    monkeypatch.setattr(key_files, "_opened", counted)
    hours = [hour_of(DAY, h) for h in range(10)]
    for n, hour in enumerate(hours):
        ids = [f"h{n}-{i}" for i in range(50)] + [f"h{n - 1}-{i}" for i in range(10)]
        land(landing, hour, ids, "2026-11-19T12:00:00Z")
    run = RunCommit(None, SPEC, lake)
    dropped = [clean(landing, lake, hour, run_commit=run).duplicates_dropped for hour in hours]
    run.commit()
    assert dropped == [0] + [10] * 9
    assert lake.writes[layout.dedup_keys_compacted(SPEC.name, DAY)] == 1  # at the run's end
    assert opens  # the later hours did read key files
    over = {k: n for k, n in opens.items() if n > lake.writes[k]}
    assert over == {}, over  # never twice the same version


def test_files_from_before_the_sorted_layout_are_probed_by_their_statistics(
    lake: LocalStorage,
) -> None:
    keys = random_keys(3000, seed=4)  # unsorted, one row group, no GROUP_STARTS
    lake.write(layout.dedup_keys_file(SPEC.name, DAY, hour_of(DAY, 3)), _plain_parquet(keys))
    probe = pa.table({"hi": pa.array([keys["hi"][7].as_py(), 12345], pa.uint64())})
    hits = KeyWindow(lake, SPEC.name, [DAY]).hits(probe)
    assert hits.to_pylist() == [{"hi": keys["hi"][7].as_py(), "lo": keys["lo"][7].as_py()}]


def _plain_parquet(table: pa.Table) -> bytes:
    out = pa.BufferOutputStream()
    pq.write_table(table, out)
    return out.getvalue().to_pybytes()


@pytest.mark.s3
def test_s3_key_files_are_probed_by_ranged_reads(s3_bucket: str) -> None:
    lake = open_storage(f"s3://{s3_bucket}/lake")
    keys = random_keys(40 * ROW_GROUP_ROWS, seed=3)
    save(lake, hour_of(DAY, 8), keys)
    (info,) = lake.list(layout.dedup_keys_folder(SPEC.name, DAY))
    read: list[int] = []
    real = lake.read_range

    def counted(key: str, start: int, length: int, etag: str | None = None) -> bytes:
        read.append(length)
        return real(key, start, length, etag)

    lake.read_range = counted  # type: ignore[method-assign]
    lake.read = lake.open = None  # type: ignore[assignment,method-assign]  # never whole
    probe = keys.take([5, 50_000, 70_000]).select(["hi", "lo"])
    hits = KeyWindow(lake, SPEC.name, [DAY]).hits(probe)
    assert sorted(hits["hi"].to_pylist()) == sorted(probe["hi"].to_pylist())
    assert 0 < sum(read) < info.size / 5  # footer and three row groups of forty


@pytest.mark.s3
def test_s3_ranged_reads_are_pinned_to_the_listed_version(s3_bucket: str) -> None:
    """A key file replaced after it was listed: its ranged reads of the listed version fail
    (never a footer of one version read with pages of another), and it is read whole."""
    lake = open_storage(f"s3://{s3_bucket}/lake")
    key = layout.dedup_keys_file(SPEC.name, DAY, hour_of(DAY, 6))
    old, new = random_keys(40 * ROW_GROUP_ROWS, seed=7), random_keys(40 * ROW_GROUP_ROWS, seed=8)
    lake.write(key, key_file_bytes(old))
    (listed,) = lake.list(layout.dedup_keys_folder(SPEC.name, DAY))
    lake.write(key, key_file_bytes(new))
    with pytest.raises(ClientError, match="PreconditionFailed|412"):
        lake.read_range(key, 0, 100, listed.etag)
    probe = pa.concat_tables([old.slice(10, 2), new.slice(20, 2)]).select(["hi", "lo"])
    hits = key_files.read_keys(lake, listed, pa.array(sorted(probe["hi"].to_pylist()), pa.uint64()))
    assert sorted(hits["hi"].to_pylist()) == sorted(new.slice(20, 2)["hi"].to_pylist())


class RangedLake:
    """A local lake seen as an object store: no LocalStorage, so key files are read by
    ranged reads; `rewrite` replaces the file right after the first ranged read."""

    def __init__(self, lake: LocalStorage, rewrite: tuple[str, bytes] | None = None) -> None:
        self.lake, self.rewrite, self.uri = lake, rewrite, "ranged://" + lake.uri
        self.ranges = 0

    def list(self, prefix: str = "", start_after: str | None = None) -> Any:
        return self.lake.list(prefix, start_after)

    def read(self, key: str) -> bytes:
        return self.lake.read(key)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        return self.lake.read_versioned(key)

    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes:
        data = self.lake.read_range(key, start, length)
        self.ranges += 1
        if self.rewrite is not None:
            self.lake.write(*self.rewrite)
            self.rewrite = None
        return data


def test_a_key_file_rewritten_between_two_ranged_reads_is_read_again_whole(
    lake: LocalStorage,
) -> None:
    key = layout.dedup_keys_file(SPEC.name, DAY, hour_of(DAY, 5))
    old, new = random_keys(40 * ROW_GROUP_ROWS, seed=5), random_keys(30 * ROW_GROUP_ROWS, seed=6)
    lake.write(key, key_file_bytes(old))
    ranged = RangedLake(lake, rewrite=(key, key_file_bytes(new)))
    probe = pa.concat_tables([old.slice(10, 2), new.slice(20, 2)]).select(["hi", "lo"])
    hits = KeyWindow(ranged, SPEC.name, [DAY]).hits(probe)  # type: ignore[arg-type]
    assert sorted(hits["hi"].to_pylist()) == sorted(new.slice(20, 2)["hi"].to_pylist())
    assert ranged.ranges >= 2  # the footer was read by range before the rewrite


def test_a_run_keeps_its_keys_by_object_index_and_each_hour_file_names_its_own_objects(
    monkeypatch: pytest.MonkeyPatch, landing: LocalStorage, lake: LocalStorage
) -> None:
    """The run's kept keys are held with an integer object index, not a name per key
    (memory: the 2 GB hour's 7M keys); the hour files still name every key's object,
    across passes (a pass per object) and hours, and a key kept by an earlier pass still
    drops its duplicate in a later one."""
    hours = [hour_of(DAY, 8), hour_of(DAY, 9)]
    names = ["a", "b'\"x", "c"]
    for n, hour in enumerate(hours):
        for m, name in enumerate(names):
            ids = [f"{n}-{m}-{i}" for i in range(5 + m)] + ["dup"]  # "dup" kept once, in 08:00's a
            land(landing, hour, ids, "2026-11-19T08:30:00Z", name=name)
    held: list[list[tuple[str, str]]] = []
    real = hour_module.save_hour_keys

    def save_noting_new_keys(con: duckdb.DuckDBPyConnection, *args: Any) -> list[str]:
        held.append(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {NEW_KEYS})").fetchall()
        )
        return real(con, *args)

    monkeypatch.setattr(hour_module, "save_hour_keys", save_noting_new_keys)
    todo = {h: list(landing.list(hour_prefix(SPEC.name, h))) for h in hours}
    one_each = replace(DEFAULTS, clean_chunk_bytes=1)
    reports = hour_module.clean_hours(SPEC, TABLE, landing, lake, todo, settings=one_each)
    assert held and all(
        cols == [("dt", "DATE"), ("hi", "UBIGINT"), ("lo", "UBIGINT"), ("o", "INTEGER")]
        for cols in held
    )
    assert [r.duplicates_dropped for r in reports.values()] == [2, 3]
    for hour, objects in todo.items():
        keys = pq.read_table(lake.path(layout.dedup_keys_file(SPEC.name, DAY, hour)))
        counts = Counter(keys["obj"].to_pylist())
        expected = {output_name(hour, o.key): 5 + m for m, o in enumerate(objects)}
        if hour == hours[0]:
            expected[output_name(hour, objects[0].key)] += 1  # the one "dup" kept
        assert counts == expected
