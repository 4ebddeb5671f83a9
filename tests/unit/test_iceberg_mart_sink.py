"""The mart lake sink with the lake's tables, without Dagster: each build's file registered
in `marts.<mart>`, a rebuild replacing its day in one commit, readers and the warehouse
seeing committed files only."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.iceberg.catalog import LakeTables
from lake.mart_build import MartBuild
from lake.mart_inputs import MartInputs
from lake.mart_sinks import LakeParquet, WarehouseView, write_day
from lake.marts import parse_mart
from lake.parquet_writing import parquet_bytes
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.warehouse import Warehouse

DAY, OTHER_DAY = date(2026, 11, 21), date(2026, 11, 22)
SQL = "-- unique_key: robot_id\nSELECT dt, robot_id, n FROM cleaned.robot_telemetry\n"


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "lake")


@pytest.fixture
def tables(lake: LocalStorage, tmp_path: Path) -> LakeTables:
    settings = replace(
        DEFAULTS, lake_uri=lake.uri, iceberg_catalog_uri=f"sqlite:///{tmp_path / 'ice.db'}"
    )
    return LakeTables(settings)


def _spec(tmp_path: Path, name: str = "robot_counts", sql: str = SQL):
    path = tmp_path / "sql" / f"{name}.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(sql)
    return parse_mart(path, {"robot_telemetry"}, {name})


def _rows(day: date, counts: dict[str, int]) -> pa.Table:
    return pa.table(
        {
            "dt": pa.array([day] * len(counts), pa.date32()),
            "robot_id": list(counts),
            "n": pa.array(list(counts.values()), pa.int64()),
        }
    )


def _scan(tables: LakeTables, name: str = "robot_counts") -> list[dict]:
    table = tables.catalog.load_table(f"marts.{name}")
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: (r["dt"], r["robot_id"]))


def _data_files(tables: LakeTables, name: str = "robot_counts") -> list[str]:
    table = tables.catalog.load_table(f"marts.{name}")
    return sorted(t.file.file_path for t in table.scan().plan_files())


def test_a_build_is_registered_and_a_rebuild_replaces_its_day_in_one_commit(
    lake: LocalStorage, tables: LakeTables, tmp_path: Path
) -> None:
    spec = _spec(tmp_path)
    sink = LakeParquet(tables)
    first = MartBuild(spec, DAY, result=_rows(DAY, {"R1": 3, "R2": 1}))
    other = MartBuild(spec, OTHER_DAY, result=_rows(OTHER_DAY, {"R1": 7}))
    written = write_day(first, lake, [sink])
    write_day(other, lake, [sink])

    assert written["files"] == [first.parquet_key]
    assert (written["iceberg_table"], written["iceberg_files_added"]) == ("marts.robot_counts", 1)
    assert _scan(tables) == [
        {"dt": DAY, "robot_id": "R1", "n": 3},
        {"dt": DAY, "robot_id": "R2", "n": 1},
        {"dt": OTHER_DAY, "robot_id": "R1", "n": 7},
    ]
    spec_fields = tables.catalog.load_table("marts.robot_counts").spec().fields
    assert [(f.name, str(f.transform)) for f in spec_fields] == [("dt", "identity")]

    snapshots_before = len(tables.catalog.load_table("marts.robot_counts").snapshots())
    rebuilt = MartBuild(spec, DAY, result=_rows(DAY, {"R1": 4}))
    again = write_day(rebuilt, lake, [sink])

    assert rebuilt.parquet_key != first.parquet_key  # a snapshot's file is never rewritten
    assert (again["iceberg_files_added"], again["iceberg_files_removed"]) == (1, 1)
    assert _scan(tables) == [
        {"dt": DAY, "robot_id": "R1", "n": 4},
        {"dt": OTHER_DAY, "robot_id": "R1", "n": 7},
    ]
    assert _data_files(tables) == sorted(
        [tables.uri_of(rebuilt.parquet_key), tables.uri_of(other.parquet_key)]
    )
    # the earlier file is deleted once the commit is in: one file a day in the folder too
    assert [o.key for o in lake.list(f"marts/robot_counts/dt={DAY}/")] == [rebuilt.parquet_key]
    table = tables.catalog.load_table("marts.robot_counts")
    assert len(table.snapshots()) > snapshots_before
    assert table.current_snapshot().summary["lake.partition"] == f"dt={DAY}"


def test_an_empty_day_removes_its_rows_and_keeps_its_typed_file(
    lake: LocalStorage, tables: LakeTables, tmp_path: Path
) -> None:
    spec = _spec(tmp_path)
    sink = LakeParquet(tables)
    write_day(MartBuild(spec, DAY, result=_rows(DAY, {"R1": 3})), lake, [sink])
    write_day(MartBuild(spec, OTHER_DAY, result=_rows(OTHER_DAY, {"R2": 2})), lake, [sink])
    empty = MartBuild(spec, DAY, result=_rows(DAY, {}))
    written = write_day(empty, lake, [sink])

    assert written["files"] == [empty.parquet_key]  # for the Redshift load and the warehouse
    assert pq.read_schema(lake.path(empty.parquet_key)).names == ["dt", "robot_id", "n"]
    assert written["iceberg_files_removed"] == 1 and written["iceberg_files_added"] == 0
    assert _scan(tables) == [{"dt": OTHER_DAY, "robot_id": "R2", "n": 2}]
    # a mart reading it finds no file that day, and the table's columns
    found = MartInputs(lake, tables).files("marts", "robot_counts", [DAY])
    assert found.keys == [] and found.schema.names == ["dt", "robot_id", "n"]

    skipped = MartBuild(spec, OTHER_DAY)  # an input not built: the partition is removed
    assert write_day(skipped, lake, [sink])["files"] == []
    assert _scan(tables) == []
    assert list(lake.list(f"marts/robot_counts/dt={OTHER_DAY}/")) == []


def test_an_unpartitioned_mart_is_replaced_whole_and_its_metadata_kept(
    lake: LocalStorage, tables: LakeTables, tmp_path: Path
) -> None:
    sql = "-- partitioned_by: none\nSELECT robot_id, n FROM cleaned.robot_telemetry\n"
    spec = _spec(tmp_path, "all_counts", sql)
    sink = LakeParquet(tables)
    for counts in ({"R1": 1, "R2": 2}, {"R3": 3}):
        rows = pa.table(
            {"robot_id": list(counts), "n": pa.array(list(counts.values()), pa.int64())}
        )
        built = MartBuild(spec, None, result=rows)
        write_day(built, lake, [sink])

    table = tables.catalog.load_table("marts.all_counts")
    assert table.scan().to_arrow().to_pylist() == [{"robot_id": "R3", "n": 3}]
    assert table.spec().fields == ()  # nothing to partition by
    assert _data_files(tables, "all_counts") == [tables.uri_of(built.parquet_key)]
    listed = [o.key for o in lake.list("marts/all_counts/")]
    assert [k for k in listed if k.endswith(".parquet")] == [built.parquet_key]
    assert any(k.startswith("marts/all_counts/metadata/") for k in listed)  # left alone


def test_readers_and_the_warehouse_see_committed_files_only(
    lake: LocalStorage, tables: LakeTables, tmp_path: Path
) -> None:
    spec = _spec(tmp_path)
    warehouse = Warehouse(tmp_path / "wh" / "w.duckdb")
    sinks = [LakeParquet(tables), WarehouseView(warehouse, tables=tables)]
    built = MartBuild(spec, DAY, result=_rows(DAY, {"R1": 3}))
    write_day(built, lake, sinks)
    # a run killed between writing its file and its commit: the file is in the folder
    stray = f"marts/robot_counts/dt={DAY}/robot_counts-ffffffffffffffff.parquet"
    lake.write(stray, parquet_bytes(_rows(DAY, {"R9": 99})))
    other = MartBuild(spec, OTHER_DAY, result=_rows(OTHER_DAY, {"R2": 2}))
    assert write_day(other, lake, sinks)["warehouse_pending"] == ""

    inputs = MartInputs(lake, tables)
    assert inputs.files("marts", "robot_counts", [DAY]).keys == [built.parquet_key]
    assert inputs.files("marts", "robot_counts", None).keys == [
        built.parquet_key,
        other.parquet_key,
    ]
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        got = con.sql("SELECT robot_id, n FROM marts.robot_counts ORDER BY robot_id").fetchall()
    assert got == [("R1", 3), ("R2", 2)]
    assert MartInputs(lake, tables).files("marts", "never_built", [DAY]).keys == []
