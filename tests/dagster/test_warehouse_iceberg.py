"""The DuckDB warehouse exposes the cleaned and quarantine Iceberg tables: after a cleaned
run, `cleaned.<stream>` and `quarantine.<stream>` in the warehouse file read the committed
files in place; a reader holding the file open leaves the views pending, never fails a run."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime

import duckdb
from dagster import AssetKey, materialize

from lake.firehose import object_key
from orchestration.definitions import ingest_assets
from orchestration.resources import resources_from_env
from tests.warehouse_reader import warehouse_held_open

HOUR = "2026-11-21-08:00"
STREAM = "robot_telemetry"
CLEANED = AssetKey(["cleaned", STREAM])


def _record(i: int) -> dict:
    return {
        "event_id": f"w-{i}",
        "ts": f"2026-11-21T08:{i:02d}:00Z",
        "robot_id": "R01",
        "cow_id": f"C{i % 3}",
        "event_type": "milking_end",
        "milking": {"yield_kg": 10.0 + i, "duration_s": 400 + i},
    }


def _land(local_lake, minute: int, ids: range, broken: int = 0, **extra) -> None:
    records = (_record(i) | extra for i in ids)
    body = "".join(json.dumps(r) for r in records) + '{"event_id": "bad", "ts"' * broken
    key = object_key(STREAM, datetime(2026, 11, 21, 8, minute, tzinfo=UTC), object_id=f"o{minute}")
    local_lake["landing"].write(key, gzip.compress(body.encode()))


def _run(resources) -> dict:
    result = materialize(ingest_assets(STREAM), partition_key=HOUR, resources=resources)
    assert result.success
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == CLEANED]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _counts(path: str) -> tuple[int, int]:
    with duckdb.connect(path, read_only=True) as con:
        cleaned = con.execute(f"select count(*) from cleaned.{STREAM}").fetchone()[0]
        quarantined = con.execute(f"select count(*) from quarantine.{STREAM}").fetchone()[0]
    return cleaned, quarantined


def test_cleaned_and_quarantine_rows_are_queryable_in_the_warehouse_after_each_run(
    local_lake,
) -> None:
    _land(local_lake, 1, range(9), broken=1)
    first = _run(local_lake["resources"])
    assert (first["records_cleaned"], first["records_quarantined"]) == (9, 1)
    assert (first["warehouse_views_ready"], first["warehouse_pending"]) == (True, "")
    assert _counts(local_lake["warehouse_path"]) == (9, 1)

    _land(local_lake, 2, range(20, 23))
    second = _run(local_lake["resources"])
    assert second["batch_records_cleaned"] == 3
    assert _counts(local_lake["warehouse_path"]) == (12, 1)
    with duckdb.connect(local_lake["warehouse_path"], read_only=True) as con:
        rows = con.sql(
            f"select cast(dt as varchar), count(*), min(event_id), max(event_id) "
            f"from cleaned.{STREAM} group by dt"
        ).fetchall()
    assert rows == [("2026-11-21", 12, "w-0", "w-8")]


def test_a_reader_holding_the_warehouse_open_leaves_the_views_pending_not_a_failure(
    local_lake,
) -> None:
    resources = resources_from_env(replace(local_lake["settings"], warehouse_lock_wait_seconds=0.5))
    _land(local_lake, 1, range(4), broken=1)
    assert _run(resources)["warehouse_pending"] == ""

    with warehouse_held_open(local_lake["warehouse_path"]):
        # a new column: the view must be made again (new rows alone need no view change:
        # the view reads the links the run keeps, see the first test)
        _land(local_lake, 2, range(10, 12), temp_c=4.5)
        held = _run(resources)  # the run succeeds, its rows committed to the tables
        assert held["batch_records_cleaned"] == 2
        assert held["warehouse_views_ready"] is False
        assert "busy" in held["warehouse_pending"]
    # the view of before: the new rows (it reads the table's links), not the new column
    assert _counts(local_lake["warehouse_path"]) == (6, 1)
    with duckdb.connect(local_lake["warehouse_path"], read_only=True) as con:
        assert "temp_c" not in [c[0] for c in con.sql(f"describe cleaned.{STREAM}").fetchall()]

    again = _run(resources)  # nothing new to clean: the views are made all the same
    assert (again["batch_records_cleaned"], again["warehouse_pending"]) == (0, "")
    with duckdb.connect(local_lake["warehouse_path"], read_only=True) as con:
        temps = con.sql(f"select temp_c, count(*) from cleaned.{STREAM} group by 1 order by 1")
        assert temps.fetchall() == [(4.5, 2), (None, 4)]
