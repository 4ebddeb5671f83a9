"""CLEAN_WORKERS=2: a range run's hours cleaned in two chunks side by side give what the
serial run gives (cleaned and quarantine rows, counts, per-hour metadata, checks, the dedup
keys later runs see), records redelivered across the chunks' boundary and within a chunk
included; a chunk that fails leaves nothing committed. Real Parquet, DuckDB and Iceberg
tables (SQLite catalog) in local folders."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning import hour as hour_module
from lake.cleaning.parallel import split_hours
from lake.cleaning.run import CleanRunResult, RunOptions, clean_run
from lake.firehose import hour_prefix, object_key
from lake.iceberg.catalog import LakeTables
from lake.pii import PIIKey
from lake.settings import DEFAULTS, Settings
from lake.storage import LocalStorage, open_storage
from lake.streams import load_streams
from tests.incremental_lake import ROBOT_COLUMNS, catalog_table

SPEC = load_streams()["robot_telemetry"]
DATABASE = "lake_db"
FIRST = datetime(2026, 11, 21, 8, tzinfo=UTC)
HOURS = [FIRST + timedelta(hours=n) for n in range(6)]  # 08:00 .. 13:00
KEY = PIIKey(b"unit-test-pii-key", "test")
TOKEN = re.compile(r"-[0-9a-f]{12}\.parquet")  # a run's file-name token
RUN_TIMES = ("_ingested_at", "quarantined_at")


class Log:
    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


def rec(eid: str, hour: int, minute: int = 0) -> str:
    return json.dumps(
        {"event_id": eid, "ts": f"2026-11-21T{hour:02d}:{minute:02d}:00Z", "robot_id": "R1"}
    )


# (hour, minute, object id): records. Chunks of 2 workers: 08-10 and 11-13 (asserted below)
OBJECTS = {
    (8, 1, "a"): [rec("e1", 8), rec("e2", 8, 1), rec("e3", 8, 2), rec("e3", 8, 2)],
    (9, 2, "b"): [rec("e2", 8, 1), rec("e4", 9), '{"event_id": "bad", "ts": '],  # e2: same chunk
    (10, 3, "c"): [rec("e5", 10), rec("e5", 10)],
    (11, 4, "d"): [rec("e1", 8), rec("e6", 11)],  # e1: across the boundary
    (11, 5, "d2"): [rec("e2", 8, 1)],  # every record a copy from the first chunk
    (12, 6, "e"): [rec("e1", 8), rec("e7", 12), rec("e3", 8, 2)],  # e1 again, e3 across
    (13, 7, "f"): [rec("e8", 13), rec("e6", 11), *(rec(f"e9{n}", 13, n) for n in range(10))],
}


def local(uri: str) -> LocalStorage:
    storage = open_storage(uri)
    assert isinstance(storage, LocalStorage)
    return storage


def land(landing: LocalStorage, objects: dict = OBJECTS) -> None:
    for (hour, minute, oid), records in objects.items():
        key = object_key(SPEC.name, FIRST.replace(hour=hour, minute=minute), object_id=oid)
        landing.write(key, gzip.compress("".join(records).encode(), mtime=0))


def make_lake(root: Path, workers: int) -> Settings:
    settings = replace(
        DEFAULTS,
        landing_uri=(root / "landing").as_uri(),
        lake_uri=(root / "lake").as_uri(),
        warehouse_path=str(root / "warehouse.duckdb"),
        clean_workers=workers,
    )
    table = catalog_table(SPEC.name, ROBOT_COLUMNS, VersionId="1")
    LocalStorage(root / "lake").write(
        layout.catalog_table(DATABASE, SPEC.name), json.dumps(table).encode()
    )
    land(LocalStorage(root / "landing"))
    return settings


def run(settings: Settings, hours: list[datetime] = HOURS, **options: Any) -> CleanRunResult:
    storages = local(settings.landing_uri), local(settings.lake_uri)
    return clean_run(settings, SPEC, DATABASE, storages, KEY, hours, RunOptions(**options), Log())


def rows(settings: Settings, layer: str, on_disk_too: bool = True) -> list[dict]:
    """Every row of the layer's Iceberg table and (`on_disk_too`) of its files on disk:
    the same, no file left over (a later run's replaced files stay for snapshot expiry)."""
    lake = local(settings.lake_uri)
    on_disk = [
        r
        for info in lake.list(f"{layer}/{SPEC.name}/")
        if info.key.endswith(".parquet")
        for r in pq.read_table(lake.path(info.key)).to_pylist()
    ]
    table = LakeTables(settings).load(layer, SPEC.name)
    registered = table.scan().to_arrow().to_pylist() if table is not None else []
    if on_disk_too:
        assert sorted(map(_plain, on_disk), key=repr) == sorted(map(_plain, registered), key=repr)
    return sorted(map(_plain, registered), key=repr)


def _plain(row: dict) -> dict:
    return {k: TOKEN.sub(".parquet", str(v)) for k, v in row.items() if k not in RUN_TIMES}


def outcome(result: CleanRunResult) -> dict:
    """The run's counts, per-hour metadata and checks, run-bound names and times left out."""
    hours = {
        hour: {k: v for k, v in meta.items() if not k.startswith("dagster/")}
        for hour, meta in result.hour_metadata.items()
    }
    metadata = {k: v for k, v in result.metadata.items() if not k.startswith("iceberg_")}
    checks = [(c.name, c.passed, c.metadata) for c in result.checks]
    text = TOKEN.sub(".parquet", json.dumps([hours, metadata, checks], default=str))
    return json.loads(re.sub(r"/(one|two)/", "/root/", text))  # the two lakes' folders


def test_the_chunks_split_the_redeliveries(tmp_path: Path) -> None:
    """What the parity test stands on: two chunks, 08-10 and 11-13."""
    landing = LocalStorage(tmp_path)
    land(landing)
    chunks = split_hours({h: list(landing.list(hour_prefix(SPEC.name, h))) for h in HOURS}, 2)
    assert [sorted(c) for c in chunks] == [HOURS[:3], HOURS[3:]]


def test_two_workers_give_the_serial_run(tmp_path: Path) -> None:
    serial, parallel = make_lake(tmp_path / "one", 1), make_lake(tmp_path / "two", 2)
    one, two = run(serial), run(parallel)

    assert outcome(two) == outcome(one)
    cleaned = rows(parallel, "cleaned")
    assert cleaned == rows(serial, "cleaned")
    assert rows(parallel, "quarantine") == rows(serial, "quarantine")
    ids = sorted(r["event_id"] for r in cleaned)
    assert ids == sorted([f"e{n}" for n in range(1, 9)] + [f"e9{n}" for n in range(10)])
    kept_in = {r["event_id"]: r["_source_key"] for r in cleaned}
    assert all("/2026/11/21/08/" in kept_in[e] for e in ("e1", "e2", "e3"))  # the first copies
    total = two.total
    assert (total.records_in, total.records_cleaned) == (27, 18)
    assert (total.records_quarantined, total.duplicates_dropped) == (1, 8)

    # the keys later runs see: a redelivery of every kept record is dropped in both lakes,
    # and a full refresh of 08:00 keeps its records (no later hour holds their keys)
    later = {(14, 1, "g"): [rec(e, 8) for e in ("e1", "e2")] + [rec("e6", 11), rec("e10", 14)]}
    for settings in (serial, parallel):
        land(local(settings.landing_uri), later)
        again = run(settings, [FIRST.replace(hour=14)], from_mark=False)
        assert (again.total.records_cleaned, again.total.duplicates_dropped) == (1, 3)
        refreshed = run(settings, [FIRST], full_refresh=True)
        assert (refreshed.total.records_cleaned, refreshed.total.duplicates_dropped) == (3, 1)
    assert rows(parallel, "cleaned", False) == rows(serial, "cleaned", False)


def test_a_failing_chunk_leaves_nothing_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_lake(tmp_path / "two", 2)
    clean_group = hour_module._clean_group

    def failing(spec, table, landing, lake, todo, *args: Any, **kwargs: Any) -> None:
        clean_group(spec, table, landing, lake, todo, *args, **kwargs)
        if FIRST.replace(hour=12) in todo:
            raise OSError("the second chunk's worker died")

    monkeypatch.setattr(hour_module, "_clean_group", failing)
    with pytest.raises(OSError, match="second chunk"):
        run(settings)
    lake = local(settings.lake_uri)
    assert not list(lake.list("_state/cleaned/"))  # no ledger: every object is still new
    tables = LakeTables(settings)
    assert all(
        (t := tables.load(layer, SPEC.name)) is None or t.current_snapshot() is None
        for layer in ("cleaned", "quarantine")
    )

    monkeypatch.setattr(hour_module, "_clean_group", clean_group)
    serial = make_lake(tmp_path / "one", 1)
    assert outcome(run(settings)) == outcome(run(serial))  # the next run cleans them all
    assert rows(settings, "cleaned", False) == rows(serial, "cleaned", False)  # orphans stay
