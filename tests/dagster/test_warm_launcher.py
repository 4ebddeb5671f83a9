"""The project's run launcher (orchestration/warm_launcher.py) under a real queue daemon.

Runs are submitted with `dagster job launch` to the instance's queue (the project's
dagster.yaml, with run monitoring polled every second instead of every 30), and a real
`dagster-daemon run` dequeues and launches them: forked from its pre-loaded forkserver,
or, with RUN_WORKERS=spawn, by Dagster's default launcher through the code server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus
from dagster import __version__ as dagster_version
from dagster._cli import job as job_cli
from dagster._cli.workspace.cli_target import (
    WorkspaceOpts,
    get_remote_job_from_remote_repo,
    get_remote_repository_from_code_location,
    get_workspace_from_cli_opts,
)

from lake.settings import REPO_ROOT
from lake.storage import LocalStorage
from orchestration import graceful_stop, launch
from orchestration.warm_launcher import WORKER_TAG, WarmRunLauncher
from orchestration.worker_process import WorkerProcess
from tests.conftest import _write_concatenated

BOUND_S = 180
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
RECORDS = [{"event_id": f"e-{i}", "ts": "2026-11-21T08:10:00Z"} for i in range(120)]


LOCATIONS = ("firehose_lake", "launcher_tests")


def _workspace(path: Path, project: Path, names: tuple[str, ...]) -> Path:
    """A workspace file of the code locations `names`: a `dagster` command loads every
    location of its workspace in a code server of its own, the project's in ~10-40 s here."""
    locations = {
        "firehose_lake": {
            "python_module": {
                "module_name": "orchestration.definitions",
                "location_name": "firehose_lake",
                "working_directory": str(project),
            }
        },
        "launcher_tests": {
            "python_file": {
                "relative_path": str(project / "tests" / "dagster" / "launcher_jobs.py"),
                "location_name": "launcher_tests",
                "working_directory": str(project),
            }
        },
    }
    path.write_text(yaml.safe_dump({"load_from": [locations[name] for name in names]}))
    return path


class Daemon:
    """A `dagster-daemon run` on a fresh instance and lake, and how to submit runs to it;
    the code is the project's at `project` (this checkout unless given), the daemon's code
    locations `locations` (both unless given). Each run is submitted with a workspace of its
    location only (loaded in the test's process), as the daemon's location's origin."""

    def __init__(
        self,
        root: Path,
        extra_env: dict[str, str],
        project: Path = REPO_ROOT,
        locations: tuple[str, ...] = LOCATIONS,
    ) -> None:
        self.root, self.project = root, project
        self.home = launch.prepare_home({"DAGSTER_HOME": str(root / "home")})
        settings = yaml.safe_load((self.home / "dagster.yaml").read_text())
        settings["run_monitoring"]["poll_interval_seconds"] = 1
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(settings))
        self.markers = root / "markers"
        self.markers.mkdir()
        self.lake = root / "lake"
        self.landing = LocalStorage(root / "landing")
        self.workspace = _workspace(root / "workspace.yaml", project, locations)
        self.env = {
            **os.environ,
            "PYTHONPATH": str(project),
            "DAGSTER_HOME": str(self.home),
            "LANDING_URI": self.landing.uri,
            "LAKE_URI": self.lake.as_uri(),
            "WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
            "ICEBERG_CATALOG_URI": f"sqlite:///{root / 'iceberg.db'}",
            "LAUNCHER_TEST_MARKERS": str(self.markers),
            **extra_env,
        }
        with DagsterInstance.from_config(str(self.home)):
            pass  # the storage exists before two processes open it
        self.log = root / "daemon.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dagster._daemon", "run", "-w", str(self.workspace)],
                cwd=project,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.instance = DagsterInstance.from_config(str(self.home))

    def submit(
        self, location: str, job: str, tags: dict[str, str] | None = None, here: bool = False
    ) -> str:
        """Queues a run as `dagster job launch` does (Dagster's own steps), the location
        loaded in this process: the command would start an interpreter and a code server of
        the location (~20-45 s a run under CI's load). The run's code origin is the same as
        the daemon's location's (same file or module, folder and interpreter); its id.
        `here`: launched by this process's launcher instead, as the webserver launches a
        run without a queue (the worker gets this process's environment)."""
        workspace_file = self.root / f"workspace-{location}.yaml"
        opts = WorkspaceOpts(
            workspace=(str(_workspace(workspace_file, self.project, (location,))),)
        )
        with get_workspace_from_cli_opts(
            self.instance, dagster_version, opts, allow_in_process=True
        ) as workspace:
            code_location = workspace.get_code_location(location)
            repo = get_remote_repository_from_code_location(code_location, None)
            run = job_cli._create_run(
                instance=self.instance,
                code_location=code_location,
                remote_repo=repo,
                remote_job=get_remote_job_from_remote_repo(repo, job),
                run_config={},
                tags=tags or {},
                op_selection=None,
                run_id=str(uuid.uuid4()),
            )
            if here:
                self.instance.launch_run(run.run_id, workspace)
            else:
                self.instance.submit_run(run.run_id, workspace)
        return run.run_id

    def wait(self, what: str, predicate, bound_s: float = BOUND_S):
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}; daemon log:\n{self.log_tail()}")

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the daemon's log without its sensors' ticks (the project's location
        has sensors ticking every 5 s, which would fill any tail)."""
        lines = self.log.read_text().splitlines()
        kept = [line for line in lines if "SensorDaemon" not in line]
        return "\n".join(kept)[-chars:]

    def run(self, run_id: str) -> DagsterRun:
        return self.instance.get_run_by_id(run_id)

    def finished(self, run_id: str) -> DagsterRun:
        return self.wait(
            f"run {run_id} to end", lambda: self.run(run_id).is_finished and self.run(run_id)
        )

    def working(self, run_id: str) -> int:
        """Waits until the run's step works; the pid its step reported."""
        return self.report(run_id)["pid"]

    def report(self, run_id: str) -> dict:
        """Waits until the run's step works; what it reported (tests/dagster/launcher_jobs.py)."""
        marker = self.markers / run_id
        text = self.wait(f"run {run_id}'s step", lambda: marker.exists() and marker.read_text())
        return json.loads(text)

    def let_finish(self, run_id: str) -> DagsterRun:
        """Lets the run's waiting step return; the run once it ended."""
        (self.markers / f"{run_id}.stop").touch()
        return self.finished(run_id)

    def event_types(self, run_id: str) -> list[DagsterEventType]:
        return [
            e.dagster_event.event_type for e in self.instance.all_logs(run_id) if e.dagster_event
        ]

    def messages(self, run_id: str) -> list[str]:
        return [e.message for e in self.instance.all_logs(run_id)]

    def stop(self) -> None:
        for run in self.instance.get_runs():
            if not run.is_finished:
                self.instance.run_coordinator.cancel_run(run.run_id)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.instance.dispose()


@pytest.fixture(scope="module")
def forking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path_factory.mktemp("forking"), {})
    yield daemon
    daemon.stop()


def _cleaned_rows(lake: Path, stream: str) -> int:
    files = sorted(str(p) for p in (lake / "cleaned" / stream).rglob("*.parquet"))
    return duckdb.sql(f"select count(*) from read_parquet({files!r})").fetchall()[0][0]


def test_the_project_launches_runs_with_the_warm_launcher(forking: Daemon) -> None:
    assert isinstance(forking.instance.run_launcher, WarmRunLauncher)


def test_a_queued_ingest_run_runs_in_a_forked_worker_and_cleans_every_row(forking: Daemon) -> None:
    _write_concatenated(forking.landing, "robot_telemetry", HOUR, RECORDS[:70], "a")
    _write_concatenated(forking.landing, "robot_telemetry", HOUR, RECORDS[70:], "b")
    run_id = forking.submit(
        "firehose_lake", "ingest_robot_telemetry", {"dagster/partition": "2026-11-21-08:00"}
    )
    run = forking.finished(run_id)
    assert run.status == DagsterRunStatus.SUCCESS, forking.messages(run_id)[-5:]
    worker = WorkerProcess.from_tag(run.tags.get(WORKER_TAG))
    assert worker is not None and worker.pid != forking.proc.pid
    assert f"Started process for run (pid: {worker.pid})." in forking.messages(run_id)
    assert _cleaned_rows(forking.lake, "robot_telemetry") == len(RECORDS)


def test_terminate_from_another_process_ends_the_run_canceled(forking: Daemon) -> None:
    run_id = forking.submit("launcher_tests", "waits")
    pid = forking.working(run_id)
    worker = WorkerProcess.from_tag(forking.run(run_id).tags[WORKER_TAG])
    assert worker.pid == pid  # the step runs in the forked worker, with the daemon's env
    # this test process is not the daemon that forked it, as the webserver is not
    forking.instance.run_coordinator.cancel_run(run_id)
    run = forking.finished(run_id)
    assert run.status == DagsterRunStatus.CANCELED
    assert DagsterEventType.STEP_FAILURE in forking.event_types(run_id)  # the step interrupted
    forking.wait("the worker to exit", lambda: not worker.alive(), 30)


def test_graceful_stop_cancels_forked_runs_in_flight(forking: Daemon) -> None:
    run_id = forking.submit("launcher_tests", "waits")
    forking.working(run_id)
    assert graceful_stop.cancel_runs(forking.instance, 60) == []
    assert forking.run(run_id).status == DagsterRunStatus.CANCELED


def test_a_worker_names_itself_before_its_step_starts_so_a_cancel_reaches_it(
    forking: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the launcher's thread not back from the fork yet when the step starts (as under load)
    monkeypatch.setattr(WarmRunLauncher, "_tag", lambda self, run, pid: None)
    for name in ("PYTHONPATH", "DAGSTER_HOME", "LAKE_URI", "LAUNCHER_TEST_MARKERS"):
        monkeypatch.setenv(name, forking.env[name])
    run_id = forking.submit("launcher_tests", "waits", here=True)
    pid = forking.working(run_id)
    assert WorkerProcess.from_tag(forking.run(run_id).tags.get(WORKER_TAG)).pid == pid
    assert graceful_stop.cancel_runs(forking.instance, 60) == []
    assert forking.run(run_id).status == DagsterRunStatus.CANCELED


def test_a_killed_worker_is_found_by_run_monitoring_and_its_run_retried(forking: Daemon) -> None:
    run_id = forking.submit("launcher_tests", "waits")
    pid = forking.working(run_id)
    os.kill(pid, signal.SIGKILL)
    run = forking.finished(run_id)
    assert run.status == DagsterRunStatus.FAILURE
    assert any("exited without ending the run" in m for m in forking.messages(run_id))
    retry = forking.wait(
        "the retry",
        lambda: [r for r in forking.instance.get_runs() if r.parent_run_id == run_id],
    )[0]
    assert forking.working(retry.run_id) != pid
    forking.instance.run_coordinator.cancel_run(retry.run_id)
    assert forking.finished(retry.run_id).status == DagsterRunStatus.CANCELED
