"""Mart definitions (SQL files) and building a daily mart into the lake and a DuckDB file."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.marts import MARTS_DIR, MartDefinitionError, load_marts, parse_mart
from lake.parquet_writing import parquet_bytes
from lake.storage import LocalStorage
from lake.warehouse import Warehouse
from tests.mart_days import build_and_write

STREAMS = {"robot_telemetry", "clickstream", "cloudtrail"}
MART = "milking_per_cow_daily"
DAY = date(2026, 11, 21)
OTHER_DAY = date(2026, 11, 22)

CLEANED_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("robot_id", pa.string()),
        ("cow_id", pa.string()),
        ("event_type", pa.string()),
        ("milking_yield_kg", pa.float64()),
        ("milking_duration_s", pa.int32()),
    ]
)


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- definitions


def test_load_marts_reads_deps_and_header(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "cow_summary.sql",
        """-- description: Per-cow summary
-- partitioned_by: day
-- unique_key: dt, cow_id
-- diststyle: KEY
-- distkey: cow_id
-- sortkey: dt , cow_id
WITH ends AS (
    SELECT * FROM cleaned.robot_telemetry WHERE event_type = 'milking_end'
), visits AS (SELECT cow_id, count(*) AS n FROM ends GROUP BY cow_id)
SELECT e.dt, e.cow_id, v.n, b.x
FROM ends e JOIN visits v USING (cow_id) LEFT JOIN marts.base b ON b.cow_id = e.cow_id
""",
    )
    _write(
        tmp_path,
        "base.sql",
        "-- partitioned_by: none\nSELECT 1 AS x, 'c' AS cow_id FROM cleaned.clickstream\n",
    )

    marts = load_marts(STREAMS, tmp_path)
    assert sorted(marts) == ["base", "cow_summary"]
    spec = marts["cow_summary"]
    assert spec.name == "cow_summary"
    assert spec.path == tmp_path / "cow_summary.sql"
    assert spec.deps == (("cleaned", "robot_telemetry"), ("marts", "base"))
    assert spec.partitioned_by == "day"
    assert spec.unique_key == ("dt", "cow_id")
    assert spec.diststyle == "key"
    assert spec.distkey == "cow_id"
    assert spec.sortkey == ("dt", "cow_id")
    assert spec.description == "Per-cow summary"

    base = marts["base"]
    assert base.deps == (("cleaned", "clickstream"),)
    assert base.partitioned_by == "none"
    assert base.unique_key == ()
    assert base.diststyle == "auto"
    assert base.distkey is None


def test_shipped_mart_definition() -> None:
    spec = parse_mart(MARTS_DIR / f"{MART}.sql", STREAMS, {MART})
    assert spec.deps == (("cleaned", "robot_telemetry"),)
    assert spec.partitioned_by == "day"
    assert spec.unique_key == ("dt", "cow_id")
    assert spec.distkey == "cow_id"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM (",
        "SELECT a FROM cleaned.robot_telemetry WHERE (",
        "SELECT 'unterminated FROM cleaned.robot_telemetry",
    ],
)
def test_sql_that_does_not_parse_names_the_file(tmp_path: Path, sql: str) -> None:
    _write(tmp_path, "good.sql", "SELECT 1 AS dt FROM cleaned.robot_telemetry\n")
    _write(tmp_path, "broken_mart.sql", f"-- partitioned_by: day\n{sql}\n")
    with pytest.raises(MartDefinitionError, match=r"broken_mart\.sql"):
        load_marts(STREAMS, tmp_path)


@pytest.mark.parametrize(
    "source",
    ["cleaned.no_such_stream", "marts.no_such_mart", "raw.robot_telemetry", "robot_telemetry"],
)
def test_unknown_table_names_the_file(tmp_path: Path, source: str) -> None:
    _write(tmp_path, "bad_source.sql", f"SELECT 1 AS dt FROM {source}\n")
    with pytest.raises(MartDefinitionError, match=r"bad_source\.sql.*unknown table"):
        load_marts(STREAMS, tmp_path)


def test_other_definition_errors_name_the_file(tmp_path: Path) -> None:
    cases = {
        "two.sql": "SELECT 1 AS dt FROM cleaned.clickstream; SELECT 2 AS dt FROM cleaned.clickstream",
        "selfref.sql": "SELECT * FROM marts.selfref",
        "badheader.sql": "-- colour: blue\nSELECT 1 AS dt FROM cleaned.clickstream",
        "badpart.sql": "-- partitioned_by: week\nSELECT 1 AS dt FROM cleaned.clickstream",
    }
    for name, sql in cases.items():
        folder = tmp_path / name.removesuffix(".sql")
        _write(folder, name, sql)
        with pytest.raises(MartDefinitionError, match=name.replace(".", r"\.")):
            load_marts(STREAMS, folder)


# ---------------------------------------------------------------- building


def _row(
    eid: str,
    hh: int,
    mm: int,
    robot: str,
    cow: str | None,
    etype: str,
    kg: float | None,
    dur: int | None,
    day: date = DAY,
) -> dict[str, Any]:
    return {
        "event_id": eid,
        "ts": datetime(day.year, day.month, day.day, hh, mm, tzinfo=UTC),
        "robot_id": robot,
        "cow_id": cow,
        "event_type": etype,
        "milking_yield_kg": kg,
        "milking_duration_s": dur,
    }


DAY_FILE_A = [
    _row("1", 5, 0, "R1", "C1", "milking_end", 12.3, 400),
    _row("2", 5, 1, "R1", "C1", "milking_start", None, None),  # not an end: ignored
    _row("3", 9, 30, "R1", "C2", "milking_end", 10.1, 380),
    _row("4", 10, 0, "R1", None, "milking_end", 99.0, 999),  # no cow: ignored
]
DAY_FILE_B = [
    _row("5", 13, 15, "R2", "C1", "milking_end", 11.4, 415),  # C1's last milking, on R2
    _row("6", 21, 45, "R1", "C1", "milking_end", 9.8, 390),
    _row("7", 22, 0, "R2", "C3", "heartbeat", None, None),  # no milking_end for C3
]
OTHER_DAY_FILE = [
    _row("8", 1, 0, "R9", "C1", "milking_end", 50.0, 100, day=OTHER_DAY),
]


def _expected(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    ends = [r for r in rows if r["event_type"] == "milking_end" and r["cow_id"] is not None]
    out: dict[str, dict[str, Any]] = {}
    for cow in sorted({r["cow_id"] for r in ends}):
        mine = [r for r in ends if r["cow_id"] == cow]
        kgs = [r["milking_yield_kg"] for r in mine]
        durs = [r["milking_duration_s"] for r in mine]
        last = max(mine, key=lambda r: r["ts"])
        out[cow] = {
            "robot_id": last["robot_id"],
            "milkings": len(mine),
            "yield_kg": round(sum(kgs), 2),
            "avg_yield_kg": round(sum(kgs) / len(kgs), 2),
            "avg_duration_s": round(sum(durs) / len(durs), 1),
            "first_milking_at": min(r["ts"] for r in mine),
            "last_milking_at": last["ts"],
            "milked_fewer_than_twice": len(mine) < 2,
        }
    return out


def _put_cleaned(lake: LocalStorage, day: date, name: str, rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=CLEANED_SCHEMA)
    key = f"cleaned/robot_telemetry/dt={day}/{name}.parquet"
    lake.write(key, parquet_bytes(table))
    commit(lake, key)


def commit(lake: LocalStorage, *keys: str) -> None:
    """The ledger entry a cleaning run writes last (lake.cleaning.hour): its files are visible."""
    name = keys[0].rsplit("/", 1)[-1]
    lake.write(f"_state/cleaned/robot_telemetry/{name}.json", json.dumps({"files": keys}).encode())


@pytest.fixture
def spec():
    return parse_mart(MARTS_DIR / f"{MART}.sql", STREAMS, {MART})


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    lake = LocalStorage(tmp_path / "lake")
    _put_cleaned(lake, DAY, "a", DAY_FILE_A)
    _put_cleaned(lake, DAY, "b", DAY_FILE_B)
    _put_cleaned(lake, OTHER_DAY, "c", OTHER_DAY_FILE)
    # an object that arrived 48 hours (robot_telemetry's allowed lateness) after DAY ended:
    # DAY is complete (lake.day_completeness), so its flags are judged
    later = date(2026, 11, 24)
    _put_cleaned(
        lake,
        later,
        "20261124T00-later",
        [_row("9", 0, 5, "R1", None, "heartbeat", None, None, later)],
    )
    return lake


@pytest.fixture
def warehouse_path(tmp_path: Path) -> str:
    return str(tmp_path / "wh" / "warehouse.duckdb")


def _warehouse_rows(path: str, day: date | None = None) -> list[tuple]:
    con = duckdb.connect(path, read_only=True)
    try:
        where = f"WHERE dt = DATE '{day}'" if day else ""
        return con.execute(
            f"SELECT CAST(dt AS VARCHAR), cow_id, robot_id, milkings, yield_kg, avg_yield_kg, "
            f"avg_duration_s, milked_fewer_than_twice FROM marts.{MART} {where} ORDER BY dt, cow_id"
        ).fetchall()
    finally:
        con.close()


def test_build_mart_per_cow_aggregates(spec, lake: LocalStorage, warehouse_path: str) -> None:
    warehouse = Warehouse(warehouse_path)
    build, written = build_and_write(spec, DAY, lake, warehouse)

    expected = _expected(DAY_FILE_A + DAY_FILE_B)
    assert sorted(expected) == ["C1", "C2"]
    assert build.rows == len(expected)
    assert build.missing_inputs == []
    key = build.parquet_key
    assert re.fullmatch(rf"marts/{MART}/dt={DAY}/{MART}-[0-9a-f]{{16}}\.parquet", key)
    assert written["files"] == [key]
    assert [o.key for o in lake.list("marts/")] == [key]
    assert build.day_complete is True

    rows = pq.read_table(lake.path(key)).to_pylist()
    assert [r["cow_id"] for r in rows] == sorted(expected)
    for r in rows:
        exp = expected[r["cow_id"]]
        assert r["dt"] == DAY
        assert r["robot_id"] == exp["robot_id"]
        assert r["milkings"] == exp["milkings"]
        assert r["yield_kg"] == pytest.approx(exp["yield_kg"])
        assert r["avg_yield_kg"] == pytest.approx(exp["avg_yield_kg"])
        assert r["avg_duration_s"] == pytest.approx(exp["avg_duration_s"])
        assert r["first_milking_at"] == exp["first_milking_at"]
        assert r["last_milking_at"] == exp["last_milking_at"]
        assert r["milked_fewer_than_twice"] is exp["milked_fewer_than_twice"]

    in_wh = _warehouse_rows(warehouse_path)
    assert [(d, c) for d, c, *_ in in_wh] == [(str(DAY), c) for c in sorted(expected)]
    for _, cow, robot, milkings, yield_kg, _, _, fewer in in_wh:
        assert (robot, milkings, fewer) == (
            expected[cow]["robot_id"],
            expected[cow]["milkings"],
            expected[cow]["milked_fewer_than_twice"],
        )
        assert yield_kg == pytest.approx(expected[cow]["yield_kg"])


def test_building_the_same_day_twice_does_not_duplicate(
    spec, lake: LocalStorage, warehouse_path: str
) -> None:
    warehouse = Warehouse(warehouse_path)
    build_and_write(spec, DAY, lake, warehouse)
    build_and_write(spec, OTHER_DAY, lake, warehouse)
    first = _warehouse_rows(warehouse_path)
    build_and_write(spec, DAY, lake, warehouse)
    assert _warehouse_rows(warehouse_path) == first
    n_day = len(_expected(DAY_FILE_A + DAY_FILE_B))
    n_other = len(_expected(OTHER_DAY_FILE))
    assert len(first) == n_day + n_other
    assert len(_warehouse_rows(warehouse_path, DAY)) == n_day
    # one file a day: the rebuild's new file replaced the first one
    assert [o.key.rsplit("/", 1)[0] for o in lake.list("marts/")] == [
        f"marts/{MART}/dt={DAY}",
        f"marts/{MART}/dt={OTHER_DAY}",
    ]
    # the other day's own numbers are its own
    other = _warehouse_rows(warehouse_path, OTHER_DAY)
    assert [(c, m) for _, c, _, m, *_ in other] == [("C1", 1)]


def test_day_without_input_has_zero_rows(spec, lake: LocalStorage, warehouse_path: str) -> None:
    warehouse = Warehouse(warehouse_path)
    build_and_write(spec, DAY, lake, warehouse)
    empty_day = date(2026, 11, 25)
    build, written = build_and_write(spec, empty_day, lake, warehouse)
    assert build.rows == 0
    assert written["files"] == []
    assert build.missing_inputs == ["cleaned.robot_telemetry"]
    assert _warehouse_rows(warehouse_path, empty_day) == []
    assert list(lake.list(f"marts/{MART}/dt={empty_day}/")) == []
    assert len(_warehouse_rows(warehouse_path, DAY)) == 2  # untouched


def test_day_whose_input_disappeared_is_emptied(
    spec, lake: LocalStorage, warehouse_path: str
) -> None:
    warehouse = Warehouse(warehouse_path)
    build_and_write(spec, DAY, lake, warehouse)
    build_and_write(spec, OTHER_DAY, lake, warehouse)
    for o in list(lake.list(f"cleaned/robot_telemetry/dt={DAY}/")):
        lake.delete(o.key)
    build, written = build_and_write(spec, DAY, lake, warehouse)
    assert build.rows == 0
    assert _warehouse_rows(warehouse_path, DAY) == []
    assert list(lake.list(f"marts/{MART}/dt={DAY}/")) == []
    assert len(_warehouse_rows(warehouse_path, OTHER_DAY)) == 1


@pytest.mark.parametrize(
    "file_name",
    [
        "daily' FROM x; DROP TABLE marts.milking_per_cow_daily; --.sql",
        'a"b.sql',
        "Daily.sql",
        "1daily.sql",
        "daily-mart.sql",
        "dailyé.sql",
        "daily٣.sql",
        "x" * 64 + ".sql",
    ],
)
def test_a_mart_name_that_is_not_a_plain_identifier_is_refused(
    tmp_path: Path, file_name: str
) -> None:
    """The file name becomes a table name in DuckDB and Redshift SQL, an S3 prefix and
    an asset key: anything but a plain identifier is refused when marts load."""
    (tmp_path / file_name).write_text(
        "-- partitioned_by: day\nSELECT dt FROM cleaned.robot_telemetry\n"
    )
    with pytest.raises(MartDefinitionError, match="file name"):
        load_marts({"robot_telemetry"}, tmp_path)


@pytest.mark.parametrize(
    "name", ["Robot", "robot-telemetry", "robot telemetry", "robotß", "_x", "r" * 64]
)
def test_a_stream_name_that_is_not_a_plain_identifier_is_refused(tmp_path: Path, name: str) -> None:
    from lake.streams import StreamConfigError, load_streams

    path = tmp_path / "streams.yaml"
    body = {"streams": {name: {"format": "ndjson", "event_time": "ts", "dedup_key": "id"}}}
    path.write_text(json.dumps(body))  # JSON is YAML
    with pytest.raises(StreamConfigError, match="names are"):
        load_streams(path)
