"""What `make dev` sets up: the demo seed (once), partitions from its marker, the
run-event level of the instance, and the schema check's op name."""

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from lake.layout import DEMO_SEED_MARKER
from lake.settings import REPO_ROOT, Settings
from lake.simulator.demo import seed
from lake.storage import LocalStorage
from orchestration import launch
from orchestration.definitions import defs


def _settings(tmp_path: Path) -> Settings:
    return Settings((tmp_path / "landing").as_uri(), (tmp_path / "lake").as_uri(), "unused")


def test_demo_seed_writes_faults_once_and_records_its_first_event_day(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    settings = _settings(tmp_path)
    now = datetime(2026, 11, 21, 2, 12, tzinfo=UTC)
    first, written = seed(settings, 2, now)
    assert written
    # ends at 02:10 (5-minute objects), starts 2 h earlier; late records trail by 3 h
    marker = json.loads(LocalStorage(tmp_path / "lake").read(DEMO_SEED_MARKER))
    assert marker["first_arrival"] == "2026-11-21T00:10:00+00:00"
    assert marker["first_event_day"] == "2026-11-20"
    objects = list(LocalStorage(tmp_path / "landing").list())
    assert {o.key.split("/")[0] for o in objects} == {
        "robot_telemetry",
        "clickstream",
        "cloudtrail",
    }
    summary = re.search(
        r"\((\d+) malformed, (\d+) duplicates, (\d+) late\)", capsys.readouterr().out
    )
    assert summary and all(int(n) > 0 for n in summary.groups()), summary

    again, written_again = seed(settings, 2, datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
    assert not written_again and again == first
    assert len(list(LocalStorage(tmp_path / "landing").list())) == len(objects)


def _partition_start(env: dict[str, str]) -> str:
    code = "from orchestration.definitions import hourly as p, daily as d, settings as s;"
    code += "assert s.pipeline_start_date == str(d.start.date());"  # the sensors' start too
    code += "print(p.start.isoformat(), d.start.isoformat())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_partitions_start_on_the_seeds_first_event_day_unless_configured(tmp_path: Path) -> None:
    seed(_settings(tmp_path), 1, datetime(2026, 11, 21, 8, 30, tzinfo=UTC))
    env = {k: v for k, v in os.environ.items() if k != "PIPELINE_START_DATE"}
    env |= {
        "LAKE_URI": (tmp_path / "lake").as_uri(),
        "LANDING_URI": (tmp_path / "landing").as_uri(),
    }
    assert _partition_start(env) == ["2026-11-21T00:00:00+00:00"] * 2  # 07:30 - 3 h: same day
    assert (
        _partition_start(env | {"PIPELINE_START_DATE": "2026-10-01"})
        == ["2026-10-01T00:00:00+00:00"] * 2
    )
    assert (
        _partition_start(env | {"LAKE_URI": (tmp_path / "empty").as_uri()})
        == ["2026-01-01T00:00:00+00:00"] * 2
    )


def test_run_events_print_at_info_unless_run_log_level_says_otherwise(tmp_path: Path) -> None:
    home = launch.prepare_home({"DAGSTER_HOME": str(tmp_path / "a")})
    assert yaml.safe_load((home / "dagster.yaml").read_text())["python_logs"] == {
        "python_log_level": "INFO"
    }
    home = launch.prepare_home({"DAGSTER_HOME": str(tmp_path / "b"), "RUN_LOG_LEVEL": "debug"})
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    assert settings["python_logs"]["python_log_level"] == "DEBUG"
    assert settings["concurrency"]["pools"]["default_limit"] == 1


def test_the_schema_check_runs_as_a_named_op() -> None:
    job = defs.get_repository_def().get_implicit_global_asset_job_def()
    check_ops = [n for n in job.graph.node_names() if "check" in n or "schema_change" in n]
    assert check_ops == ["column_schema_change"]
    checks = {k.to_user_string() for k in defs.get_repository_def().asset_checks_defs_by_key}
    assert "schema/robot_telemetry:column_schema_change" in checks


def test_a_run_whose_process_never_comes_up_is_failed_by_run_monitoring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run left waiting to start (a launch cut off, the code server gone) must not hold a
    run slot and its hour's batches for ever: the project's instance runs the monitoring
    daemon, which fails it past dagster.yaml's start timeout (run_retries relaunches it)."""
    import logging

    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._daemon.monitoring import run_monitoring
    from dagster._daemon.monitoring.run_monitoring import monitor_starting_run

    home = launch.prepare_home({"DAGSTER_HOME": str(tmp_path / "home")})
    with DagsterInstance.from_config(str(home)) as instance:
        assert "MONITORING" in instance.get_required_daemon_types()
        job = defs.resolve_job_def("daily_marts")
        run = instance.create_run_for_job(job, status=DagsterRunStatus.NOT_STARTED)
        created = instance.get_run_record_by_id(run.run_id)
        began = created.create_timestamp.timestamp()
        for waited, status in ((60, DagsterRunStatus.NOT_STARTED), (181, DagsterRunStatus.FAILURE)):
            monkeypatch.setattr(run_monitoring, "get_current_timestamp", lambda w=waited: began + w)
            record = instance.get_run_record_by_id(run.run_id)
            monitor_starting_run(instance, record, logging.getLogger("test"))
            assert instance.get_run_by_id(run.run_id).status == status
