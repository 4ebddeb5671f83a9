"""The cleaned and quarantine Iceberg tables as a pyiceberg user sees them, after the
Dagster assets ran on the embedded default (SQLite catalog beside the lake folder).

Rows from `catalog.load_table(...).scan()` are held against DuckDB's own read of the
Parquet files the ledger manifests list, and each run's commit against the table's
snapshots and metadata log (one metadata version a run: a reader sees all of it or none).
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
from dagster import AssetKey, DagsterInstance, materialize
from pyiceberg.serializers import FromInputFile

from lake.firehose import object_key
from lake.iceberg.catalog import LakeTables
from lake.storage import LocalStorage
from orchestration.definitions import ingest_assets

STREAM = "robot_telemetry"
HOUR = "2026-11-21-08:00"
CLEANED_KEY = AssetKey(["cleaned", STREAM])
FULL_REFRESH = {"ops": {f"cleaned__{STREAM}": {"config": {"full_refresh": True}}}}
LINEAGE_ORDER = "_source_key, _position"


def _record(i: int, minute: int) -> dict:
    return {
        "event_id": f"m-{i}",
        "ts": f"2026-11-21T08:{minute % 60:02d}:00Z",
        "robot_id": "R01",
        "cow_id": f"C{i % 3}",
        "event_type": "milking_end",
        "milking": {"yield_kg": 10.0 + i, "duration_s": 400 + i},
    }


BAD = {"event_id": "bad-1", "ts": "not a time", "robot_id": "R01"}


def _land(landing: LocalStorage, minute: int, name: str, records: list[dict]) -> str:
    key = object_key(STREAM, datetime(2026, 11, 21, 8, minute, tzinfo=UTC), object_id=name)
    landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
    return key


def _run(local_lake: dict, instance: DagsterInstance, **kwargs: object):
    result = materialize(
        ingest_assets(STREAM), resources=local_lake["resources"], instance=instance, **kwargs
    )
    assert result.success
    return result


def _cleaned_metadata(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == CLEANED_KEY]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _manifest_files(lake: LocalStorage, layer: str) -> list[str]:
    """Absolute paths of the `layer` files every ledger manifest of the stream lists."""
    files = []
    for info in lake.list(f"_state/cleaned/{STREAM}/"):
        manifest = json.loads(lake.read(info.key))
        files += [f for f in manifest["files"] if f.startswith(f"{layer}/")]
    return sorted(str(lake.root / f) for f in files)


def _duckdb_rows(paths: list[str], columns: list[str], order: str) -> list[tuple]:
    select = ", ".join(f'"{c}"' for c in columns)
    return duckdb.sql(
        f"SELECT {select} FROM read_parquet($paths, hive_partitioning = false) ORDER BY {order}",
        params={"paths": paths},
    ).fetchall()


def _arrow_rows(rows: pa.Table, order: str) -> list[tuple]:
    select = ", ".join(f'"{c}"' for c in rows.column_names)
    return duckdb.sql(f"SELECT {select} FROM rows ORDER BY {order}").fetchall()


def _summary(snapshot) -> dict[str, str]:
    return {"operation": snapshot.summary.operation.value, **snapshot.summary.additional_properties}


def _metadata_versions(table) -> int:
    return len(table.metadata.metadata_log) + 1


def test_cleaned_table_scans_back_exactly_the_records_the_run_cleaned(local_lake) -> None:
    landing, lake = local_lake["landing"], local_lake["lake"]
    records = [_record(i, i) for i in range(8)]
    _land(landing, 1, "first", [*records, records[2], BAD])  # one redelivery, one bad record

    metadata = _cleaned_metadata(_run(local_lake, DagsterInstance.ephemeral(), partition_key=HOUR))
    assert (metadata["records_cleaned"], metadata["duplicates_dropped"]) == (8, 1)

    table = LakeTables(local_lake["settings"]).catalog.load_table(f"cleaned.{STREAM}")
    scanned = table.scan().to_arrow()
    assert scanned.num_rows == metadata["records_cleaned"] == len(records)
    assert sorted(scanned["event_id"].to_pylist()) == sorted(r["event_id"] for r in records)
    files = _manifest_files(lake, "cleaned")
    assert len(files) == 1
    assert _arrow_rows(scanned, LINEAGE_ORDER) == _duckdb_rows(
        files, scanned.column_names, LINEAGE_ORDER
    )
    assert metadata["iceberg_cleaned_snapshot_id"] == str(table.current_snapshot().snapshot_id)
    assert [str(f.name) for f in table.spec().fields] == ["dt"]


def test_a_second_micro_batch_is_a_second_snapshot_adding_only_its_rows(local_lake) -> None:
    landing, lake = local_lake["landing"], local_lake["lake"]
    instance = DagsterInstance.ephemeral()
    first = [_record(i, i) for i in range(6)]
    _land(landing, 1, "first", first)
    _run(local_lake, instance, partition_key=HOUR)
    tables = LakeTables(local_lake["settings"])
    before = tables.catalog.load_table(f"cleaned.{STREAM}").current_snapshot()

    second = [_record(i, i) for i in range(100, 105)]
    _land(landing, 30, "second", [*second, first[0]])  # first[0]: a redelivery, dropped
    metadata = _cleaned_metadata(_run(local_lake, instance, partition_key=HOUR))
    assert (metadata["batch_objects"], metadata["batch_records_cleaned"]) == (1, len(second))

    table = tables.catalog.load_table(f"cleaned.{STREAM}")
    snapshots = table.snapshots()
    assert [s.snapshot_id for s in snapshots[:-1]] == [before.snapshot_id]
    now = table.current_snapshot()
    assert now.parent_snapshot_id == before.snapshot_id
    summary = _summary(now)
    assert summary["operation"] == "append"
    assert int(summary["added-records"]) == len(second)
    assert int(summary["added-data-files"]) == 1
    assert "deleted-data-files" not in summary and "deleted-records" not in summary
    assert int(summary["total-records"]) == len(first) + len(second)

    scanned = table.scan().to_arrow()
    added = table.scan(snapshot_id=now.snapshot_id).to_arrow().num_rows - len(first)
    assert added == len(second)
    assert sorted(scanned["event_id"].to_pylist()) == sorted(r["event_id"] for r in first + second)
    files = _manifest_files(lake, "cleaned")
    assert len(files) == 2
    assert _arrow_rows(scanned, LINEAGE_ORDER) == _duckdb_rows(
        files, scanned.column_names, LINEAGE_ORDER
    )


def test_a_full_refresh_replaces_the_hour_in_one_commit(local_lake) -> None:
    landing = local_lake["landing"]
    instance = DagsterInstance.ephemeral()
    _land(landing, 1, "first", [_record(i, i) for i in range(6)])
    _land(landing, 2, "second", [_record(i, i) for i in range(10, 14)])
    _run(local_lake, instance, partition_key=HOUR)
    tables = LakeTables(local_lake["settings"])
    table = tables.catalog.load_table(f"cleaned.{STREAM}")
    before, rows_before = table.current_snapshot(), table.scan().to_arrow()
    versions_before = _metadata_versions(table)

    metadata = _cleaned_metadata(
        _run(local_lake, instance, partition_key=HOUR, run_config=FULL_REFRESH)
    )
    assert (metadata["batch_objects"], metadata["batch_records_cleaned"]) == (2, 10)

    table = tables.catalog.load_table(f"cleaned.{STREAM}")
    after = table.scan().to_arrow()
    assert after.num_rows == rows_before.num_rows == 10
    same = [c for c in after.column_names if c != "_ingested_at"]  # the refresh's own time
    assert _arrow_rows(after.select(same), LINEAGE_ORDER) == _arrow_rows(
        rows_before.select(same), LINEAGE_ORDER
    )
    assert set(after["_ingested_at"].to_pylist()).isdisjoint(
        rows_before["_ingested_at"].to_pylist()
    )

    # the history: a delete of both objects' rows, then the append of their new file
    history = [e.snapshot_id for e in table.history()]
    append = table.current_snapshot()
    delete = table.snapshot_by_id(append.parent_snapshot_id)
    assert delete.parent_snapshot_id == before.snapshot_id
    assert history[-3:] == [before.snapshot_id, delete.snapshot_id, append.snapshot_id]
    # both objects' rows share one file: pyiceberg's delete reads it (its metrics cannot
    # show every row matches), keeps no row of it and writes no file ("overwrite")
    assert _summary(delete)["operation"] == "overwrite"
    assert (_summary(delete)["deleted-data-files"], _summary(delete)["deleted-records"]) == (
        "1",
        "10",
    )
    assert "added-data-files" not in _summary(delete)
    assert (_summary(append)["added-data-files"], _summary(append)["added-records"]) == ("1", "10")
    assert _summary(append)["total-records"] == _summary(before)["total-records"] == "10"
    assert append.sequence_number == delete.sequence_number + 1
    # one commit: a single new metadata version holds both; the one before it has neither
    assert _metadata_versions(table) == versions_before + 1
    previous = table.io.new_input(table.metadata.metadata_log[-1].metadata_file)
    earlier = FromInputFile.table_metadata(previous)
    assert earlier.current_snapshot_id == before.snapshot_id
    assert metadata["iceberg_cleaned_files_removed"] == metadata["iceberg_cleaned_files_added"] == 1


def test_quarantine_table_holds_the_records_quarantined_with_text_and_reason(local_lake) -> None:
    landing, lake = local_lake["landing"], local_lake["lake"]
    instance = DagsterInstance.ephemeral()
    broken = '{"event_id": "cut", "ts"'
    _land(landing, 1, "first", [_record(1, 1), BAD])
    key = object_key(STREAM, datetime(2026, 11, 21, 8, 2, tzinfo=UTC), object_id="broken")
    landing.write(key, gzip.compress((broken + json.dumps(_record(2, 2))).encode()))
    metadata = _cleaned_metadata(_run(local_lake, instance, partition_key=HOUR))
    assert metadata["records_quarantined"] == 2

    table = LakeTables(local_lake["settings"]).catalog.load_table(f"quarantine.{STREAM}")
    scanned = table.scan().to_arrow()
    assert scanned.num_rows == metadata["records_quarantined"]
    got = sorted(
        zip(scanned["reason_code"].to_pylist(), scanned["raw_text"].to_pylist(), strict=True)
    )
    assert got[0] == ("invalid_event_time", json.dumps(BAD))
    assert got[1][0] == "invalid_json" and got[1][1].startswith(broken)
    order = "source_key, position"
    assert _arrow_rows(scanned, order) == _duckdb_rows(
        _manifest_files(lake, "quarantine"), scanned.column_names, order
    )
    [snapshot] = table.snapshots()
    assert _summary(snapshot)["added-records"] == "2"

    _land(landing, 3, "third", [_record(3, 3), {**BAD, "event_id": "bad-2"}])
    _run(local_lake, instance, partition_key=HOUR)
    table = LakeTables(local_lake["settings"]).catalog.load_table(f"quarantine.{STREAM}")
    assert len(table.snapshots()) == 2
    assert _summary(table.current_snapshot())["added-records"] == "1"
    assert table.scan().to_arrow().num_rows == 3


def test_a_backfill_of_three_hours_is_one_commit(local_lake) -> None:
    landing = local_lake["landing"]
    for hour in (8, 9, 10):
        key = object_key(STREAM, datetime(2026, 11, 21, hour, 1, tzinfo=UTC), object_id=f"h{hour}")
        records = [
            {**_record(hour * 10 + i, i), "ts": f"2026-11-21T{hour:02d}:0{i}:00Z"} for i in range(2)
        ]
        landing.write(key, gzip.compress("".join(json.dumps(r) for r in [*records, BAD]).encode()))
    _run(
        local_lake,
        DagsterInstance.ephemeral(),
        tags={
            "dagster/asset_partition_range_start": "2026-11-21-08:00",
            "dagster/asset_partition_range_end": "2026-11-21-10:00",
        },
    )
    tables = LakeTables(local_lake["settings"])
    for layer, files, rows in (("cleaned", 3, 6), ("quarantine", 3, 3)):
        table = tables.catalog.load_table(f"{layer}.{STREAM}")
        [snapshot] = table.snapshots()
        summary = _summary(snapshot)
        assert summary["operation"] == "append"
        assert (summary["added-data-files"], summary["added-records"]) == (str(files), str(rows))
        assert summary["lake.arrival-hours"] == "2026-11-21T08,2026-11-21T09,2026-11-21T10"
        assert table.scan().to_arrow().num_rows == rows
