"""Issue 11: no raw PII value of the corpus reaches any output of the pipeline.

The corpus (tests/corpus/pii/) is landed in moto's S3 and run through Dagster with a
persistent instance (so its event log and compute logs are on disk): landing, schema
(synced to Glue), cleaned, every mart (alerts included), the DuckDB warehouse and the
Redshift files. Then every output is scanned for every raw value. Quarantine alone keeps
raw text (docs/cleaning.md: it is access-restricted), so `lake/quarantine/` is the one
prefix excepted; `landing/` is the input itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from dagster import DagsterInstance, materialize

from lake.storage import open_storage
from orchestration.definitions import ingest_assets, mart_assets
from tests.pii_scan.corpus import ARRIVAL_HOUR, EVENT_DAY, land, raw_values
from tests.pii_scan.scanner import Leak, Scanner, is_duckdb_file
from tests.pii_scan.sources import scan_bucket, scan_dagster, scan_duckdb_file, scan_glue
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3
STREAMS = ("cloudtrail", "robot_telemetry", "clickstream")
GLUE_DATABASE = "pii_scan_glue"
QUARANTINE = "lake/quarantine/"


@pytest.fixture
def pipeline_run(
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Iterator[dict]:
    """The corpus through every asset; returns where everything was left."""
    home, warehouse = tmp_path / "dagster_home", tmp_path / "warehouse" / "warehouse.duckdb"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    landed = land(open_storage(f"s3://{s3_bucket}/landing"))
    resources = s3_resources(s3_bucket, warehouse, glue_database=GLUE_DATABASE)
    with DagsterInstance.get() as instance:
        for stream in STREAMS:
            result = materialize(
                ingest_assets(stream),
                partition_key=ARRIVAL_HOUR,
                resources=resources,
                instance=instance,
            )
            assert result.success, stream
        result = materialize(
            mart_assets, partition_key=EVENT_DAY, resources=resources, instance=instance
        )
        assert result.success
        output = capfd.readouterr()
        yield {
            "bucket": s3_bucket,
            "landed": landed,
            "home": home,
            "warehouse": warehouse,
            "instance": instance,
            "stdout": output.out,
            "stderr": output.err,
            "log records": caplog.text,
        }


def test_no_raw_pii_value_reaches_any_output(pipeline_run: dict) -> None:
    run = pipeline_run
    values = raw_values()
    scanner = Scanner(values)
    s3 = boto3.client("s3")
    leaks: list[Leak] = []

    bucket_leaks, left_out = scan_bucket(
        scanner, s3, run["bucket"], excepted=("landing/", QUARANTINE)
    )
    leaks += bucket_leaks
    # only the input and quarantine are left out, and the input is only what was landed
    assert sorted(k for k in left_out if k.startswith("landing/")) == sorted(
        f"landing/{k}" for k in run["landed"]
    )
    quarantined = [k for k in left_out if k.startswith(QUARANTINE)]
    assert quarantined, "the malformed corpus line should be quarantined"
    assert set(left_out) == {f"landing/{k}" for k in run["landed"]} | set(quarantined)

    glue_leaks, tables = scan_glue(scanner, boto3.client("glue"))
    assert {f"{GLUE_DATABASE}.{s}" for s in STREAMS} <= set(tables)
    leaks += glue_leaks

    warehouse: Path = run["warehouse"]
    wh_leaks, relations = scan_duckdb_file(scanner, warehouse)
    assert {f"marts.{m.key.path[-1]}" for m in mart_assets} <= set(relations)
    leaks += wh_leaks
    duckdb_files = [p for p in warehouse.parent.rglob("*") if p.is_file() and is_duckdb_file(p)]
    leaks += scanner.tree(warehouse.parent, skip=duckdb_files)  # the mart copies

    dagster_leaks, events = scan_dagster(scanner, run["instance"])
    assert events > 0
    leaks += dagster_leaks
    home_files = [p for p in run["home"].rglob("*") if p.is_file()]
    assert home_files, "the instance keeps its storage under DAGSTER_HOME"
    leaks += scanner.tree(run["home"])  # event log DBs, compute logs, run storage
    for captured in ("stdout", "stderr", "log records"):
        leaks += scanner.text(f"captured {captured}", "(text)", run[captured])

    _assert_outputs_exist(s3, run["bucket"])
    # the positive control: the scanner finds the quarantined values where they are
    in_quarantine = {
        leak.value
        for key in quarantined
        for leak in scanner.blob(key, s3.get_object(Bucket=run["bucket"], Key=key)["Body"].read())
    }
    assert {v.value for v in values if v.quarantine_only} <= in_quarantine

    report = "\n".join(str(leak) for leak in leaks)
    assert not leaks, f"{len(leaks)} raw values found outside quarantine:\n{report}"


def _assert_outputs_exist(s3, bucket: str) -> None:
    """A scan of nothing finds nothing: every layer must have written its files."""
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="lake/")
        for o in page.get("Contents", [])
    ]
    for stream in STREAMS:
        assert any(k.startswith(f"lake/cleaned/{stream}/dt={EVENT_DAY}/") for k in keys), stream
        assert f"lake/catalog/firehose_raw/{stream}.json" in keys
    for mart in mart_assets:
        name = mart.key.path[-1]
        assert any(k.startswith(f"lake/marts/{name}/") for k in keys), name
        assert f"lake/redshift/{name}/create_table.sql" in keys, name
