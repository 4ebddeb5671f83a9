"""A day still in progress is marked incomplete and judged once its data is complete.

robot_telemetry allows 48 hours of lateness: 2026-11-21 is complete once an object that
arrived at 2026-11-24 00:00 or later has been cleaned (lake.day_completeness).
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from orchestration.definitions import defs, ingest_assets, mart_assets

MART = AssetKey(["marts", "milking_per_cow_daily"])
REPO = defs.get_repository_def()


def _milking(i: int, cow: str, ts: str) -> dict:
    return {
        "event_id": f"m-{i}",
        "ts": ts,
        "robot_id": "R01",
        "cow_id": cow,
        "event_type": "milking_end",
        "milking": {"yield_kg": 10.0 + i, "duration_s": 400},
    }


def _ingest(local_lake, write, instance, at: datetime, records: list[dict], name: str) -> None:
    write(local_lake["landing"], "robot_telemetry", at, records, name)
    assert materialize(
        ingest_assets("robot_telemetry"),
        partition_key=f"{at:%Y-%m-%d-%H}:00",
        resources=local_lake["resources"],
        instance=instance,
    ).success


def _build_day(local_lake, instance) -> tuple[list[tuple], dict]:
    [mart] = [a for a in mart_assets if a.key == MART]
    result = materialize(
        [mart], partition_key="2026-11-21", resources=local_lake["resources"], instance=instance
    )
    [event] = result.get_asset_materialization_events()
    with duckdb.connect(local_lake["warehouse_path"], read_only=True) as con:
        rows = con.sql(
            "SELECT cow_id, milkings, milked_fewer_than_twice, day_complete "
            "FROM marts.milking_per_cow_daily ORDER BY cow_id"
        ).fetchall()
    return rows, {k: v.value for k, v in event.materialization.metadata.items()}


def _sensor_days(instance, local_lake, cursor: str | None) -> tuple[list[str], str]:
    sensor = REPO.get_sensor_def("marts_on_new_cleaned_data")
    with build_sensor_context(
        cursor=cursor, resources=local_lake["resources"], instance=instance, repository_def=REPO
    ) as context:
        result = sensor.evaluate_tick(context)
    return sorted(r.partition_key for r in result.run_requests), result.cursor


def test_a_half_day_raises_no_flag_and_the_complete_day_does(
    local_lake, write_concatenated
) -> None:
    instance = DagsterInstance.ephemeral()
    half_day = [
        _milking(1, "C1", "2026-11-21T05:00:00Z"),
        _milking(2, "C1", "2026-11-21T10:00:00Z"),
        _milking(3, "C2", "2026-11-21T06:00:00Z"),  # milked once so far
    ]
    noon = datetime(2026, 11, 21, 12, 5, tzinfo=UTC)
    _ingest(local_lake, write_concatenated, instance, noon, half_day, "noon")
    days, cursor = _sensor_days(instance, local_lake, None)
    assert days == ["2026-11-21"]  # the event date; no day is complete yet

    rows, metadata = _build_day(local_lake, instance)
    assert rows == [("C1", 2, None, False), ("C2", 1, None, False)]
    assert metadata["incomplete_days"] == ["2026-11-21"]

    # the stream moves on: an object arrives 48 hours after the day's end
    later = datetime(2026, 11, 24, 0, 10, tzinfo=UTC)
    beat = {"event_id": "hb", "ts": "2026-11-24T00:09:00Z", "robot_id": "R01"}
    _ingest(local_lake, write_concatenated, instance, later, [beat | {"event_type": "hb"}], "l")
    days, _ = _sensor_days(instance, local_lake, cursor)
    # the event date, and the days whose end + 48 h falls in (11-21 12:00, 11-24 00:00]
    assert days == ["2026-11-19", "2026-11-20", "2026-11-21", "2026-11-24"]

    rows, metadata = _build_day(local_lake, instance)
    assert rows == [("C1", 2, False, True), ("C2", 1, True, True)]
    assert metadata["incomplete_days"] == []
