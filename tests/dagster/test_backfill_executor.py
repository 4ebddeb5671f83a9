"""Ad hoc materializations (the UI's Materialize, a backfill, `dagster asset materialize`)
run the implicit asset job: its executor is the Definitions' default, in-process, so a
range run of landing, schema and cleaned is one process, not a process per step."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterInstance, in_process_executor

from lake.firehose import partition_key
from lake.settings import REPO_ROOT
from orchestration.definitions import defs

STREAM = "robot_telemetry"
KEYS = [AssetKey([layer, STREAM]) for layer in ("landing", "schema", "cleaned")]


def test_the_implicit_asset_jobs_execute_in_process() -> None:
    repo = defs.get_repository_def()
    assert repo.get_implicit_job_def_for_assets(KEYS).executor_def is in_process_executor
    assert defs.resolve_implicit_global_asset_job_def().executor_def is in_process_executor


def test_a_cli_range_run_executes_every_step_in_the_run_process(
    tmp_path: Path, write_concatenated
) -> None:
    from lake.storage import LocalStorage

    landing = LocalStorage(tmp_path / "landing")
    first = datetime(2026, 11, 21, 8, tzinfo=UTC)
    for h in range(2):
        records = [
            {"event_id": f"e{h}-{i}", "ts": f"2026-11-21T{8 + h:02d}:0{i}:00Z", "robot_id": "r1"}
            for i in range(3)
        ]
        write_concatenated(landing, STREAM, first + timedelta(hours=h, minutes=5), records, f"o{h}")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "LANDING_URI": (tmp_path / "landing").as_uri(),
        "LAKE_URI": (tmp_path / "lake").as_uri(),
        "WAREHOUSE_PATH": str(tmp_path / "warehouse.duckdb"),
        "ICEBERG_CATALOG_URI": f"sqlite:///{tmp_path / 'iceberg.db'}",
        "PIPELINE_START_DATE": "2026-11-01",
    }
    hours = f"{partition_key(first)}...{partition_key(first + timedelta(hours=1))}"
    select = ",".join(k.to_user_string() for k in KEYS)
    subprocess.run(
        [sys.executable, "-m", "orchestration.launch", "asset", "materialize"]
        + ["--select", select, "--partition-range", hours],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        (run,) = instance.get_runs()
        steps = [
            e.dagster_event
            for e in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        ]
        assert {f"{layer}__{STREAM}" for layer in ("landing", "schema", "cleaned")} <= {
            s.step_key for s in steps
        }
        assert len({s.pid for s in steps}) == 1  # multiprocess: one child process per step
        cleaned = instance.fetch_materializations(KEYS[2], limit=10).records
    rows = {
        r.partition_key: r.asset_materialization.metadata["records_cleaned"].value for r in cleaned
    }
    assert rows == {partition_key(first): 3, partition_key(first + timedelta(hours=1)): 3}
