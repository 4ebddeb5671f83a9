"""Table maintenance assets materialized on real folders, Parquet and a SQLite catalog:
compaction's metadata before and after, expiry's orphans, the schedules' runs, the pools."""

import gzip
import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetKey, DagsterInstance, build_schedule_context, materialize

from assets.hourly import stream_pool
from assets.marts import WAREHOUSE_POOL
from lake.cleaning import writing
from lake.firehose import object_key
from lake.iceberg.catalog import LakeTables
from orchestration.definitions import defs, ingest_assets, maintenance_assets

STREAM = "robot_telemetry"
HOUR = "2026-11-21-08:00"
DAY = "2026-11-21"
OBJECTS = 10
COMPACT_CLEANED = AssetKey(["compaction", "cleaned", STREAM])
COMPACT_QUARANTINE = AssetKey(["compaction", "quarantine", STREAM])
EXPIRE_CLEANED = AssetKey(["expiry", "cleaned", STREAM])


def _asset(key: AssetKey):
    [found] = [a for a in maintenance_assets if a.key == key]
    return found


def _materializations(result, key: AssetKey) -> dict[str, dict]:
    """Metadata of the key's materializations, by partition (None: unpartitioned)."""
    return {
        e.partition: {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.asset_key == key
    }


def _land_and_clean(local_lake) -> int:
    """OBJECTS objects of 3 records each in one hour, cleaned: OBJECTS files on DAY."""
    for n in range(OBJECTS):
        records = [
            {"event_id": f"e{n}-{r}", "ts": f"2026-11-21T08:{n:02d}:0{r}Z", "robot_id": "R1"}
            for r in range(3)
        ]
        written = datetime(2026, 11, 21, 8, n, tzinfo=UTC)
        key = object_key(STREAM, written, object_id=f"o{n}")
        local_lake["landing"].write(key, gzip.compress("".join(map(json.dumps, records)).encode()))
    with pytest.MonkeyPatch.context() as patch:  # no shared file: as micro-batches write
        patch.setattr(writing, "SHARE_ROWS", 0)
        result = materialize(
            ingest_assets(STREAM), partition_key=HOUR, resources=local_lake["resources"]
        )
    assert result.success
    return OBJECTS * 3


def _cleaned_rows(local_lake) -> list[tuple]:
    table = LakeTables(local_lake["settings"]).catalog.load_table(f"cleaned.{STREAM}")
    return sorted(tuple(r.values()) for r in table.scan().to_arrow().to_pylist())


def test_compaction_shows_files_and_bytes_before_and_after(local_lake) -> None:
    records = _land_and_clean(local_lake)
    before = _cleaned_rows(local_lake)
    lake = local_lake["lake"]
    day_folder = f"cleaned/{STREAM}/dt={DAY}/"
    sizes = sum(o.size for o in lake.list(day_folder))

    result = materialize(
        [_asset(COMPACT_CLEANED)], partition_key=DAY, resources=local_lake["resources"]
    )

    assert result.success
    metadata = _materializations(result, COMPACT_CLEANED)[DAY]
    assert metadata["table"] == f"cleaned.{STREAM}"
    assert (metadata["files_before"], metadata["files_after"]) == (OBJECTS, 1)
    assert metadata["bytes_before"] == sizes
    [compacted] = [o for o in lake.list(day_folder) if "compacted-" in o.key]
    assert metadata["bytes_after"] == compacted.size
    assert metadata["rows_rewritten"] == metadata["rows_written"] == records
    assert metadata["rows_checked_equal"] is True
    assert metadata["skipped"] == ""
    assert _cleaned_rows(local_lake) == before


def test_the_schedule_compacts_the_last_days_in_one_run(local_lake) -> None:
    _land_and_clean(local_lake)
    schedule = defs.resolve_schedule_def("table_compaction_schedule")
    context = build_schedule_context(
        instance=DagsterInstance.ephemeral(),
        scheduled_execution_time=datetime(2026, 11, 22, 1, 15, tzinfo=UTC),
    )
    [request] = schedule.evaluate_tick(context).run_requests or []
    settings = replace(local_lake["settings"], compaction_min_files=2)
    resources = {**local_lake["resources"], "settings": settings}

    result = materialize(
        [_asset(COMPACT_CLEANED), _asset(COMPACT_QUARANTINE)],
        tags=request.tags,
        resources=resources,
    )

    assert result.success
    cleaned = _materializations(result, COMPACT_CLEANED)
    assert sorted(cleaned) == ["2026-11-19", "2026-11-20", DAY]  # COMPACTION_DAYS = 3
    assert (cleaned[DAY]["files_before"], cleaned[DAY]["files_after"]) == (OBJECTS, 1)
    assert cleaned["2026-11-20"]["files_before"] == 0 and cleaned["2026-11-20"]["skipped"]
    # no record was quarantined: no quarantine table, nothing to do
    assert {m["skipped"] for m in _materializations(result, COMPACT_QUARANTINE).values()} == {
        "no table"
    }


def test_expiry_deletes_old_orphans_and_keeps_young_snapshots(local_lake) -> None:
    _land_and_clean(local_lake)
    materialize([_asset(COMPACT_CLEANED)], partition_key=DAY, resources=local_lake["resources"])
    lake = local_lake["lake"]
    orphan = f"cleaned/{STREAM}/dt={DAY}/killed-run.parquet"
    [first, *_] = [o.key for o in lake.list(f"cleaned/{STREAM}/dt={DAY}/")]
    lake.write(orphan, lake.read(first))
    old = (datetime.now(UTC) - timedelta(days=8)).timestamp()
    os.utime(lake.path(orphan), (old, old))
    files = {o.key for o in lake.list(f"cleaned/{STREAM}/")}

    result = materialize([_asset(EXPIRE_CLEANED)], resources=local_lake["resources"])

    assert result.success
    metadata = _materializations(result, EXPIRE_CLEANED)[None]
    # the files compaction replaced are younger than 168 hours: kept for time travel
    assert metadata["snapshots_expired"] == 0 and metadata["snapshots_before"] >= 2
    assert metadata["orphan_files_deleted"] == 1
    assert {o.key for o in lake.list(f"cleaned/{STREAM}/")} == files - {orphan}


def test_maintenance_shares_the_pool_of_its_tables_writer() -> None:
    graph = defs.get_repository_def().asset_graph
    for key in (COMPACT_CLEANED, COMPACT_QUARANTINE, EXPIRE_CLEANED):
        assert graph.get(key).pools == {stream_pool(STREAM)}
    mart = AssetKey(["expiry", "marts", "milking_per_cow_daily"])
    assert graph.get(mart).pools == {WAREHOUSE_POOL}
    assert AssetKey(["cleaned", STREAM]) in graph.get(COMPACT_CLEANED).parent_keys
