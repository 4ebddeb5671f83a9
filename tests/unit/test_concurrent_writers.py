"""Read-merge-writes racing (issue 10, section 4): the catalog table and its versions, the
dedup keys of one hour and alert claims are compare-and-swap, on the local lake and on S3
over HTTP (moto enforces If-Match / If-None-Match)."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import alerts
from lake.catalog_store import Catalog
from lake.cleaning.dedup import save_hour_keys
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage, Storage, open_storage
from lake.streams import load_streams
from tests.incremental_lake import run_all

ROBOT = load_streams()["robot_telemetry"]
DB = "firehose_raw"
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    return open_storage(f"s3://{bucket}/lake")


def _in_lockstep(monkeypatch: pytest.MonkeyPatch, cls: type, method: str, parties: int) -> None:
    """Make the first call of `cls.method` in each of `parties` threads wait for the others,
    so every thread reads the same state before any writes (the race, every time)."""
    barrier = threading.Barrier(parties, timeout=30)
    real = getattr(cls, method)
    first = threading.local()

    def waiting(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        if not getattr(first, "done", False):
            first.done = True
            barrier.wait()
        return result

    monkeypatch.setattr(cls, method, waiting)


def test_two_crawls_racing_keep_both_columns_and_number_versions_without_gaps(
    lake: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = LocalStorage(tmp_path / "landing")
    base = {"event_id": "e", "ts": "2026-11-21T08:00:00Z", "robot_id": "R1"}
    catalog = Catalog(lake, DB)
    first = object_key(ROBOT.name, HOUR.replace(minute=1), object_id="base")
    landing.write(first, gzip.compress(json.dumps(base).encode()))
    crawl_objects(ROBOT, catalog, landing, list(landing.list(first)))  # version 1

    batches = []
    for n, column in enumerate(["firmware", "battery"]):
        hour = HOUR.replace(hour=9 + n)
        key = object_key(ROBOT.name, hour.replace(minute=2), object_id=column)
        landing.write(key, gzip.compress(json.dumps({**base, column: "x"}).encode()))
        batches.append(list(landing.list(hour_prefix(ROBOT.name, hour))))

    _in_lockstep(monkeypatch, Catalog, "read_table", 2)
    errors = run_all([lambda b=b: crawl_objects(ROBOT, catalog, landing, b) for b in batches])
    assert errors == []

    table = catalog.get_table(ROBOT.name)
    columns = {c["Name"] for c in table["StorageDescriptor"]["Columns"]}
    assert {"firmware", "battery"} <= columns
    assert table["VersionId"] == "3"
    versions = sorted(o.key for o in lake.list(f"catalog/{DB}/{ROBOT.name}/versions/"))
    assert versions == [f"catalog/{DB}/{ROBOT.name}/versions/{n}.json" for n in (1, 2, 3)]
    added = [json.loads(lake.read(v))["diff"]["added"] for v in versions[1:]]
    assert sorted(a for diff in added for a in diff) == ["battery", "firmware"]
    # the latest version file holds the table as committed
    assert (
        json.loads(lake.read(versions[-1]))["table"]["StorageDescriptor"]
        == table["StorageDescriptor"]
    )
    assert int(table["Parameters"]["objectCount"]) == 3  # statistics of all three hours


def test_two_writers_of_one_hours_dedup_keys_keep_both_sets(
    lake: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs saving keys for the same (event date, arrival hour) file at once."""

    def save(obj: str, first: int) -> None:
        con = duckdb.connect()
        keys = pa.table(
            {
                "dt": pa.array([HOUR.date()] * 50, pa.date32()),
                "hi": pa.array(range(first, first + 50), pa.uint64()),
                "lo": pa.array([7] * 50, pa.uint64()),
                "o": pa.array([0] * 50, pa.int32()),
            }
        )
        con.register("keys", keys)
        names = pa.array([obj])
        save_hour_keys(con, lake, ROBOT.name, HOUR, "SELECT * FROM keys", names, set())

    import lake.cleaning.run_keys as dedup_state

    real = dedup_state.compare_and_swap
    barrier = threading.Barrier(2, timeout=30)
    calls = threading.local()

    def racing_cas(storage, key, change, **kw):
        def change_after_both_read(current):
            if not getattr(calls, "waited", False):
                calls.waited = True
                barrier.wait()
            return change(current)

        return real(storage, key, change_after_both_read, **kw)

    monkeypatch.setattr(dedup_state, "compare_and_swap", racing_cas)
    errors = run_all([lambda: save("a", 0), lambda: save("b", 1000)])
    assert errors == []
    (state,) = lake.list(f"_state/keys/{ROBOT.name}/")
    table = pq.read_table(pa.BufferReader(lake.read(state.key)))
    assert table.num_rows == 100
    assert sorted(set(table["obj"].to_pylist())) == ["a", "b"]


def test_two_runs_racing_notify_each_anomaly_once(
    lake: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = pa.table({"anomaly_id": ["r1:2026-11-21T08", "r2:2026-11-21T08"], "summary": ["x", "y"]})
    published: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=30)

    def publish(subject: str, message: dict) -> str:
        with lock:
            published.append(message["anomaly_id"])
        return "m"

    real_claim = type(lake).write_if
    seen = threading.local()

    def claim_together(self, key, data, expected):  # both runs claim the first id at once
        if not getattr(seen, "done", False):
            seen.done = True
            barrier.wait()
        return real_claim(self, key, data, expected)

    monkeypatch.setattr(type(lake), "write_if", claim_together)
    runs: list[alerts.AlertRun] = []
    errors = run_all([lambda: runs.append(alerts.notify_new(lake, "anomalies", rows, publish))] * 2)
    assert errors == []
    assert sorted(published) == ["r1:2026-11-21T08", "r2:2026-11-21T08"]
    assert sorted(a for r in runs for a in r.already_notified) == sorted(published)


def test_a_crash_between_table_and_version_leaves_no_gap(
    lake: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = LocalStorage(tmp_path / "landing")
    catalog = Catalog(lake, DB)
    base = {"event_id": "e", "ts": "2026-11-21T08:00:00Z", "robot_id": "R1"}
    for n, column in enumerate(["", "firmware", "battery"]):
        key = object_key(ROBOT.name, HOUR.replace(hour=8 + n), object_id=f"o{n}")
        extra = {column: "x"} if column else {}
        landing.write(key, gzip.compress(json.dumps({**base, **extra}).encode()))
    hours = [
        list(landing.list(hour_prefix(ROBOT.name, HOUR.replace(hour=8 + n)))) for n in range(3)
    ]
    crawl_objects(ROBOT, catalog, landing, hours[0])

    def crash(*args, **kwargs):
        raise SystemExit("killed after the table commit")

    with monkeypatch.context() as m:
        m.setattr(Catalog, "put_version", crash)
        with pytest.raises(SystemExit):
            crawl_objects(ROBOT, catalog, landing, hours[1])
    assert catalog.get_table(ROBOT.name)["VersionId"] == "2"
    crawl_objects(ROBOT, catalog, landing, hours[2])

    versions = [json.loads(lake.read(catalog.version_key(ROBOT.name, n))) for n in (1, 2, 3)]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[1]["diff"] is None and "firmware" in json.dumps(versions[1]["table"])
    assert versions[2]["diff"]["added"] == ["battery"]
