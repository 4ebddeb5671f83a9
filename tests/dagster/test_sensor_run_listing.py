"""A landing sensor's run of schema/ and cleaned/ lists its hour from the previous run's
mark on; any other run (the UI, a backfill, reconciliation, the S3-events sensor's, whose event
may name a key below the mark) lists the whole hour, so an
object named before the mark is cleaned by it. Real runs over local folders."""

import gzip
import json
from datetime import UTC, datetime

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, materialize

from assets.hourly import new_objects_tag
from lake.firehose import object_key
from orchestration.definitions import ingest_assets

STREAM = "robot_telemetry"
PARTITION = "2026-11-21-08:00"
# as orchestration.sensors.hour_run_requests tags them
SENSOR_TAGS = {"stream": STREAM, new_objects_tag("landing"): "1"}
EVENTS_TAGS = {"stream": STREAM, new_objects_tag("events"): "1"}


def _land(landing, minute: int, ids: list[str]) -> str:
    records = "".join(
        json.dumps({"event_id": i, "ts": "2026-11-21T08:00:00Z", "robot_id": "R1"}) for i in ids
    )
    key = object_key(STREAM, datetime(2026, 11, 21, 8, minute, tzinfo=UTC), object_id=f"m{minute}")
    landing.write(key, gzip.compress(records.encode()))
    return key


def _latest(instance: DagsterInstance, layer: str) -> dict:
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey([layer, STREAM]), asset_partitions=[PARTITION]),
        limit=1,
    ).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def _run(local_lake, instance: DagsterInstance, tags: dict[str, str] | None = None) -> None:
    result = materialize(
        ingest_assets(STREAM),
        partition_key=PARTITION,
        resources=local_lake["resources"],
        instance=instance,
        tags=tags,
    )
    assert result.success


def test_sensor_runs_list_from_the_mark_and_other_runs_list_the_whole_hour(local_lake) -> None:
    landing, instance = local_lake["landing"], DagsterInstance.ephemeral()
    for minute in (10, 20):  # the first two runs list the whole hour (no mark yet)
        _land(landing, minute, [f"a{minute}"])
        _run(local_lake, instance, SENSOR_TAGS)
    _land(landing, 1, ["late"])  # lands now, named before the mark (minute 20)
    _land(landing, 30, ["a30", "a31"])
    _run(local_lake, instance, SENSOR_TAGS)
    cleaned, schema = _latest(instance, "cleaned"), _latest(instance, "schema")
    assert (cleaned["batch_objects"], cleaned["objects"], cleaned["records_in"]) == (1, 3, 4)
    assert (schema["objects_crawled"], schema["objects"]) == (1, 3)

    _run(local_lake, instance)  # from the UI: the whole hour
    cleaned, schema = _latest(instance, "cleaned"), _latest(instance, "schema")
    assert (cleaned["batch_objects"], cleaned["objects"], cleaned["records_in"]) == (1, 4, 5)
    assert cleaned["objects_pending"] == 0
    assert (schema["objects_crawled"], schema["objects"]) == (1, 4)


def test_an_events_sensor_run_cleans_an_object_named_before_the_mark(local_lake) -> None:
    """An S3 event names its key exactly: the run it starts must not skip it because a
    later-named object was processed first."""
    landing, instance = local_lake["landing"], DagsterInstance.ephemeral()
    for minute in (10, 20):
        _land(landing, minute, [f"a{minute}"])
        _run(local_lake, instance, SENSOR_TAGS)
    _land(landing, 1, ["late"])  # its event arrives now
    _run(local_lake, instance, EVENTS_TAGS)
    cleaned, schema = _latest(instance, "cleaned"), _latest(instance, "schema")
    assert (cleaned["batch_objects"], cleaned["objects"], cleaned["records_in"]) == (1, 3, 3)
    assert cleaned["objects_pending"] == 0
    assert (schema["objects_crawled"], schema["objects"]) == (1, 3)
