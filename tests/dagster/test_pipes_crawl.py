"""The crawl (schema/<stream>) on a Dagster Pipes subprocess worker (CRAWL_COMPUTE=subprocess)
against the same step in the run's process: two lakes landed alike with an incompatible
drift, one range run each (Glue sync on, moto's Glue over HTTP), then their catalog
tables, versions, crawl records, Glue tables, materializations and checks side by side;
and the ECS task the crawl runs on, from the settings."""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from dagster import AssetKey, DagsterInstance, TableSchema, TimeWindow

from lake.crawl_run import CrawlOptions
from lake.firehose import object_key
from lake.settings import DEFAULTS, Settings, SettingsError
from lake.storage import LocalStorage
from lake.streams import load_streams
from orchestration import pipes_compute
from orchestration.aws_resources import GlueResource
from orchestration.resources import resources_from_env
from tests.dagster.test_pipes_cleaning import run_range

pytestmark = pytest.mark.s3

STREAM = "robot_telemetry"
SCHEMA = AssetKey(["schema", STREAM])
HOURS = ("2026-11-21-08:00", "2026-11-21-09:00")
RANGE_TAGS = {
    "dagster/asset_partition_range_start": HOURS[0],
    "dagster/asset_partition_range_end": HOURS[1],
}
COMPUTES = ("inprocess", "subprocess")
TIMES = ("CreateTime", "UpdateTime", "LastAccessTime", "created_at", "crawled_at", "updated_at")


def _land(landing: LocalStorage) -> None:
    """Hour 8 creates the table; hour 9 adds a field and turns `gate` from a struct into a
    string, which BACKWARD compatibility forbids."""
    gated = {"gate": {"gate_id": "G1"}}
    records = {
        8: [{"event_id": f"e{i}", "ts": f"2026-11-21T08:0{i}:00Z", **gated} for i in range(3)]
    }
    records[9] = [{"event_id": "e9", "ts": "2026-11-21T09:01:00Z", "gate": "G1", "new": 1.5}]
    for hour, batch in records.items():
        for i, record in enumerate(batch):
            key = object_key(
                STREAM, datetime(2026, 11, 21, hour, 5, tzinfo=UTC), object_id=f"o{hour}{i}"
            )
            landing.write(key, gzip.compress(json.dumps(record).encode(), mtime=0))


def _untimed(value: Any) -> Any:
    """A catalog document without the times the run wrote it at."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMES}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _plain(value: Any, root: Path) -> tuple[str, Any]:
    """A metadata value as its Dagster type and its value, the lake's folder taken out."""
    shown = getattr(value, "value", value)
    shown = repr(shown) if isinstance(shown, TableSchema) else shown  # a record: not iterable
    text = json.dumps(shown, default=repr, sort_keys=True).replace(str(root), "<root>")
    return type(value).__name__, json.loads(text)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # JSON lines
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _catalog_files(root: Path) -> dict[str, Any]:
    """The catalog tables, versions, partitions and crawl records under the lake."""
    catalog = root / "lake" / "catalog"
    return {
        str(p.relative_to(catalog)): _untimed(_json(p.read_text().replace(str(root), "<root>")))
        for p in sorted(catalog.rglob("*"))
        if p.is_file()
    }


def _glue(database: str, root: Path) -> dict[str, Any]:
    glue = boto3.client("glue")
    table = glue.get_table(DatabaseName=database, Name=STREAM)["Table"]
    partitions = glue.get_partitions(DatabaseName=database, TableName=STREAM)["Partitions"]
    return json.loads(
        json.dumps(
            {
                "columns": table["StorageDescriptor"]["Columns"],
                "parameters": table.get("Parameters"),
                "partitions": sorted(
                    (p["Values"], p["StorageDescriptor"]["Location"], p["Parameters"])
                    for p in partitions
                ),
            },
            default=str,
        ).replace(str(root), "<root>")
    )


def _run(landed: Path, root: Path, compute: str) -> dict[str, Any]:
    """The crawl of `landed` on `compute`; on a worker, its Glue database is set on the
    Glue resource by hand (GLUE_DATABASE unset), which the worker must sync to as well."""
    database = f"firehose_raw_{uuid.uuid4().hex[:8]}"
    by_hand = compute != "inprocess"
    settings = replace(
        DEFAULTS,
        landing_uri=(root / "landing").as_uri(),
        lake_uri=(root / "lake").as_uri(),
        warehouse_path=str(root / "warehouse.duckdb"),
        glue_database=None if by_hand else database,
        crawl_compute=compute,
    )
    shutil.copytree(landed, root / "landing")  # the same files, mtimes (local ETags) and all
    instance = DagsterInstance.ephemeral()
    resources = resources_from_env(settings)
    if by_hand:
        resources["glue"] = GlueResource(database=database)
    result = run_range(resources, instance=instance, tags=RANGE_TAGS)
    return {
        "pipes": any("[pipes]" in e.user_message for e in instance.all_logs(result.run_id)),
        "materialized": sorted(
            (e.asset_key.to_user_string(), e.partition)
            for e in result.get_asset_materialization_events()
        ),
        "metadata": {
            e.partition: {k: _plain(v, root) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()
            if e.asset_key == SCHEMA
        },
        "checks": [
            (
                c.check_name,
                c.passed,
                c.severity,
                {k: _plain(v, root) for k, v in c.metadata.items()},
            )
            for c in result.get_asset_check_evaluations()
        ],
        "catalog": _catalog_files(root),
        "glue": _glue(database, root),
    }


def test_a_subprocess_worker_crawls_exactly_as_the_run_process_does(
    tmp_path: Path, aws_env: str
) -> None:
    _land(LocalStorage(tmp_path / "landed"))
    local, worker = (_run(tmp_path / "landed", tmp_path / c, c) for c in COMPUTES)
    assert (local.pop("pipes"), worker.pop("pipes")) == (False, True)  # the worker ran it
    # the drift fails the blocking check: cleaned/ does not run, on either compute
    assert local["materialized"] == [
        (f"{layer}/{STREAM}", h) for layer in ("landing", "schema") for h in HOURS
    ]
    [(name, passed, _, check_metadata)] = local["checks"]
    assert (name, passed) == ("schema_compatible", False)
    assert check_metadata["incompatible_changes"] == (
        "JsonMetadataValue",
        ["gate: struct<gate_id:string> -> string"],
    )
    hour8, hour9 = (local["metadata"][h] for h in HOURS)
    assert hour8["objects"] == ("IntMetadataValue", 3)
    assert hour9["objects_crawled"] == ("IntMetadataValue", 1)
    assert hour9["dagster/column_schema"][0] == "TableSchemaMetadataValue"
    assert hour9["athena_ddl"][0] == "MarkdownMetadataValue"
    assert {c["Name"] for c in local["glue"]["columns"]} == {
        "event_id",
        "ts",
        "gate",
    }  # nothing of the drift applied
    assert len(local["glue"]["partitions"]) == 2
    assert any("/versions/" in k for k in local["catalog"])
    for part in local:
        assert worker[part] == local[part], part


class _RecordingClient:
    def run(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs


def test_the_crawl_runs_on_the_cleaning_steps_ecs_task_with_its_own_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "CRAWL_COMPUTE": "ecs",
        "CLEAN_ECS_CLUSTER": "lake-workers",
        "CLEAN_ECS_TASK_DEFINITION": "lake-worker:7",
        "CLEAN_ECS_SUBNETS": "subnet-a",
        "LAKE_URI": "s3://the-lake/prod",
    }
    with pytest.raises(SettingsError, match="CRAWL_COMPUTE=ecs needs CLEAN_ECS_CLUSTER"):
        Settings.from_env({k: v for k, v in env.items() if k != "CLEAN_ECS_CLUSTER"})
    settings = Settings.from_env(env)
    assert settings.clean_compute == "inprocess"  # each heavy step chooses its own
    monkeypatch.setattr(pipes_compute, "ecs_client", lambda s: _RecordingClient())
    window = TimeWindow(
        datetime(2026, 11, 21, 8, tzinfo=UTC), datetime(2026, 11, 21, 10, tzinfo=UTC)
    )
    context = SimpleNamespace(partition_time_window=window)
    spec = load_streams()[STREAM]

    sent: Any = pipes_compute.crawl_on_pipes(
        context,  # type: ignore[arg-type]
        settings,
        spec,
        "firehose_raw",
        CrawlOptions(full_crawl=True),
    )
    params = sent["run_task_params"]
    assert (params["cluster"], params["taskDefinition"]) == ("lake-workers", "lake-worker:7")
    [override] = params["overrides"]["containerOverrides"]
    assert override == {"name": "worker", "command": ["python", "-m", "workers.crawl"]}
    extras = sent["extras"]
    assert extras["window"] == [window.start.isoformat(), window.end.isoformat()]
    assert extras["options"] == {"full_crawl": True, "from_mark": False}
    assert (extras["stream"], extras["code_version"]) == (STREAM, spec.code_version)
    assert Settings.from_env(extras["settings"]) == settings
