"""Concurrency limits live with the assets (issue 10, section 4): every asset is in a pool,
the shipped instance settings limit each pool to one step at a time, and two runs of one
stream launched with no tags at all (as from the asset graph, a backfill or the CLI) on a
real instance never work at once. The launcher gives every start those settings."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance
from dagster._core.instance.config import PoolGranularity

from assets.hourly import stream_pool
from assets.marts import WAREHOUSE_POOL
from lake.settings import REPO_ROOT
from orchestration import launch
from orchestration.definitions import defs, streams


def test_every_asset_is_in_its_pool() -> None:
    graph = defs.get_repository_def().asset_graph
    pools = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        pools[key.to_user_string()] = node.pools
    for stream in streams.streams:
        for layer in ("landing", "schema", "cleaned"):
            assert pools[f"{layer}/{stream}"] == {stream_pool(stream)}
    marts = [k for k in pools if k.startswith("marts/")]
    assert marts and all(pools[k] == {WAREHOUSE_POOL} for k in marts)


def test_the_launcher_gives_an_instance_with_one_step_a_pool(tmp_path: Path) -> None:
    home = launch.prepare_home({"DAGSTER_HOME": str(tmp_path / "home")})
    with DagsterInstance.from_config(str(home)) as instance:
        pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1
    assert pools.pool_granularity == PoolGranularity.OP


def test_the_launcher_defaults_dagster_home_and_keeps_an_operators_own_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(launch, "DEFAULT_HOME", tmp_path / "default")
    home = launch.prepare_home({})
    assert home == tmp_path / "default"
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    storage = {"custom": {**launch.INSTANCE_STORAGE, "config": {"base_dir": str(home)}}}
    assert settings.pop("storage") == storage  # Dagster's SQLite files in the home
    assert settings == yaml.safe_load(launch.PROJECT_CONFIG.read_text())

    own = tmp_path / "prod"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    launch.prepare_home({"DAGSTER_HOME": str(own)})
    assert (own / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    assert "no `concurrency: pools: default_limit`" in capsys.readouterr().err


def test_the_launcher_adds_the_code_location() -> None:
    assert launch.dagster_command(["dev", "-p", "3000"])[1:] == [
        "dev",
        "-p",
        "3000",
        "-w",
        "workspace.yaml",
    ]
    cmd = launch.dagster_command(["asset", "materialize", "--select", "x"])
    assert cmd[-2:] == ["-m", "orchestration.definitions"]
    assert launch.dagster_command(["dev", "-w", "other.yaml"])[1:] == ["dev", "-w", "other.yaml"]


def _step_spans(instance: DagsterInstance, run_id: str) -> list[tuple[float, float, str]]:
    """(start, end, step) of each step of a run, from the instance's event log."""
    starts: dict[str, float] = {}
    spans = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or record.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            starts[record.step_key] = record.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            spans.append((starts[record.step_key], record.timestamp, record.step_key))
    return spans


def test_two_untagged_runs_of_one_stream_never_work_at_once(
    tmp_path: Path, local_lake, write_concatenated
) -> None:
    """Two `dagster asset materialize` processes (no tags, the way the CLI launches runs)
    for two hours of one stream, started together on one instance."""
    landing = local_lake["landing"]
    hours = [datetime(2026, 11, 21, h, tzinfo=UTC) for h in (8, 9)]
    for hour in hours:
        for n in range(3):
            records = [
                {"event_id": f"{hour:%H}-{n}-{i}", "ts": f"{hour:%Y-%m-%dT%H}:10:00Z"}
                for i in range(50)
            ]
            write_concatenated(landing, "robot_telemetry", hour.replace(minute=n), records, f"o{n}")
    home = tmp_path / "home"
    # the instance's storage exists before the two processes start (two processes
    # creating a fresh SQLite instance at once race on its schema migration)
    launch.prepare_home({"DAGSTER_HOME": str(home)})
    with DagsterInstance.from_config(str(home)):
        pass
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LANDING_URI": landing.uri,
        "LAKE_URI": local_lake["lake"].uri,
        "WAREHOUSE_PATH": local_lake["warehouse_path"],
    }
    select = "schema/robot_telemetry,cleaned/robot_telemetry"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestration.launch", "asset", "materialize"]
            + ["--select", select, "--partition", f"{hour:%Y-%m-%d-%H}:00"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for hour in hours
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.is_success for r in runs)
        assert all(not any(k.startswith("stream") for k in r.tags) for r in runs)
        first, second = (
            [s for s in _step_spans(instance, r.run_id) if s[2].endswith("__robot_telemetry")]
            for r in runs
        )
    assert len(first) == len(second) == 2  # schema and cleaned
    for a_start, a_end, a_step in first:
        for b_start, b_end, b_step in second:
            assert a_end <= b_start or b_end <= a_start, f"{a_step} and {b_step} overlapped"
