"""Cleaned files shared by a pass's small objects (with Iceberg tables): the table holds the
rows a file per object gives, each manifest's shared range reads back that object's rows,
a re-cleaned sharer (overwritten in landing, or a full refresh) replaces its rows once and
leaves the others', and what stays a file of its own does. Real Parquet, DuckDB and a
pyiceberg SqlCatalog on SQLite in tmp_path."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning import writing
from lake.cleaning.hour import clean_hours
from lake.cleaning.report import ObjectCounts
from lake.firehose import hour_prefix, object_key
from lake.hour_totals import hour_totals
from lake.iceberg.catalog import LakeTables
from lake.ledger import object_version, output_name, replace_manifest, shared_parts
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from tests.unit.test_cleaning import SPEC, TABLE
from tests.unit.test_parallel_hours import land, local, make_lake, rows, run
from tests.unit.test_parallel_hours import rec as parallel_rec

H1 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H2 = H1 + timedelta(hours=1)
RUN_TIMES = ("_ingested_at",)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "shared-files-test-key")


class Lake:
    """A landing folder, a lake and its tables (SqlCatalog on SQLite) under `root`."""

    def __init__(self, root: Path) -> None:
        self.landing, self.lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
        settings = replace(
            DEFAULTS,
            landing_uri=self.landing.uri,
            lake_uri=self.lake.uri,
            iceberg_catalog_uri=f"sqlite:///{root / 'iceberg.db'}",
        )
        self.tables = LakeTables(settings)

    def put(self, hour: datetime, minute: int, oid: str, records: list[dict[str, Any]]) -> str:
        key = object_key(SPEC.name, hour.replace(minute=minute), object_id=oid)
        body = "".join(json.dumps(r) for r in records)
        self.landing.write(key, gzip.compress(body.encode(), mtime=0))
        return key

    def clean(self, hours: list[datetime], **options: Any) -> None:
        batches = {h: list(self.landing.list(hour_prefix(SPEC.name, h))) for h in hours}
        clean_hours(SPEC, TABLE, self.landing, self.lake, batches, tables=self.tables, **options)

    def rows(self) -> pa.Table:
        table = self.tables.load("cleaned", SPEC.name)
        assert table is not None
        return table.scan().to_arrow()

    def manifests(self) -> dict[str, dict[str, Any]]:
        """The ledger's manifests by source key."""
        docs = [
            json.loads(self.lake.read(info.key))
            for info in self.lake.list(layout.ledger_folder(SPEC.name))
        ]
        return {doc["source_key"]: doc for doc in docs}

    def data_files(self) -> list[str]:
        table = self.tables.load("cleaned", SPEC.name)
        assert table is not None
        return sorted(t.file.file_path for t in table.scan().plan_files())


def rec(eid: str, day: int, minute: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": eid,
        "ts": f"2026-11-{day:02d}T07:{minute:02d}:00Z",
        "robot_id": "R1",
    } | extra


def land_small_objects(lake: Lake) -> dict[str, str]:
    """Ten small objects over two arrival hours, their records on 2026-11-21 and (some)
    2026-11-20, with a copy of an earlier record and a malformed one here and there."""
    keys = {}
    for n in range(10):
        hour = H1 if n < 6 else H2
        records: list[Any] = [rec(f"e{n}-{r}", 21, r) for r in range(3 + n % 4)]
        if n % 2:
            records.append(rec(f"late{n}", 20, n))
        if n % 3 == 2:
            records.append(rec(f"e{n - 1}-0", 21))  # a copy: dropped
        keys[f"o{n}"] = lake.put(hour, n, f"o{n}", records)
    bad = lake.landing.read(keys["o4"]) + gzip.compress(b'{"event_id": "x", "ts": ', mtime=0)
    lake.landing.write(keys["o4"], bad)  # a second gzip member with a broken record
    return keys


def except_all(a: pa.Table, b: pa.Table) -> list[tuple]:
    """Rows of `a` not in `b` (as a multiset), run times left out."""
    with duckdb.connect() as con:
        con.register("a", a.drop_columns(list(RUN_TIMES)))
        con.register("b", b.drop_columns(list(RUN_TIMES)))
        return con.sql("SELECT * FROM a EXCEPT ALL SELECT * FROM b").fetchall()


def same_rows(a: pa.Table, b: pa.Table) -> None:
    assert a.num_rows == b.num_rows
    assert except_all(a, b) == [] and except_all(b, a) == []


def rows_by_object_and_day(lake: Lake) -> dict[tuple[str, date], int]:
    """Each object's cleaned rows by event date, from the files its manifest lists and its
    shared ranges (a lake whose objects have files of their own: every file read whole)."""
    counts: dict[tuple[str, date], int] = {}
    for key, manifest in lake.manifests().items():
        own = [f for f in manifest["files"] if layout.is_cleaned_file(f)]
        for f in own:
            day = layout.cleaned_file_day(f)
            assert day is not None
            counts[key, day] = pq.read_metadata(lake.lake.path(f)).num_rows
        for part in shared_parts(manifest):
            day = layout.cleaned_file_day(part.file)
            assert day is not None
            counts[key, day] = counts.get((key, day), 0) + part.rows
    return counts


@pytest.fixture
def apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """The small objects cleaned with a file of their own each (sharing off)."""
    lake = Lake(tmp_path / "apart")
    land_small_objects(lake)
    with monkeypatch.context() as m:
        m.setattr(writing, "SHARE_ROWS", 0)
        lake.clean([H1, H2])
    return lake


@pytest.fixture
def shared(tmp_path: Path) -> Lake:
    lake = Lake(tmp_path / "shared")
    land_small_objects(lake)
    lake.clean([H1, H2])
    return lake


def test_small_objects_share_a_file_per_event_date_and_the_table_holds_the_same_rows(
    apart: Lake, shared: Lake
) -> None:
    same_rows(shared.rows(), apart.rows())
    days = set(rows_by_object_and_day(apart).keys())
    assert len(apart.data_files()) == len(days)  # a file per object and date
    # a file per arrival hour and event date
    assert len(shared.data_files()) == len({(key.split("/")[4], day) for key, day in days}) == 4
    assert all(layout.is_shared_file(shared.tables.key_of(f) or "") for f in shared.data_files())

    expected = rows_by_object_and_day(apart)
    manifests = shared.manifests()
    assert sum(m["records_quarantined"] for m in manifests.values()) == 1
    assert sum(m["duplicates_dropped"] for m in manifests.values()) == 3
    for key, manifest in manifests.items():
        accounted = sum(manifest[k] for k in ("records_cleaned", "records_quarantined"))
        assert manifest["records_in"] == accounted + manifest["duplicates_dropped"]
        assert not [f for f in manifest["files"] if layout.is_cleaned_file(f)]
        cleaned = 0
        for part in shared_parts(manifest):
            rows = pq.read_table(shared.lake.path(part.file)).slice(part.first, part.rows)
            assert set(rows["_source_key"].to_pylist()) == {key}
            assert part.rows == expected[key, layout.cleaned_file_day(part.file)]
            cleaned += part.rows
        assert cleaned == manifest["records_cleaned"] == apart.manifests()[key]["records_cleaned"]
    # each file's ranges tile it: every row is one object's, in (object, position) order
    for file in {p.file for m in manifests.values() for p in shared_parts(m)}:
        ranges = sorted(
            (p.first, p.rows) for m in manifests.values() for p in shared_parts(m) if p.file == file
        )
        assert [first for first, _ in ranges] == [0, *(f + n for f, n in ranges[:-1])]
        assert sum(n for _, n in ranges) == pq.read_metadata(shared.lake.path(file)).num_rows


def test_hour_totals_count_a_shared_file_once(shared: Lake) -> None:
    manifests = shared.manifests()
    for hour in (H1, H2):
        landed = list(shared.landing.list(hour_prefix(SPEC.name, hour)))
        totals = hour_totals(shared.lake, SPEC.name, hour, landed)
        of_hour = [manifests[o.key] for o in landed]
        files = {f for m in of_hour for f in m["files"]}
        files |= {p.file for m in of_hour for p in shared_parts(m)}
        assert sorted(totals.files) == sorted(files) and totals.files_count == len(files)
        assert len([f for f in totals.files if layout.is_shared_file(f)]) == 2  # one a date


def without(rows: pa.Table, keys: set[str]) -> pa.Table:
    return rows.filter(pa.array([k not in keys for k in rows["_source_key"].to_pylist()]))


def of(rows: pa.Table, key: str) -> list[str]:
    return sorted(
        e
        for e, k in zip(rows["event_id"].to_pylist(), rows["_source_key"].to_pylist(), strict=True)
        if k == key
    )


def test_a_sharer_overwritten_in_landing_is_replaced_once_and_the_others_stay(
    shared: Lake,
) -> None:
    """o1's rows share files with the others': its new content is on 2026-11-19 only, so
    the replace must cover the days of its old rows in the shared files (its manifest's
    `shared`), which none of its new files is on."""
    before = shared.rows()
    o1 = shared.put(H1, 1, "o1", [rec("new1", 19), rec("new2", 19, 1)])
    on_disk = {f for m in shared.manifests().values() for p in shared_parts(m) for f in [p.file]}
    shared.clean([H1])  # a micro-batch: o1 alone is new (its version changed)

    after = shared.rows()
    assert of(after, o1) == ["new1", "new2"]
    same_rows(without(after, {o1}), without(before, {o1}))  # the other sharers' rows as they were
    assert shared_parts(shared.manifests()[o1]) == []  # alone in its pass: files of its own
    # nothing deleted a shared file: an older snapshot still reads it until expiry
    assert all(shared.lake.exists(f) for f in on_disk)


def test_a_full_refresh_of_an_hour_replaces_its_sharers_rows_once(shared: Lake) -> None:
    """o1, o3 and o5 are 08:00's objects with rows of 2026-11-20 (they share its file of
    that date; 09:00's o7 and o9 another); their new content is on 2026-11-21 and 22 (o1 keeps e1-0, which
    o2 holds a copy of): the refresh's replace (a range of days) must reach back to
    2026-11-20 from their manifests' `shared`."""
    before = shared.rows()
    new = {
        shared.put(H1, 1, "o1", [rec("e1-0", 21), rec("new1", 22)]): ["e1-0", "new1"],
        shared.put(H1, 3, "o3", [rec("new3", 22, 3), rec("new4", 22, 4)]): ["new3", "new4"],
        shared.put(H1, 5, "o5", [rec("new5", 22, 5)]): ["new5"],
    }
    h1_keys = {o.key for o in shared.landing.list(hour_prefix(SPEC.name, H1))}
    shared.clean([H1], full_refresh=True)

    after = shared.rows()
    assert {key: of(after, key) for key in new} == new
    same_rows(without(after, set(new)), without(before, set(new)))
    refreshed = shared.manifests()
    assert all(shared_parts(refreshed[k]) for k in h1_keys)  # they share files again


def test_one_object_and_objects_of_many_rows_keep_files_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "SHARE_ROWS", 3)
    lake = Lake(tmp_path)
    lake.put(H1, 1, "one", [rec("a", 21), rec("b", 20)])
    lake.clean([H1])  # a micro-batch of one object
    lake.put(H1, 2, "big1", [rec(f"c{n}", 21, n) for n in range(3)])
    lake.put(H1, 3, "big2", [rec(f"d{n}", 21, n) for n in range(4)])
    lake.put(H1, 4, "small", [rec("e", 21), rec("f", 20, 1)])  # alone below SHARE_ROWS
    lake.clean([H1])
    manifests = lake.manifests()
    assert all("shared" not in m for m in manifests.values())
    cleaned = [f for m in manifests.values() for f in m["files"] if layout.is_cleaned_file(f)]
    assert len(cleaned) == 2 + 1 + 1 + 2
    assert sorted(lake.tables.key_of(f) for f in lake.data_files()) == sorted(cleaned)


def test_a_parallel_run_with_shared_files_gives_the_serial_runs_rows(tmp_path: Path) -> None:
    """CLEAN_WORKERS=2 (threads), 08:00 and 12:00 with small objects sharing files, 12:00
    settled again (it holds a record of the first chunk): the serial run's rows, and no
    file left over (a settled hour's first shared files are dropped, none other's)."""
    extra = {
        (hour, minute, f"s{hour}-{minute}"): [
            parallel_rec(f"s{hour}-{minute}-{n}", hour, n) for n in range(3)
        ]
        for hour in (8, 12)
        for minute in (20, 21, 22)
    }
    lakes = {}
    for workers in (1, 2):
        settings = make_lake(tmp_path / str(workers), workers)
        land(local(settings.landing_uri), extra)
        run(settings)
        lakes[workers] = settings
    assert rows(lakes[2], "cleaned") == rows(lakes[1], "cleaned")  # and no file left over
    assert rows(lakes[2], "quarantine") == rows(lakes[1], "quarantine")
    for settings in lakes.values():
        lake = local(settings.lake_uri)
        manifests = [
            json.loads(lake.read(i.key)) for i in lake.list(layout.ledger_folder(SPEC.name))
        ]
        sharers = [m["source_key"] for m in manifests if shared_parts(m)]
        assert {k.split("/")[4] for k in sharers} >= {"08", "12"}


def test_replacing_a_manifest_never_deletes_a_shared_file(shared: Lake) -> None:
    """Even asked to delete an object's stale files (a lake without tables), its earlier
    shared files stay: they hold other objects' rows."""
    key, manifest = next((k, m) for k, m in shared.manifests().items() if shared_parts(m))
    files = [p.file for p in shared_parts(manifest)]
    info = next(o for o in shared.landing.list(hour_prefix(SPEC.name, H1)) if o.key == key)
    name = output_name(H1, key)
    earlier = [layout.ledger_manifest(SPEC.name, name, object_version(info))]
    counts = ObjectCounts(records_in=manifest["records_in"], records_cleaned=0)
    replace_manifest(shared.lake, SPEC.name, info, name, counts, earlier, files, None, True)
    assert all(shared.lake.exists(f) for f in files)
