"""Marts as Iceberg tables through Dagster: after landing, schema and cleaned for an hour
and the daily mart for its day, `marts.<mart>` scans back exactly the partition's rows; a
rebuild replaces the day; a mart reads only what the cleaned table has committed."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
from dagster import materialize

from assets.marts import build_mart_asset
from lake.firehose import object_key
from lake.iceberg.catalog import LakeTables
from lake.iceberg.scan import committed_keys
from lake.marts import parse_mart
from lake.parquet_writing import parquet_bytes
from lake.streams import load_streams
from orchestration.definitions import daily, ingest_assets

STREAMS = load_streams()
STREAM = "robot_telemetry"
DAY = date(2026, 11, 21)
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
SQL = (
    "-- unique_key: robot_id\n"
    "SELECT dt, robot_id, count(*) AS events, string_agg(event_id, ',' ORDER BY event_id) AS ids\n"
    "FROM cleaned.robot_telemetry GROUP BY dt, robot_id\n"
)


def _spec(tmp_path: Path):
    path = tmp_path / "marts_sql" / "robot_events.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(SQL)
    return parse_mart(path, set(STREAMS.streams), {"robot_events"})


def _land(local_lake, events: list[tuple[str, str]], object_id: str) -> str:
    records = [
        {"event_id": e, "ts": f"{HOUR:%Y-%m-%dT%H}:0{i}:00Z", "robot_id": robot}
        for i, (e, robot) in enumerate(events)
    ]
    key = object_key(STREAM, HOUR, object_id=object_id)
    body = "".join(json.dumps(r) for r in records).encode()
    local_lake["landing"].write(key, gzip.compress(body, mtime=0))
    return key


def _ingest(local_lake) -> None:
    assert materialize(
        ingest_assets(STREAM),
        partition_key=f"{HOUR:%Y-%m-%d-%H}:00",
        resources=local_lake["resources"],
    ).success


def _build(local_lake, spec) -> dict:
    result = materialize(
        [build_mart_asset(spec, STREAMS, daily)],
        partition_key=str(DAY),
        resources=local_lake["resources"],
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _mart_rows(local_lake) -> list[tuple]:
    table = LakeTables(local_lake["settings"]).catalog.load_table("marts.robot_events")
    rows = table.scan().to_arrow().to_pylist()
    return sorted((r["dt"], r["robot_id"], r["events"], r["ids"]) for r in rows)


def test_the_mart_table_scans_back_the_partition_and_a_rebuild_replaces_it(
    local_lake, tmp_path: Path
) -> None:
    _land(local_lake, [("a1", "R1"), ("a2", "R1"), ("a3", "R2")], "o1")
    _ingest(local_lake)
    spec = _spec(tmp_path)
    md = _build(local_lake, spec)

    [file] = md["files"]
    lake = local_lake["lake"]
    with duckdb.connect() as con:  # the lake's file, read by DuckDB on its own
        in_file = con.execute(
            "SELECT dt, robot_id, events, ids FROM read_parquet(?) ORDER BY robot_id",
            [str(lake.path(file))],
        ).fetchall()
    assert in_file == [(DAY, "R1", 2, "a1,a2"), (DAY, "R2", 1, "a3")]
    assert _mart_rows(local_lake) == in_file
    assert md["iceberg_table"] == "marts.robot_events"

    tables = LakeTables(local_lake["settings"])
    snapshot = tables.catalog.load_table("marts.robot_events").current_snapshot().snapshot_id
    again = _build(local_lake, spec)  # the same day rebuilt

    table = tables.catalog.load_table("marts.robot_events")
    assert _mart_rows(local_lake) == in_file  # row count and rows unchanged
    [task] = list(table.scan().plan_files())  # one data file in the day
    assert tables.key_of(task.file.file_path) == again["files"][0] != file
    assert table.current_snapshot().snapshot_id != snapshot
    assert table.snapshot_by_id(snapshot) is not None  # the first build's snapshot is history
    assert not lake.exists(file)  # deleted after the rebuild's commit


def test_a_mart_whose_input_was_re_cleaned_reads_only_committed_data(
    local_lake, tmp_path: Path
) -> None:
    key = _land(local_lake, [("a1", "R1"), ("a2", "R1")], "o1")
    _ingest(local_lake)
    spec = _spec(tmp_path)
    assert LakeTables(local_lake["settings"]).load("marts", "robot_events") is None
    _build(local_lake, spec)
    assert _mart_rows(local_lake) == [(DAY, "R1", 2, "a1,a2")]

    # the object is overwritten under its key (a new version): cleaning replaces its rows
    assert _land(local_lake, [("b1", "R2")], "o1") == key
    _ingest(local_lake)
    # a cleaning run killed before its commit: its file sits in the day's folder
    lake = local_lake["lake"]
    [committed] = committed_keys(LakeTables(local_lake["settings"]), "cleaned", STREAM, [DAY])
    stray_rows = duckdb.sql(
        f"SELECT * REPLACE ('zz' AS event_id) FROM read_parquet('{lake.path(committed)}')"
    ).to_arrow_table()
    lake.write(f"cleaned/{STREAM}/dt={DAY}/20261121T08-stray.parquet", parquet_bytes(stray_rows))

    md = _build(local_lake, spec)
    assert _mart_rows(local_lake) == [(DAY, "R2", 1, "b1")]
    assert md["dagster/row_count"] == 1
