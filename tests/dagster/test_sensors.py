"""Sensors evaluated with build_sensor_context against real folders and a real instance."""

import json
from datetime import UTC, datetime

from dagster import DagsterInstance, build_sensor_context, materialize

from orchestration.definitions import defs, ingest_assets

REPO = defs.get_repository_def()


def _robot(i: int, ts: str) -> dict:
    return {
        "event_id": f"ev-{i}",
        "ts": ts,
        "robot_id": "R01",
        "cow_id": "C0001",
        "event_type": "heartbeat",
    }


def _evaluate(sensor_name: str, resources: dict, cursor: str | None, instance=None):
    sensor = REPO.get_sensor_def(sensor_name)
    with build_sensor_context(
        cursor=cursor, resources=resources, instance=instance, repository_def=REPO
    ) as context:
        return sensor.evaluate_tick(context)


def _land(write, landing, stream: str, hour: int, minute: int, name: str) -> None:
    """One object written at hour:minute holding one record of that minute."""
    written_at = datetime(2026, 11, 21, hour, minute, tzinfo=UTC)
    write(landing, stream, written_at, [_robot(minute, f"{written_at:%Y-%m-%dT%H:%M}:00Z")], name)


def test_landing_sensor_requests_one_run_per_new_batch_and_hour(local_lake, write_concatenated):
    landing, resources = local_lake["landing"], local_lake["resources"]
    _land(write_concatenated, landing, "robot_telemetry", 8, 5, "a")
    _land(write_concatenated, landing, "robot_telemetry", 9, 1, "b")
    _land(write_concatenated, landing, "clickstream", 9, 1, "c")

    first = _evaluate("robot_telemetry_landing_sensor", resources, None)
    assert sorted(r.partition_key for r in first.run_requests) == [
        "2026-11-21-08:00",
        "2026-11-21-09:00",
    ]
    assert all(r.tags["stream"] == "robot_telemetry" for r in first.run_requests)

    again = _evaluate("robot_telemetry_landing_sensor", resources, first.cursor)
    assert again.run_requests == []

    # A later object in an hour that already ran: a new run, never deduplicated by run key.
    _land(write_concatenated, landing, "robot_telemetry", 9, 2, "d")
    later = _evaluate("robot_telemetry_landing_sensor", resources, again.cursor)
    assert [r.partition_key for r in later.run_requests] == ["2026-11-21-09:00"]
    earlier_keys = {r.run_key for r in first.run_requests}
    assert later.run_requests[0].run_key not in earlier_keys
    assert later.run_requests[0].tags["landing/new_objects"] == "1"


def test_landing_sensor_skips_when_nothing_landed(local_lake):
    result = _evaluate("cloudtrail_landing_sensor", local_lake["resources"], None)
    assert result.run_requests == []
    assert "no new objects" in result.skip_message


def test_marts_sensor_requests_the_event_dates_cleaned_data_touched(local_lake, write_concatenated):
    landing, resources = local_lake["landing"], local_lake["resources"]
    records = [_robot(1, "2026-11-21T10:00:00Z"), _robot(2, "2026-11-19T23:00:00Z")]  # one is late
    write_concatenated(
        landing, "robot_telemetry", datetime(2026, 11, 21, 10, 1, tzinfo=UTC), records, "late"
    )
    instance = DagsterInstance.ephemeral()
    assert materialize(
        ingest_assets("robot_telemetry"),
        partition_key="2026-11-21-10:00",
        resources=resources,
        instance=instance,
    ).success

    result = _evaluate("marts_on_new_cleaned_data", resources, None, instance)
    assert sorted(r.partition_key for r in result.run_requests) == ["2026-11-19", "2026-11-21"]
    assert (
        _evaluate("marts_on_new_cleaned_data", resources, result.cursor, instance).run_requests
        == []
    )


def test_a_flood_of_objects_is_taken_a_bounded_batch_per_tick(
    local_lake, write_concatenated, monkeypatch
):
    import orchestration.sensors as sensors

    monkeypatch.setattr(sensors, "MAX_OBJECTS_PER_TICK", 10)
    landing, resources = local_lake["landing"], local_lake["resources"]
    for n in range(30):  # 30 objects over two arrival hours
        _land(write_concatenated, landing, "robot_telemetry", 8 + n // 20, n % 20, f"o{n:02d}")

    cursor, batches = None, []
    for _ in range(5):
        tick = _evaluate("robot_telemetry_landing_sensor", resources, cursor)
        cursor = tick.cursor
        hours = [r.partition_key for r in tick.run_requests]
        assert len(hours) == len(set(hours))  # one run per hour and tick
        batches.append(
            {r.partition_key: int(r.tags["landing/new_objects"]) for r in tick.run_requests}
        )
    assert [sum(b.values()) for b in batches] == [10, 10, 10, 0, 0]
    assert sum(b.get("2026-11-21-08:00", 0) for b in batches) == 20
    assert sum(b.get("2026-11-21-09:00", 0) for b in batches) == 10


def test_a_run_cleans_its_batch_not_objects_that_landed_after_the_tick(
    local_lake, write_concatenated
):
    landing, lake, resources = local_lake["landing"], local_lake["lake"], local_lake["resources"]
    for minute in (1, 2, 3):
        _land(write_concatenated, landing, "robot_telemetry", 8, minute, f"m{minute}")
    (request,) = _evaluate("robot_telemetry_landing_sensor", resources, None).run_requests
    _land(write_concatenated, landing, "robot_telemetry", 8, 4, "m4")  # lands after the tick

    result = materialize(
        ingest_assets("robot_telemetry"),
        partition_key=request.partition_key,
        run_config=request.run_config,
        resources=resources,
    )
    assert result.success
    manifests = lake.list("_state/cleaned/robot_telemetry/")
    cleaned = sorted(
        json.loads(lake.read(m.key))["source_key"].rsplit("-", 1)[-1] for m in manifests
    )
    assert cleaned == ["m1.gz", "m2.gz", "m3.gz"]
