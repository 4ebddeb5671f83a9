"""What marts read and who can block them: committed files only, literal paths, and a
warehouse that a reader holding it open never blocks."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lake.marts import parse_mart
from lake.parquet_writing import parquet_bytes
from lake.storage import LocalStorage
from lake.warehouse import Warehouse
from tests.mart_days import build_and_write
from tests.warehouse_reader import warehouse_held_open

DAY = date(2026, 11, 21)
STREAM = "robot_telemetry"
COUNT_SQL = """-- partitioned_by: day
SELECT dt, count(*) AS records, count(DISTINCT event_id) AS distinct_ids
FROM cleaned.robot_telemetry
WHERE dt = getvariable('mart_day')
GROUP BY dt
"""


@pytest.fixture
def spec(tmp_path: Path):
    path = tmp_path / "sql" / "record_count.sql"
    path.parent.mkdir()
    path.write_text(COUNT_SQL)
    return parse_mart(path, {STREAM}, {"record_count"})


def _file(lake: LocalStorage, name: str, ids: list[str], day: date = DAY) -> str:
    at = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    rows = pa.table(
        {
            "event_id": ids,
            "ts": pa.array([at] * len(ids), pa.timestamp("us", tz="UTC")),
            "robot_id": ["R1"] * len(ids),
        }
    )
    key = f"cleaned/{STREAM}/dt={day}/{name}"
    lake.write(key, parquet_bytes(rows))
    return key


def _commit(lake: LocalStorage, *keys: str) -> None:
    name = keys[0].rsplit("/", 1)[-1]
    lake.write(f"_state/cleaned/{STREAM}/{name}.json", json.dumps({"files": keys}).encode())


def _count(spec, lake: LocalStorage, tmp_path: Path, day: date = DAY) -> tuple[int, int]:
    build, _ = build_and_write(spec, day, lake, Warehouse(tmp_path / "wh" / "w.duckdb"))
    assert build.result is not None
    rows = build.result.to_pylist()
    return (rows[0]["records"], rows[0]["distinct_ids"]) if rows else (0, 0)


def test_files_of_a_run_not_committed_yet_are_not_read(spec, tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    _commit(lake, _file(lake, "20261121T08-a.parquet", ["a1", "a2"]))
    killed = _file(lake, "20261121T09-b.parquet", ["b1", "b2", "b3"])  # manifest never written
    leftover = _file(lake, "20261121T10-c.parquet", ["c1"])
    _commit(lake, f"cleaned/{STREAM}/dt=2026-11-22/20261121T10-c.parquet")  # lists another file
    assert _count(spec, lake, tmp_path) == (2, 2)

    _commit(lake, killed)  # the re-run commits it
    assert _count(spec, lake, tmp_path) == (5, 5)
    assert leftover  # still not named by its object's manifest: never read


@pytest.mark.parametrize("names", [["*.parquet", "a.parquet"], ["?.parquet", "b.parquet"]])
def test_keys_with_glob_characters_are_read_literally_once(spec, tmp_path: Path, names) -> None:
    lake = LocalStorage(tmp_path / "lake")
    for n, name in enumerate(names):
        _commit(lake, _file(lake, name, [f"{n}-1", f"{n}-2"]))
    assert _count(spec, lake, tmp_path) == (4, 4)


def test_a_bracket_key_reads_itself_not_the_files_it_matches(spec, tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    for name, ids in {"[ab].parquet": ["x"], "a.parquet": ["a"], "b.parquet": ["b"]}.items():
        _commit(lake, _file(lake, name, ids))
    assert _count(spec, lake, tmp_path) == (3, 3)
    # only the bracket file committed: it alone is read (a glob would read a and b)
    lake2 = LocalStorage(tmp_path / "lake2")
    _commit(lake2, _file(lake2, "[ab].parquet", ["x"]))
    _file(lake2, "a.parquet", ["a"])
    _file(lake2, "b.parquet", ["b"])
    assert _count(spec, lake2, tmp_path / "2") == (1, 1)


def test_a_reader_holding_the_warehouse_open_never_blocks_a_mart_run(spec, tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    warehouse = Warehouse(tmp_path / "wh" / "w.duckdb", lock_wait_s=0.5)
    _commit(lake, _file(lake, "d1.parquet", ["a", "b"]))
    _, written = build_and_write(spec, DAY, lake, warehouse)
    assert written["warehouse_pending"] == ""

    with warehouse_held_open(warehouse.path) as reader:
        ask = reader.ask
        query = "SELECT CAST(dt AS VARCHAR), records FROM marts.record_count ORDER BY dt"
        assert ask(query) == "[('2026-11-21', 2)]"
        # the next day, built while the reader holds the file: the lake and the reader
        # both have it, with no write to the warehouse file
        next_day = date(2026, 11, 22)
        _commit(lake, _file(lake, "d2.parquet", ["c", "d", "e"], next_day))
        second, written = build_and_write(spec, next_day, lake, warehouse)
        assert second.rows == 1 and written["warehouse_pending"] == ""
        assert lake.exists(second.parquet_key)
        assert ask(query) == "[('2026-11-21', 2), ('2026-11-22', 3)]"

        # a view still to make (here: its marker lost) waits briefly, then is left pending
        (warehouse.copies / "record_count" / ".view.sql").unlink()
        third, written = build_and_write(spec, DAY, lake, warehouse)
        assert "busy" in written["warehouse_pending"]
        assert third.rows == 1  # the lake side is done

    _, written = build_and_write(spec, DAY, lake, warehouse)  # the reader is gone: the view is made
    assert written["warehouse_pending"] == ""
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        assert con.execute("SELECT sum(records) FROM marts.record_count").fetchall() == [(5,)]


def test_a_warehouse_table_of_the_earlier_layout_becomes_a_view(spec, tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    path = tmp_path / "wh" / "w.duckdb"
    path.parent.mkdir()
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA marts; CREATE TABLE marts.record_count AS SELECT 1 AS old")
    _commit(lake, _file(lake, "d1.parquet", ["a"]))
    assert build_and_write(spec, DAY, lake, Warehouse(path))[1]["warehouse_pending"] == ""
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT records FROM marts.record_count").fetchall() == [(1,)]


def test_mart_folder_names_are_safe_and_one_per_name() -> None:
    from lake.literal_paths import GLOB_CHARACTERS
    from lake.warehouse import safe_name

    names = ["a.b", "a~2eb", "a*", "a[b]", "a?", "ü", "~u0000fc", "日本", "a/b", "..", "a b"]
    folders = [safe_name(n) for n in names]
    assert len(set(folders)) == len(names)
    for folder in folders:
        assert not GLOB_CHARACTERS & set(folder) and "/" not in folder and folder not in ("", "..")


def test_a_warehouse_that_cannot_be_written_leaves_the_lake_side_done(spec, tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    _commit(lake, _file(lake, "d1.parquet", ["a"]))
    broken = tmp_path / "wh" / "w.duckdb"
    broken.mkdir(parents=True)  # a folder where the file should be: DuckDB cannot open it
    build, written = build_and_write(spec, DAY, lake, Warehouse(broken, lock_wait_s=0.1))
    assert written["warehouse_pending"] != ""
    assert lake.exists(build.parquet_key)
    assert build.rows == 1
