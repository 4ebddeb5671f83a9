"""What the Dagster UI shows for landing/, schema/ and cleaned/: read back from the
instance's event log after real runs over local folders, Parquet and DuckDB."""

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import yaml
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    FreshnessPolicy,
    materialize,
)
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver

from assets.cleaned import build_cleaned_asset
from lake.firehose import object_key
from lake.streams import STREAMS_FILE, load_streams
from orchestration.definitions import build_ingest_assets, defs, hourly, ingest_assets

STREAM = "robot_telemetry"
DAY = datetime(2026, 11, 21, tzinfo=UTC)
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2026-11-21-08:00",
    "dagster/asset_partition_range_end": "2026-11-21-10:00",
}


def _record(event_id: str, hour: int) -> dict:
    return {
        "event_id": event_id,
        "ts": f"2026-11-21T{hour:02d}:00:00Z",
        "robot_id": "R01",
        "milking": {"yield_kg": 11.5},
        "operator": {"name": "Jo"},
    }


def _land(landing, hour: int, minute: int, event_ids: list[str]) -> tuple[str, int]:
    """One gzip object of concatenated records; its key and size in bytes."""
    body = gzip.compress("".join(json.dumps(_record(e, hour)) for e in event_ids).encode())
    key = object_key(STREAM, DAY.replace(hour=hour, minute=minute), object_id=f"{hour}-{minute}")
    landing.write(key, body)
    return key, len(body)


def _materializations(instance: DagsterInstance, layer: str, partition: str) -> list[dict]:
    """Every materialization of the hour, oldest first, as plain metadata values."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey([layer, STREAM]), asset_partitions=[partition]),
        limit=100,
        ascending=True,
    ).records
    return [
        {k: v.value for k, v in r.asset_materialization.metadata.items()}
        | {"_run_id": r.run_id, "_tags": dict(r.asset_materialization.tags or {})}
        for r in records
    ]


def _clean_config(**config: object) -> dict:
    return {"ops": {f"cleaned__{STREAM}": {"config": config}}}


def test_a_range_run_gives_each_hour_its_own_counts(local_lake) -> None:
    landing = local_lake["landing"]
    # hour -> objects -> event ids; hour 10 repeats one id inside the hour (a duplicate)
    planned = {
        8: [["a1", "a2", "a3"], ["a4", "a5", "a6", "a7"]],
        9: [["b1", "b2", "b3", "b4", "b5"]],
        10: [["c1"], ["c2", "c3"], ["c4", "c5", "c2"]],
    }
    landed_bytes = {
        hour: sum(_land(landing, hour, m, ids)[1] for m, ids in enumerate(objects))
        for hour, objects in planned.items()
    }
    instance = DagsterInstance.ephemeral()
    result = materialize(
        ingest_assets(STREAM), resources=local_lake["resources"], instance=instance, tags=RANGE_TAGS
    )
    assert result.success

    for hour, objects in planned.items():
        partition = f"2026-11-21-{hour:02d}:00"
        ids = [e for ids in objects for e in ids]
        [landing_md] = _materializations(instance, "landing", partition)  # one per run
        assert (landing_md["objects"], landing_md["bytes"]) == (len(objects), landed_bytes[hour])
        [schema_md] = _materializations(instance, "schema", partition)
        assert (schema_md["objects"], schema_md["records_sampled"]) == (len(objects), len(ids))
        [cleaned_md] = _materializations(instance, "cleaned", partition)
        assert cleaned_md["objects"] == len(objects)
        assert cleaned_md["records_in"] == len(ids)
        assert cleaned_md["records_cleaned"] == len(set(ids))
        assert cleaned_md["duplicates_dropped"] == len(ids) - len(set(ids))
        assert cleaned_md["dagster/row_count"] == len(set(ids))
        assert cleaned_md["batch_records_in"] == len(ids)

    # the checks judge the run: every record of the three hours
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    all_ids = [e for objects in planned.values() for ids in objects for e in ids]
    assert checks["records_reconcile"].passed
    assert checks["records_reconcile"].metadata["records_in"].value == len(all_ids)
    assert checks["quarantine_ratio"].metadata["records_in"].value == len(all_ids)
    assert checks["schema_compatible"].passed


def test_a_later_micro_batch_shows_the_hour_totals_and_its_own_batch(local_lake) -> None:
    landing, resources = local_lake["landing"], local_lake["resources"]
    instance = DagsterInstance.ephemeral()
    partition = "2026-11-21-08:00"
    _land(landing, 8, 1, ["m1", "m2", "m3"])
    assert materialize(
        ingest_assets(STREAM), partition_key=partition, resources=resources, instance=instance
    ).success
    second, _ = _land(landing, 8, 2, ["m4", "m5"])
    _land(landing, 8, 3, ["m6", "m7", "m8", "m9", "m10"])  # after the batch's last key

    assert materialize(
        ingest_assets(STREAM),
        partition_key=partition,
        resources=resources,
        instance=instance,
        run_config=_clean_config(up_to_key=second),
    ).success
    latest = _materializations(instance, "cleaned", partition)[-1]
    assert (latest["objects"], latest["records_in"], latest["records_cleaned"]) == (2, 5, 5)
    assert latest["objects_pending"] == 1
    assert (latest["batch_objects"], latest["batch_records_in"]) == (1, 2)
    assert latest["batch_objects_skipped"] == 1
    assert latest["dagster/row_count"] == 5


def test_a_run_with_nothing_new_records_the_hour_totals_not_zeros(local_lake) -> None:
    landing, resources = local_lake["landing"], local_lake["resources"]
    instance = DagsterInstance.ephemeral()
    partition = "2026-11-21-08:00"
    _land(landing, 8, 1, ["n1", "n2", "n3", "n4"])
    for _ in range(2):
        assert materialize(
            ingest_assets(STREAM), partition_key=partition, resources=resources, instance=instance
        ).success

    first, again = _materializations(instance, "cleaned", partition)
    assert first["_run_id"] != again["_run_id"]
    assert (again["objects"], again["records_in"], again["records_cleaned"]) == (1, 4, 4)
    assert again["dagster/row_count"] == 4
    assert (again["batch_objects"], again["batch_records_in"]) == (0, 0)
    assert again["batch_objects_skipped"] == 1
    assert again["event_dates"] == []  # nothing for the marts sensor to rebuild
    assert first["event_dates"] == ["2026-11-21"]


def test_cleaned_carries_column_schema_row_count_table_name_and_uri(local_lake) -> None:
    landing, lake = local_lake["landing"], local_lake["lake"]
    _land(landing, 8, 1, ["t1", "t2", "t3"])
    _land(landing, 8, 2, ["t4", "t5"])
    instance = DagsterInstance.ephemeral()
    assert materialize(
        ingest_assets(STREAM),
        partition_key="2026-11-21-08:00",
        resources=local_lake["resources"],
        instance=instance,
    ).success
    [md] = _materializations(instance, "cleaned", "2026-11-21-08:00")

    assert md["dagster/table_name"] == f"cleaned.{STREAM}"
    table_folder = lake.root / "cleaned" / STREAM
    assert md["dagster/uri"] == f"{table_folder.as_uri()}/"
    files = sorted(str(p) for p in table_folder.glob("dt=*/*.parquet"))
    # the hour's two small objects share one file (lake.cleaning.writing.SHARE_ROWS)
    assert len(files) == 1 and sorted(unquote(urlparse(u).path) for u in md["files"]) == files
    parquet = duckdb.sql(f"SELECT * FROM read_parquet({files!r}, hive_partitioning = true)")
    assert md["dagster/row_count"] == parquet.count("*").fetchall()[0][0] == 5

    def canonical(kind: str) -> str:  # DuckDB's own name for a type (TIMESTAMPTZ, ...)
        return str(duckdb.sql(f"SELECT NULL::{kind}").types[0])

    shown = [(c.name, canonical(c.type)) for c in md["dagster/column_schema"].columns]
    assert shown == [
        (name, str(kind)) for name, kind in zip(parquet.columns, parquet.types, strict=True)
    ]


def _with_entry_changed(tmp_path: Path, stream: str, key: str, value: object) -> Path:
    doc = yaml.safe_load(STREAMS_FILE.read_text())
    doc["streams"][stream][key] = value
    path = tmp_path / "streams.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_code_version_follows_the_streams_yaml_entry(local_lake, tmp_path: Path) -> None:
    original = load_streams()
    doc = yaml.safe_load(STREAMS_FILE.read_text())
    reordered = tmp_path / "reordered.yaml"  # same content, keys reversed, no comments
    reordered.write_text(
        yaml.safe_dump(
            {**doc, "streams": {n: dict(reversed(b.items())) for n, b in doc["streams"].items()}},
            sort_keys=False,
        )
    )
    assert load_streams(reordered)[STREAM].code_version == original[STREAM].code_version
    changed = load_streams(_with_entry_changed(tmp_path, STREAM, "allowed_lateness_hours", 36))
    assert changed[STREAM].code_version != original[STREAM].code_version
    assert changed["clickstream"].code_version == original["clickstream"].code_version

    def assets_of(spec):
        return build_ingest_assets(spec, original.database)

    _land(local_lake["landing"], 8, 1, ["v1"])
    instance = DagsterInstance.ephemeral()
    partition = "2026-11-21-08:00"
    assert materialize(
        assets_of(original[STREAM]),
        partition_key=partition,
        resources=local_lake["resources"],
        instance=instance,
    ).success
    [md] = _materializations(instance, "cleaned", partition)
    assert md["_tags"]["dagster/code_version"] == original[STREAM].code_version

    def status(spec) -> StaleStatus:  # what the UI shows, from Dagster's own resolver
        resolver = get_stale_status_resolver(instance, assets_of(spec))
        return resolver.get_status(AssetKey(["cleaned", STREAM]), partition)

    assert status(original[STREAM]) == StaleStatus.FRESH
    assert status(changed[STREAM]) == StaleStatus.STALE


def test_asset_specs_carry_owners_pii_tag_and_freshness(tmp_path: Path) -> None:
    declared = yaml.safe_load(STREAMS_FILE.read_text())["streams"]
    graph = defs.get_repository_def().asset_graph
    for stream, entry in declared.items():
        for layer in ("landing", "schema", "cleaned"):
            node = graph.get(AssetKey([layer, stream]))
            assert node.owners == entry["owners"]
            assert node.tags["pii"] == "true"  # every shipped stream has PII rules
        fail = entry["freshness"]["fail_minutes"] if "freshness" in entry else 60
        warn = entry.get("freshness", {}).get("warn_minutes", fail // 2)
        cleaned = graph.get(AssetKey(["cleaned", stream]))
        assert cleaned.freshness_policy == FreshnessPolicy.time_window(
            fail_window=timedelta(minutes=fail), warn_window=timedelta(minutes=warn)
        )
        assert graph.get(AssetKey(["landing", stream])).freshness_policy is None

    # a stream with no PII rules, owners or freshness: defaults and no pii tag
    doc = yaml.safe_load(STREAMS_FILE.read_text())
    plain = {k: v for k, v in doc["streams"][STREAM].items() if not k.startswith("pii")}
    plain = {k: v for k, v in plain.items() if k not in ("owners", "freshness")}
    path = tmp_path / "streams.yaml"
    path.write_text(yaml.safe_dump({**doc, "streams": {"plain": plain}}))
    spec = load_streams(path)["plain"]
    cleaned = build_cleaned_asset(spec, "firehose_raw", hourly)
    key = AssetKey(["cleaned", "plain"])
    assert "pii" not in cleaned.specs_by_key[key].tags
    assert cleaned.specs_by_key[key].owners == ["team:data-platform"]
    assert cleaned.specs_by_key[key].freshness_policy == FreshnessPolicy.time_window(
        fail_window=timedelta(hours=1), warn_window=timedelta(minutes=30)
    )
