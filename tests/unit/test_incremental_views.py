"""The warehouse views of a stream read a folder of links kept in step with the Iceberg
tables' snapshots: a batch that only adds files needs no view change (a reader holding
the warehouse open sees the rows), readers see committed files only, once each."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.cleaning.hour import clean_hour
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.commit import TableShape, commit_files
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.table_links import STATE
from lake.warehouse import Warehouse
from tests.incremental_lake import HOUR, SPEC, TABLE, land, landed
from tests.warehouse_reader import warehouse_held_open


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


@pytest.fixture
def env(tmp_path: Path) -> dict:
    settings = replace(
        DEFAULTS,
        landing_uri=(tmp_path / "landing").as_uri(),
        lake_uri=(tmp_path / "lake").as_uri(),
        warehouse_path=str(tmp_path / "warehouse.duckdb"),
        iceberg_catalog_uri=f"sqlite:///{tmp_path / 'iceberg.db'}",
        warehouse_lock_wait_seconds=0.3,
    )
    return {
        "landing": LocalStorage(tmp_path / "landing"),
        "lake": LocalStorage(tmp_path / "lake"),
        "settings": settings,
        "tables": LakeTables(settings),
        "warehouse": Warehouse(settings.warehouse_path, settings.warehouse_lock_wait_seconds),
        "links": tmp_path / "warehouse_tables" / "cleaned" / SPEC.name,
    }


def land_and_clean(env: dict, minute: int, ids: list[str], full_refresh: bool = False) -> None:
    if ids:
        land(env["landing"], minute, ids)
    clean_hour(
        SPEC,
        TABLE,
        env["landing"],
        env["lake"],
        HOUR,
        landed(env["landing"]),
        full_refresh=full_refresh,
        settings=env["settings"],
        tables=env["tables"],
    )


def expose(env: dict):
    return env["warehouse"].expose_stream(env["lake"], env["tables"], SPEC.name)


def event_ids(env: dict) -> list[str]:
    with duckdb.connect(env["settings"].warehouse_path, read_only=True) as con:
        rows = con.sql(f"select event_id from cleaned.{SPEC.name} order by 1").fetchall()
    return [r[0] for r in rows]


def test_new_files_need_no_view_change_a_reader_holding_the_file_sees_them(env) -> None:
    land_and_clean(env, 1, ["a", "b"])
    assert expose(env).view_ready
    with warehouse_held_open(env["settings"].warehouse_path) as reader:
        land_and_clean(env, 2, ["c"])
        refresh = expose(env)  # the warehouse is held: a view change would be pending
        assert (refresh.view_ready, refresh.pending) == (True, None)
        assert reader.ask(f"select count(*) from cleaned.{SPEC.name}") == "[(3,)]"
    assert event_ids(env) == ["a", "b", "c"]


def test_a_full_refresh_shows_each_row_once_and_uncommitted_files_never(env) -> None:
    land_and_clean(env, 1, ["a", "b"])
    land_and_clean(env, 2, ["c"])
    expose(env)
    land_and_clean(env, 1, [], full_refresh=True)  # every file replaced by a new one
    # a file a killed run left in the table's dt= folder, never committed
    day = env["lake"].root / "cleaned" / SPEC.name / "dt=2026-11-21"
    pq.write_table(pa.table({"event_id": ["ghost"]}), day / "orphan.parquet")
    assert expose(env).view_ready
    assert event_ids(env) == ["a", "b", "c"]
    links = [p.name for p in (env["links"] / day.name).iterdir()]
    # the refresh's two small objects share one file (lake.cleaning.writing, with tables)
    assert len(links) == 1 and "orphan.parquet" not in links


def test_links_of_an_unknown_snapshot_are_rebuilt_from_the_table(env) -> None:
    land_and_clean(env, 1, ["a"])
    expose(env)
    stray = env["links"] / "dt=2026-11-21" / "stray.parquet"
    stray.symlink_to(env["lake"].root / "nowhere.parquet")
    (env["links"] / STATE).write_text(json.dumps({"snapshot": 12345, "files": 9}))
    land_and_clean(env, 2, ["b"])
    assert expose(env).view_ready
    assert not stray.is_symlink()
    assert event_ids(env) == ["a", "b"]


def test_a_file_whose_name_is_a_glob_is_read_once_by_a_safe_link_name(env) -> None:
    land_and_clean(env, 1, ["a"])
    table = env["tables"].load(CLEANED, SPEC.name)
    day = env["lake"].root / "cleaned" / SPEC.name / "dt=2026-11-21"
    schema = table.schema().as_arrow()
    hostile = "x[1]*.parquet"  # as a glob it would also match x1-more.parquet
    for name, event in ((hostile, "h"), ("x1-more.parquet", "m")):
        rows = {f.name: [None] for f in schema} | {
            "event_id": [event],
            "ts": [datetime(2026, 11, 21, 8, 5, tzinfo=UTC)],
            "_source_key": [f"k-{event}"],
        }
        pq.write_table(pa.table(rows, schema=schema), day / name)
    files = [f"cleaned/{SPEC.name}/dt=2026-11-21/{n}" for n in (hostile, "x1-more.parquet")]
    column = next(c.name for c in table.schema().columns if c.name == "ts")
    commit_files(env["tables"], CLEANED, SPEC.name, files, TableShape(column, ("_source_key",)))
    assert expose(env).view_ready
    assert event_ids(env) == ["a", "h", "m"]
    names = sorted(p.name for p in (env["links"] / "dt=2026-11-21").iterdir())
    assert not any(set("[]*?{}") & set(n) for n in names)
