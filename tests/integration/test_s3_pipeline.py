"""landing -> schema -> cleaned -> mart with s3:// URIs against moto over real HTTP on 127.0.0.1."""

import io
import json
from datetime import UTC, datetime

import boto3
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from lake.simulator import Simulator, SimulatorConfig
from lake.storage import open_storage
from orchestration.definitions import defs, ingest_assets, mart_assets
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3
START = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def _read_parquet_rows(storage, prefix: str) -> list[dict]:
    rows = []
    for info in storage.list(prefix):
        if not info.key.endswith(".parquet"):
            continue  # the Iceberg table's metadata/ beside the data files
        rows += pq.read_table(io.BytesIO(storage.read(info.key))).to_pylist()
    return rows


def test_pipeline_runs_on_s3_uris(s3_bucket: str, tmp_path) -> None:
    landing_uri, lake_uri = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/lake"
    landing = open_storage(landing_uri)
    sim = Simulator(
        SimulatorConfig(
            seed=11,
            streams=("robot_telemetry", "cloudtrail"),
            object_interval_s=600,
            duplicate_rate=0.05,
            malformed_rate=0.02,
        )
    )
    written = list(sim.write_range(landing, START, START.replace(hour=9)))
    assert {w.stream for w in written} == {"robot_telemetry", "cloudtrail"}
    resources = s3_resources(s3_bucket, tmp_path / "warehouse.duckdb")

    # The sensor finds the objects over HTTP and asks for the 08:00 hour.
    sensor = defs.get_repository_def().get_sensor_def("robot_telemetry_landing_sensor")
    with (
        DagsterInstance.ephemeral() as instance,  # the sensor looks for queued runs in it
        build_sensor_context(
            resources=resources, instance=instance, repository_def=defs.get_repository_def()
        ) as context,
    ):
        tick = sensor.evaluate_tick(context)
    assert [r.partition_key for r in tick.run_requests] == ["2026-11-21-08:00"]

    for stream in ("robot_telemetry", "cloudtrail"):
        result = materialize(
            ingest_assets(stream), partition_key="2026-11-21-08:00", resources=resources
        )
        assert result.success
        ours = [w for w in written if w.stream == stream]
        dedup = "event_id" if stream == "robot_telemetry" else "eventID"
        expected_ids = {r[dedup] for w in ours for r in w.records}
        lake = open_storage(lake_uri)
        rows = _read_parquet_rows(lake, f"cleaned/{stream}/")
        assert sorted(r[dedup.lower()] for r in rows) == sorted(expected_ids)
        quarantined = _read_parquet_rows(lake, f"quarantine/{stream}/")
        assert len(quarantined) == sum(len(w.malformed) for w in ours)
        [event] = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key == AssetKey(["cleaned", stream])
        ]
        md = event.materialization.metadata
        assert md["records_cleaned"].value == len(expected_ids)
        assert md["duplicates_dropped"].value == sum(len(w.records) for w in ours) - len(
            expected_ids
        )
        assert lake.exists(f"catalog/firehose_raw/{stream}.json")

    mart = materialize(mart_assets, partition_key="2026-11-21", resources=resources)
    assert mart.success
    mart_rows = _read_parquet_rows(
        open_storage(lake_uri), "marts/milking_per_cow_daily/dt=2026-11-21/"
    )
    milkings = [
        r
        for w in written
        if w.stream == "robot_telemetry"
        for r in w.records
        if r["event_type"] == "milking_end" and r["ts"].startswith("2026-11-21")
    ]
    assert sum(r["milkings"] for r in mart_rows) == len({r["event_id"] for r in milkings})


def test_schema_asset_syncs_glue_when_a_glue_database_is_set(s3_bucket: str, tmp_path) -> None:
    landing_uri, lake_uri = f"s3://{s3_bucket}/landing", f"s3://{s3_bucket}/lake"
    sim = Simulator(SimulatorConfig(seed=3, streams=("cloudtrail",), object_interval_s=900))
    written = list(sim.write_range(open_storage(landing_uri), START, START.replace(hour=10)))
    warehouse = tmp_path / "warehouse.duckdb"
    resources = s3_resources(s3_bucket, warehouse, glue_database="lake_glue_it")
    schema_asset = [a for a in ingest_assets("cloudtrail") if a.key.path[0] == "schema"]
    result = materialize(
        schema_asset,
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": "2026-11-21-08:00",
            "dagster/asset_partition_range_end": "2026-11-21-09:00",
        },
    )
    assert result.success

    glue = boto3.client("glue")
    table = glue.get_table(DatabaseName="lake_glue_it", Name="cloudtrail")["Table"]
    ours = json.loads(open_storage(lake_uri).read("catalog/firehose_raw/cloudtrail.json"))
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == [
        c["Name"] for c in ours["StorageDescriptor"]["Columns"]
    ]
    assert table["StorageDescriptor"]["Location"] == f"{landing_uri}/cloudtrail/"
    pages = glue.get_paginator("get_partitions").paginate(
        DatabaseName="lake_glue_it", TableName="cloudtrail"
    )
    values = sorted(p["Values"] for page in pages for p in page["Partitions"])
    assert values == [["2026", "11", "21", "08"], ["2026", "11", "21", "09"]]
    assert {w.key.split("/")[4] for w in written} == {"08", "09"}
