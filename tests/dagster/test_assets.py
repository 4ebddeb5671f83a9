"""Assets materialized with dagster.materialize() on real folders, Parquet and DuckDB."""

import gzip
import json
from datetime import UTC, datetime

import duckdb
from dagster import AssetKey, DagsterInstance, materialize

from lake.firehose import object_key
from orchestration.definitions import defs, ingest_assets, mart_assets

HOUR = "2026-11-21-08:00"


def _milking(i: int, cow: str, ts: str, yield_kg: float) -> dict:
    return {
        "event_id": f"m-{i}",
        "ts": ts,
        "robot_id": "R01",
        "cow_id": cow,
        "event_type": "milking_end",
        "milking": {"yield_kg": yield_kg, "duration_s": 400 + i},
        "operator": {"name": "Jo", "email": "jo@farm.example"},
    }


def _metadata(result, key: AssetKey) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_definitions_declare_every_stream_layer_and_mart_lineage() -> None:
    graph = defs.get_repository_def().asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for stream in ("robot_telemetry", "clickstream", "cloudtrail"):
        assert {f"landing/{stream}", f"schema/{stream}", f"cleaned/{stream}"} <= keys
    mart = graph.get(AssetKey(["marts", "milking_per_cow_daily"]))
    assert AssetKey(["cleaned", "robot_telemetry"]) in mart.parent_keys


def test_ingest_assets_write_catalog_cleaned_parquet_and_quarantine(local_lake) -> None:
    landing, lake = local_lake["landing"], local_lake["lake"]
    records = [_milking(i, f"C{i % 3}", f"2026-11-21T08:{i:02d}:00Z", 10.0 + i) for i in range(9)]
    body = (
        "".join(json.dumps(r) for r in records)
        + '{"event_id": "broken", "ts"'
        + json.dumps(records[0])
    )
    key = object_key("robot_telemetry", datetime(2026, 11, 21, 8, 10, tzinfo=UTC), object_id="o1")
    landing.write(key, gzip.compress(body.encode()))

    result = materialize(
        ingest_assets("robot_telemetry"), partition_key=HOUR, resources=local_lake["resources"]
    )
    assert result.success
    landing_md = _metadata(result, AssetKey(["landing", "robot_telemetry"]))
    assert landing_md["objects"] == 1 and landing_md["keys"] == [key]
    schema_md = _metadata(result, AssetKey(["schema", "robot_telemetry"]))
    assert schema_md["version"] == 1
    columns = {c.name: c.type for c in schema_md["dagster/column_schema"].columns}
    assert columns["ts"] == "timestamp" and columns["milking"].startswith("struct<")
    cleaned_md = _metadata(result, AssetKey(["cleaned", "robot_telemetry"]))
    assert cleaned_md["records_in"] == 11
    assert cleaned_md["records_cleaned"] == 9
    assert cleaned_md["records_quarantined"] == 1
    assert cleaned_md["duplicates_dropped"] == 1
    assert cleaned_md["event_dates"] == ["2026-11-21"]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    # 1/11 quarantined > the stream's 5%
    assert checks == {
        "schema_compatible": True,
        "records_reconcile": True,
        "quarantine_ratio": False,
    }

    rows = duckdb.sql(
        f"SELECT event_id, milking_yield_kg, operator_name FROM read_parquet('{lake.root}/cleaned/robot_telemetry/dt=2026-11-21/*.parquet') ORDER BY event_id"
    ).fetchall()
    assert rows == [(r["event_id"], r["milking"]["yield_kg"], "[REDACTED]") for r in records]
    assert lake.exists("catalog/firehose_raw/robot_telemetry.json")


def test_single_run_backfill_covers_a_range_of_hours(local_lake) -> None:
    landing = local_lake["landing"]
    for hour in (8, 9, 10):
        rec = _milking(hour, "C1", f"2026-11-21T{hour:02d}:00:00Z", 11.0)
        key = object_key(
            "robot_telemetry", datetime(2026, 11, 21, hour, 1, tzinfo=UTC), object_id=f"h{hour}"
        )
        landing.write(key, gzip.compress(json.dumps(rec).encode()))
    instance = DagsterInstance.ephemeral()
    result = materialize(
        ingest_assets("robot_telemetry"),
        resources=local_lake["resources"],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2026-11-21-08:00",
            "dagster/asset_partition_range_end": "2026-11-21-10:00",
        },
    )
    assert result.success
    cleaned = AssetKey(["cleaned", "robot_telemetry"])
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == cleaned]
    assert sorted(e.partition for e in events) == [
        "2026-11-21-08:00",
        "2026-11-21-09:00",
        "2026-11-21-10:00",
    ]
    # one object of one record per hour: each hour carries its own count, not the range's
    assert [e.materialization.metadata["records_cleaned"].value for e in events] == [1, 1, 1]


def test_mart_asset_builds_the_day_in_parquet_and_the_warehouse(local_lake) -> None:
    landing, lake = local_lake["landing"], local_lake["lake"]
    records = [
        _milking(1, "C1", "2026-11-21T05:00:00Z", 12.0),
        _milking(2, "C1", "2026-11-21T16:00:00Z", 10.5),
        _milking(3, "C2", "2026-11-21T06:00:00Z", 9.0),
    ]
    key = object_key("robot_telemetry", datetime(2026, 11, 21, 17, 0, tzinfo=UTC), object_id="d")
    landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
    resources = local_lake["resources"]
    assert materialize(
        ingest_assets("robot_telemetry"), partition_key="2026-11-21-17:00", resources=resources
    ).success

    result = materialize(mart_assets, partition_key="2026-11-21", resources=resources)
    assert result.success
    md = _metadata(result, AssetKey(["marts", "milking_per_cow_daily"]))
    assert md["dagster/row_count"] == 2
    [file] = md["files"]
    assert file.startswith("marts/milking_per_cow_daily/dt=2026-11-21/milking_per_cow_daily-")
    assert [o.key for o in lake.list("marts/milking_per_cow_daily/dt=2026-11-21/")] == [file]
    with duckdb.connect(local_lake["warehouse_path"]) as con:
        got = con.sql(
            "SELECT cow_id, milkings, yield_kg, milked_fewer_than_twice, day_complete FROM marts.milking_per_cow_daily ORDER BY cow_id"
        ).fetchall()
    # nothing arrived after the day's end plus 48 hours: the flag waits (lake.day_completeness)
    assert got == [("C1", 2, 22.5, None, False), ("C2", 1, 9.0, None, False)]


def test_cleaned_alone_on_a_fresh_lake_keeps_fields_the_catalog_lacks(local_lake) -> None:
    """`dagster asset materialize --select cleaned/<stream>` before any schema run."""
    landing, lake = local_lake["landing"], local_lake["lake"]
    records = [_milking(i, "C1", f"2026-11-21T08:0{i}:00Z", 10.0) for i in range(3)]
    records[2]["milk_quality"] = {"somatic_cell_count": 120000}  # a firmware update's new field
    key = object_key("robot_telemetry", datetime(2026, 11, 21, 8, 9, tzinfo=UTC), object_id="n")
    landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
    [cleaned] = [a for a in ingest_assets("robot_telemetry") if a.key.path[0] == "cleaned"]

    result = materialize([cleaned], partition_key=HOUR, resources=local_lake["resources"])
    assert result.success
    md = _metadata(result, AssetKey(["cleaned", "robot_telemetry"]))
    assert md["records_cleaned"] == 3
    assert "milk_quality" in md["batch_columns_not_in_catalog"]["added"]
    assert not lake.exists("catalog/firehose_raw/robot_telemetry.json")  # schema/ owns the catalog
    got = duckdb.sql(
        f"SELECT event_id, milk_quality_somatic_cell_count FROM read_parquet('{lake.root}/cleaned/robot_telemetry/*/*.parquet') ORDER BY 1"
    ).fetchall()
    assert got == [("m-0", None), ("m-1", None), ("m-2", 120000)]


def test_incompatible_drift_is_stopped_before_cleaned(local_lake) -> None:
    landing, lake = local_lake["landing"], local_lake["lake"]
    first = dict(_milking(1, "C1", "2026-11-21T08:00:00Z", 10.0), gate={"gate_id": "G1"})
    drifted = dict(_milking(2, "C1", "2026-11-21T09:00:00Z", 10.0), gate="G1")  # struct -> string
    for hour, record in ((8, first), (9, drifted)):
        key = object_key(
            "robot_telemetry", datetime(2026, 11, 21, hour, 5, tzinfo=UTC), object_id=f"g{hour}"
        )
        landing.write(key, gzip.compress(json.dumps(record).encode()))
    resources = local_lake["resources"]
    assert materialize(
        ingest_assets("robot_telemetry"), partition_key=HOUR, resources=resources
    ).success

    result = materialize(
        ingest_assets("robot_telemetry"),
        partition_key="2026-11-21-09:00",
        resources=resources,
        raise_on_error=False,
    )
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "schema_compatible" and not check.passed
    assert check.metadata["incompatible_changes"].value == [
        "gate: struct<gate_id:string> -> string"
    ]
    materialized = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert materialized == {"landing", "schema"}  # cleaned/ did not run
    assert not any(
        o.key.startswith("cleaned/robot_telemetry/dt=2026-11-21/20261121T09")
        for o in lake.list("cleaned/")
    )
    table = json.loads(lake.read("catalog/firehose_raw/robot_telemetry.json"))
    assert table["VersionId"] == "1"


def test_micro_batches_process_new_objects_and_full_refresh_reprocesses(local_lake) -> None:
    landing = local_lake["landing"]
    resources = local_lake["resources"]
    key = object_key("robot_telemetry", datetime(2026, 11, 21, 8, 1, tzinfo=UTC), object_id="b1")
    landing.write(
        key, gzip.compress(json.dumps(_milking(1, "C1", "2026-11-21T08:00:00Z", 9.0)).encode())
    )
    assert materialize(
        ingest_assets("robot_telemetry"), partition_key=HOUR, resources=resources
    ).success
    key2 = object_key("robot_telemetry", datetime(2026, 11, 21, 8, 2, tzinfo=UTC), object_id="b2")
    landing.write(
        key2, gzip.compress(json.dumps(_milking(2, "C1", "2026-11-21T08:01:00Z", 9.5)).encode())
    )

    second = materialize(ingest_assets("robot_telemetry"), partition_key=HOUR, resources=resources)
    md = _metadata(second, AssetKey(["cleaned", "robot_telemetry"]))
    assert (md["batch_objects"], md["batch_objects_skipped"], md["batch_records_cleaned"]) == (
        1,
        1,
        1,
    )
    assert (md["objects"], md["records_cleaned"]) == (2, 2)  # the hour's running totals

    full = materialize(
        ingest_assets("robot_telemetry"),
        partition_key=HOUR,
        resources=resources,
        run_config={"ops": {"cleaned__robot_telemetry": {"config": {"full_refresh": True}}}},
    )
    md = _metadata(full, AssetKey(["cleaned", "robot_telemetry"]))
    assert (
        md["batch_objects"],
        md["batch_objects_skipped"],
        md["batch_records_cleaned"],
        md["batch_duplicates_dropped"],
    ) == (2, 0, 2, 0)
    assert (md["objects"], md["records_cleaned"], md["duplicates_dropped"]) == (2, 2, 0)


def _upstream_hours(mart: str, day: str, stream: str) -> list[str]:
    graph = defs.get_repository_def().asset_graph
    key, parent = AssetKey(["marts", mart]), AssetKey(["cleaned", stream])
    node = graph.get(key)
    mapping = node.partition_mappings[parent]
    downstream = node.partitions_def
    subset = downstream.empty_subset().with_partition_keys([day])
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        subset, downstream, graph.get(parent).partitions_def
    )
    return sorted(upstream.partitions_subset.get_partition_keys())


def test_a_mart_day_reads_the_arrival_hours_its_events_can_arrive_in() -> None:
    # robot_telemetry allows 48 hours of lateness: the day and the two days after it
    # (a past day: hours that do not exist yet are left out of the mapping)
    hours = _upstream_hours("milking_per_cow_daily", "2026-10-10", "robot_telemetry")
    assert hours[0] == "2026-10-10-00:00" and hours[-1] == "2026-10-12-23:00"
    assert len(hours) == 72
    # clickstream allows 24 hours, and its sessions mart looks one day back
    hours = _upstream_hours("clickstream_sessions_daily", "2026-10-10", "clickstream")
    assert hours[0] == "2026-10-09-00:00" and hours[-1] == "2026-10-11-23:00"
