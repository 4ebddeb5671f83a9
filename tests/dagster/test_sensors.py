"""Sensors evaluated with build_sensor_context against real folders and a real instance."""

import json
from dataclasses import replace
from datetime import UTC, datetime

from dagster import DagsterInstance, build_sensor_context, materialize

from orchestration.definitions import defs, ingest_assets, ingest_jobs
from orchestration.sensors import build_landing_sensor

REPO = defs.get_repository_def()


def _robot(i: int, ts: str) -> dict:
    return {
        "event_id": f"ev-{i}",
        "ts": ts,
        "robot_id": "R01",
        "cow_id": "C0001",
        "event_type": "heartbeat",
    }


def _evaluate(sensor_name: str, resources: dict, cursor: str | None, instance=None, sensor=None):
    sensor = sensor or REPO.get_sensor_def(sensor_name)
    instance = instance or DagsterInstance.ephemeral()  # the sensors look at its run queue
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


def test_a_flood_of_objects_is_taken_a_bounded_batch_per_tick(local_lake, write_concatenated):
    ten_a_tick = replace(local_lake["settings"], max_objects_per_tick=10)
    sensor = build_landing_sensor("robot_telemetry", ingest_jobs["robot_telemetry"], ten_a_tick)
    landing, resources = local_lake["landing"], local_lake["resources"]
    for n in range(30):  # 30 objects over two arrival hours
        _land(write_concatenated, landing, "robot_telemetry", 8 + n // 20, n % 20, f"o{n:02d}")

    cursor, batches = None, []
    for _ in range(5):
        tick = _evaluate(sensor.name, resources, cursor, sensor=sensor)
        cursor = tick.cursor
        hours = [r.partition_key for r in tick.run_requests]
        assert len(hours) == len(set(hours))  # one run per hour and tick
        batches.append(
            {r.partition_key: int(r.tags["landing/new_objects"]) for r in tick.run_requests}
        )
    assert [sum(b.values()) for b in batches] == [10, 10, 10, 0, 0]
    assert sum(b.get("2026-11-21-08:00", 0) for b in batches) == 20
    assert sum(b.get("2026-11-21-09:00", 0) for b in batches) == 10


def test_a_run_cleans_its_batch_and_objects_that_landed_after_the_tick(
    local_lake, write_concatenated
):
    """The run cleans what its hour holds unprocessed when it starts: a batch that joined it
    while it was queued (tests/dagster/test_coalescing_sensors.py) is never left behind."""
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
    assert cleaned == ["m1.gz", "m2.gz", "m3.gz", "m4.gz"]


def test_reconciliation_covers_the_current_hour_after_a_grace(local_lake):
    """An object the landing scan skipped (named below its floor) in the current hour is
    found by reconciliation once older than the grace; a fresh one is left to the scan."""
    import os
    import time

    from lake.firehose import object_key

    landing, resources = local_lake["landing"], local_lake["resources"]
    now = datetime.now(UTC)
    missed = object_key("robot_telemetry", now.replace(minute=0, second=1), object_id="missed")
    fresh = object_key("robot_telemetry", now.replace(minute=0, second=2), object_id="fresh")
    for key in (missed, fresh):
        landing.write(key, b'{"event_id": "x"}')
    an_hour_ago = time.time() - 3600
    os.utime(landing.path(missed), (an_hour_ago, an_hour_ago))

    tick = _evaluate("robot_telemetry_reconciliation", resources, None)
    (request,) = tick.run_requests
    assert request.partition_key == f"{now:%Y-%m-%d-%H}:00"
    assert request.tags["reconcile/new_objects"] == "1"
    assert request.run_config == {}  # the run cleans every unprocessed object of its hour


def test_a_burst_beyond_the_listing_cap_keeps_the_sensor_requesting_runs(local_lake):
    """25,000 objects land within the 2-minute lookback: the ticks request runs until
    every object is in exactly one batch, the cursor stays small, and an object landing 10
    minutes later gets its run."""
    from datetime import timedelta

    from lake.firehose import object_key

    landing, resources = local_lake["landing"], local_lake["resources"]
    t0 = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
    burst = 25_000
    for i in range(burst):
        landing.write(
            object_key("robot_telemetry", t0 + timedelta(milliseconds=4 * i), object_id=f"{i:05d}"),
            b"{}",
        )
    cursor, requested, ticks = None, 0, 0
    while True:
        tick = _evaluate("robot_telemetry_landing_sensor", resources, cursor)
        ticks += 1
        assert ticks <= 20, "the sensor stopped requesting runs"
        assert len(tick.cursor) < 64 * 1024
        cursor = tick.cursor
        if not tick.run_requests:
            break
        requested += sum(int(r.tags["landing/new_objects"]) for r in tick.run_requests)
    assert requested == burst

    later = object_key("robot_telemetry", t0 + timedelta(minutes=10), object_id="later")
    landing.write(later, b"{}")
    (request,) = _evaluate("robot_telemetry_landing_sensor", resources, cursor).run_requests
    assert request.tags["landing/new_objects"] == "1"
    assert request.run_config == {}


def test_the_shipped_instance_retries_dead_runs_and_purges_old_ticks(tmp_path):
    import shutil

    from dagster import AssetKey
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus

    from lake.settings import REPO_ROOT

    shutil.copy(REPO_ROOT / "orchestration" / "dagster.yaml", tmp_path / "dagster.yaml")
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        retention = instance.get_tick_retention_settings(InstigatorType.SENSOR)
    assert all(days > 0 for days in retention.values())  # -1 would keep ticks forever
    assert retention[TickStatus.SUCCESS] <= 7
    # a failed step is retried inside its run, however the run was started
    for key in (["cleaned", "robot_telemetry"], ["landing", "robot_telemetry"]):
        assert defs.get_assets_def(AssetKey(key)).op.retry_policy.max_retries >= 1


def test_an_object_overwritten_under_its_key_gets_a_new_run_key(local_lake):
    """Run keys deduplicate forever: a run for the rewritten object (new ETag) must not
    reuse the key of the run for its first version, or it is never launched."""
    import os
    import time
    from datetime import timedelta

    from lake.firehose import object_key

    landing, resources = local_lake["landing"], local_lake["resources"]
    written_at = datetime.now(UTC).replace(minute=0, second=1) - timedelta(hours=2)
    key = object_key("robot_telemetry", written_at, object_id="rewritten")

    now = time.time()

    def land(body: bytes, age_s: int) -> str:
        landing.write(key, body)
        then = now - age_s
        os.utime(landing.path(key), (then, then))
        (request,) = _evaluate("robot_telemetry_reconciliation", resources, None).run_requests
        return request.run_key

    first = land(b'{"event_id": "x"}', 3600)
    assert land(b'{"event_id": "x"}', 3600) == first  # the same version: the same key
    assert land(b'{"event_id": "y", "more": 1}', 3000) != first


def test_s3_events_carry_the_version_of_each_write():
    from lake.s3_events import created_objects

    def event(etag: str, sequencer: str) -> str:
        s3 = {"bucket": {"name": "b"}, "object": {"key": "k", "eTag": etag, "sequencer": sequencer}}
        return json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": s3}]})

    (first,) = created_objects(event("e1", "01"))
    (second,) = created_objects(event("e2", "02"))
    assert first[:2] == second[:2] == ("b", "k") and first[2] != second[2]
