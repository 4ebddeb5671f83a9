"""CLEAN_COMPUTE=subprocess with CLEAN_WORKERS=2: a range run's two chunks of hours cleaned
on two Pipes workers (`python -m workers.clean`), settled and committed by the step, give
what the serial in-process step gives: Iceberg rows, data files and manifests,
materializations by hour and checks, with records redelivered across the chunks' boundary
and within a chunk (tests/unit/test_parallel_hours.py's objects)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from dagster import DagsterInstance

from lake import layout
from lake.settings import Settings
from lake.storage import S3Storage
from orchestration.resources import resources_from_env
from tests.dagster.test_pipes_cleaning import (
    TOKEN,
    _checks,
    _materializations,
    _rows,
    outcome,
    run_range,
)
from tests.incremental_lake import ROBOT_COLUMNS, catalog_table
from tests.unit.test_parallel_hours import DATABASE, SPEC, land, make_lake

OPENED = "[pipes] external process successfully opened dagster pipes"
RANGE_TAGS = {
    "dagster/asset_partition_range_start": "2026-11-21-08:00",
    "dagster/asset_partition_range_end": "2026-11-21-13:00",
}


def test_two_subprocess_workers_clean_as_the_serial_step(tmp_path: Path) -> None:
    outcomes = {}
    for compute, workers in (("inprocess", 1), ("subprocess", 2)):
        root = tmp_path / compute
        settings = replace(make_lake(root, workers), clean_compute=compute)
        instance = DagsterInstance.ephemeral()
        result = run_range(resources_from_env(settings), instance=instance, tags=RANGE_TAGS)
        assert result.success, compute
        opened = [e for e in instance.all_logs(result.run_id) if OPENED in (e.user_message or "")]
        assert len(opened) == (2 if compute == "subprocess" else 0)  # a worker per chunk
        outcomes[compute] = outcome(settings, result, root)
    serial, workers = outcomes["inprocess"], outcomes["subprocess"]
    assert sorted(r["event_id"] for r in serial["cleaned"]) == sorted(
        [f"e{n}" for n in range(1, 9)] + [f"e9{n}" for n in range(10)]
    )
    assert len(serial["metadata"]) == 6
    for part in serial:
        assert workers[part] == serial[part], part


# The same with the lake on moto's S3 over HTTP: the chunks come back through the lake's
# bucket (lake.cleaning.handoff), which the step empties once the run is committed.
HANDED_BACK = "chunk handed back: "


def s3_lake(bucket: str, name: str, root: Path, **settings: Any) -> Settings:
    """tests/unit/test_parallel_hours.py's landing and catalog table under `name/` of the
    bucket, with `settings` (Settings fields) on top."""
    settings = replace(
        Settings.from_env(),  # the test's PII_HASH_KEY (tests/conftest.py's aws_env)
        landing_uri=f"s3://{bucket}/{name}/landing",
        lake_uri=f"s3://{bucket}/{name}/lake",
        warehouse_path=str(root / "warehouse.duckdb"),
        iceberg_catalog_uri=f"sqlite:///{root / 'iceberg.db'}",
        **settings,
    )
    root.mkdir(parents=True)
    table = catalog_table(SPEC.name, ROBOT_COLUMNS, VersionId="1")
    S3Storage(bucket, f"{name}/lake").write(
        layout.catalog_table(DATABASE, SPEC.name), json.dumps(table).encode()
    )
    land(S3Storage(bucket, f"{name}/landing"))  # type: ignore[arg-type]
    return settings


def s3_outcome(settings: Settings, result, bucket: str, name: str) -> dict:
    """pipes_cleaning's outcome (rows, files, metadata, checks) of a lake on S3."""
    lake = S3Storage(bucket, f"{name}/lake")
    files = sorted(
        TOKEN.sub("<token>", info.key)
        for layer in ("cleaned/", "quarantine/", "_state/cleaned/")
        for info in lake.list(layer)
        if "/metadata/" not in info.key
    )
    return {
        "cleaned": _rows(settings, "cleaned"),
        "quarantine": _rows(settings, "quarantine"),
        "files": files,
        "metadata": _materializations(result, f"s3://{bucket}/{name}"),  # type: ignore[arg-type]
        "checks": _checks(result),
    }


def serial_on_s3(bucket: str, tmp_path: Path) -> dict:
    settings = s3_lake(bucket, "serial", tmp_path / "serial", clean_workers=1)
    result = run_range(resources_from_env(settings), tags=RANGE_TAGS)
    assert result.success
    serial = s3_outcome(settings, result, bucket, "serial")
    assert len(serial["cleaned"]) == 18 and len(serial["metadata"]) == 6
    return serial


def handed_back(instance: DagsterInstance, run_id: str) -> list[str]:
    """Where the run's chunks were handed back, as their workers logged it."""
    logs = (e.user_message or "" for e in instance.all_logs(run_id))
    return sorted(m.split(" at ", 1)[1] for m in logs if HANDED_BACK in m)


def test_two_subprocess_workers_on_s3_hand_back_through_the_lake(
    s3_bucket: str, tmp_path: Path
) -> None:
    serial = serial_on_s3(s3_bucket, tmp_path)
    settings = s3_lake(
        s3_bucket, "two", tmp_path / "two", clean_workers=2, clean_compute="subprocess"
    )
    instance = DagsterInstance.ephemeral()
    result = run_range(resources_from_env(settings), instance=instance, tags=RANGE_TAGS)
    assert result.success
    chunks = f"s3://{s3_bucket}/two/lake/_state/chunks/{SPEC.name}/"
    [first, second] = handed_back(instance, result.run_id)
    assert first.startswith(chunks) and first.endswith("/20261121T08/")
    assert second.startswith(chunks) and second.endswith("/20261121T11/")
    assert not list(S3Storage(s3_bucket, "two/lake").list("_state/chunks/"))  # dropped
    assert s3_outcome(settings, result, s3_bucket, "two") == serial
