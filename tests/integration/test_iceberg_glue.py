"""The Iceberg tables in the Glue catalog: LAKE_CATALOG=glue with the landing zone and the
lake on moto's S3 and Glue over real HTTP on 127.0.0.1."""

import io
import uuid
from datetime import UTC, datetime

import boto3
import pyarrow.parquet as pq
import pytest
from dagster import materialize

from lake.iceberg.catalog import LakeTables
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import open_storage
from orchestration.definitions import ingest_assets
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3
STREAM = "robot_telemetry"
HOUR = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def _parquet_files(bucket: str, prefix: str) -> dict[str, list[dict]]:
    """The rows of every Parquet file under `prefix`, read with boto3 and pyarrow."""
    s3 = boto3.client("s3")
    files = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".parquet") and "/metadata/" not in item["Key"]:
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                files[f"s3://{bucket}/{item['Key']}"] = pq.read_table(io.BytesIO(body)).to_pylist()
    return files


def _sorted(rows: list[dict], key: str) -> list[dict]:
    return sorted(rows, key=lambda r: (str(r[key]), repr(sorted(r.items()))))


@pytest.fixture
def cleaned_on_glue(s3_bucket: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """An hour of robot telemetry (duplicates and malformed records included) through
    landing, schema and cleaned with LAKE_CATALOG=glue. Glue databases of their own (moto's
    Glue lives as long as the session; the default names would meet other tests' tables)."""
    suffix = uuid.uuid4().hex[:8]
    namespaces = {layer: f"{layer}_{suffix}" for layer in ("cleaned", "quarantine", "marts")}
    for layer, name in namespaces.items():
        monkeypatch.setenv(f"{layer.upper()}_NAMESPACE", name)
    sim = Simulator(
        SimulatorConfig(
            seed=14,
            streams=(STREAM,),
            object_interval_s=900,
            duplicate_rate=0.05,
            malformed_rate=0.03,
        )
    )
    written = list(
        sim.write_range(open_storage(f"s3://{s3_bucket}/landing"), HOUR, HOUR.replace(hour=9))
    )
    assert sum(len(w.malformed) for w in written) > 0  # the quarantine table has rows to show
    resources = s3_resources(s3_bucket, tmp_path / "warehouse.duckdb", lake_catalog="glue")
    result = materialize(
        ingest_assets(STREAM), partition_key="2026-11-21-08:00", resources=resources
    )
    assert result.success
    settings = resources["settings"]
    assert (settings.lake_catalog, settings.lake_uri) == ("glue", f"s3://{s3_bucket}/lake")
    return {
        "bucket": s3_bucket,
        "written": written,
        "namespaces": namespaces,
        "tables": LakeTables(settings),
    }


@pytest.mark.parametrize("layer", ["cleaned", "quarantine"])
def test_glue_holds_iceberg_tables_at_the_layer_folders(cleaned_on_glue: dict, layer: str) -> None:
    bucket, database = cleaned_on_glue["bucket"], cleaned_on_glue["namespaces"][layer]
    table = boto3.client("glue").get_table(DatabaseName=database, Name=STREAM)["Table"]
    assert table["Parameters"]["table_type"] == "ICEBERG"  # what Athena and Spectrum look for
    folder = f"s3://{bucket}/lake/{layer}/{STREAM}"
    assert table["StorageDescriptor"]["Location"] == folder
    assert table["Parameters"]["metadata_location"].startswith(f"{folder}/metadata/")
    assert table["Parameters"]["metadata_location"].endswith(".metadata.json")

    iceberg = cleaned_on_glue["tables"].catalog.load_table(f"{database}.{STREAM}")
    [partition] = iceberg.spec().fields  # day of the event time (quarantine: arrival hour)
    source = iceberg.schema().find_field(partition.source_id).name
    assert (partition.name, str(partition.transform), source) == (
        "dt",
        "day",
        {"cleaned": "ts", "quarantine": "arrival_hour"}[layer],
    )


@pytest.mark.parametrize(("layer", "key"), [("cleaned", "event_id"), ("quarantine", "source_key")])
def test_glue_tables_scan_back_the_files_the_run_wrote(
    cleaned_on_glue: dict, layer: str, key: str
) -> None:
    bucket, tables = cleaned_on_glue["bucket"], cleaned_on_glue["tables"]
    files = _parquet_files(bucket, f"lake/{layer}/{STREAM}/")
    table = tables.catalog.load_table(f"{cleaned_on_glue['namespaces'][layer]}.{STREAM}")

    assert {task.file.file_path for task in table.scan().plan_files()} == set(files)
    scanned = table.scan().to_arrow().to_pylist()
    assert _sorted(scanned, key) == _sorted([r for rows in files.values() for r in rows], key)

    written = cleaned_on_glue["written"]
    if layer == "cleaned":  # every distinct well-formed event once
        assert sorted(r["event_id"] for r in scanned) == sorted(
            {r["event_id"] for w in written for r in w.records}
        )
    else:  # every broken text in a quarantined record (adjacent ones may share a record)
        quarantined = [(r["source_key"], r["raw_text"]) for r in scanned]
        for w in written:
            for text in w.malformed:
                assert any(k == w.key and text in raw for k, raw in quarantined), text
