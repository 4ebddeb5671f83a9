"""The run launcher's choices without a daemon: which runs it forks, and how it names and
reaches a worker process (pid reuse, a worker already gone), on a real instance."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from orchestration import launch
from orchestration.definitions import defs
from orchestration.warm_launcher import WORKER_TAG, fork_refusal, same_interpreter, workers_mode
from orchestration.worker_process import WorkerProcess


@pytest.fixture
def instance(tmp_path: Path):
    home = launch.prepare_home({"DAGSTER_HOME": str(tmp_path / "home")})
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def _run(instance: DagsterInstance, executable: str | None = sys.executable, tags=None):
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    repo = ReconstructableRepository.for_module("orchestration.definitions", "defs")
    origin = repo.get_reconstructable_job("ingest_robot_telemetry").get_python_origin()
    if executable is not None:
        target = origin.repository_origin._replace(executable_path=executable)
        origin = origin._replace(repository_origin=target)
    return instance.create_run_for_job(
        defs.resolve_job_def("ingest_robot_telemetry"),
        job_code_origin=origin if executable is not None else None,
        tags=tags or {},
    )


def test_runs_of_this_interpreter_are_forked_others_go_to_dagsters_launcher(instance) -> None:
    assert fork_refusal(_run(instance), {}) is None
    assert "not " + sys.executable in fork_refusal(_run(instance, "/opt/other/bin/python"), {})
    assert fork_refusal(_run(instance, None), {}) == "the run has no Python origin"
    assert fork_refusal(_run(instance), {"RUN_WORKERS": "spawn"}) == "RUN_WORKERS='spawn'"


def test_run_workers_setting() -> None:
    assert workers_mode({}) == workers_mode({"RUN_WORKERS": ""}) == "fork"
    assert workers_mode({"RUN_WORKERS": " Spawn "}) == "spawn"
    assert workers_mode({"RUN_WORKERS": "threads"}) == "spawn"  # unknown: Dagster's way


def test_another_virtual_environment_is_another_interpreter(tmp_path: Path) -> None:
    other = tmp_path / "venv" / "bin"
    other.mkdir(parents=True)
    (other / "python").symlink_to(Path(sys.executable).resolve())
    assert same_interpreter(sys.executable)
    assert not same_interpreter(str(other / "python"))
    assert not same_interpreter(None)


def test_a_worker_is_its_pid_and_start_time_not_its_pid_alone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        worker = WorkerProcess.of(proc.pid)
        assert worker is not None and worker.alive()
        assert WorkerProcess.from_tag(worker.to_tag()) == worker
        successor = dataclasses.replace(worker, start=worker.start - 1)  # pid reused
        assert not successor.alive() and not successor.interrupt()
        assert proc.poll() is None  # the other process was not signalled
    finally:
        proc.kill()
        proc.wait()
    assert not worker.alive() and WorkerProcess.of(proc.pid) is None
    assert WorkerProcess.from_tag("not json") is None and WorkerProcess.from_tag(None) is None


def test_health_and_terminate_of_a_run_whose_worker_is_gone(instance) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    worker = WorkerProcess.of(proc.pid)
    proc.wait()
    run = _run(instance, tags={WORKER_TAG: worker.to_tag()})
    instance.handle_run_event(run.run_id, _start_event(run))  # as its worker reports it
    run = instance.get_run_by_id(run.run_id)
    assert run.status == DagsterRunStatus.STARTED
    launcher = instance.run_launcher
    health = launcher.check_run_worker_health(run)
    assert health.status.value == "FAILED" and str(worker.pid) in health.msg
    assert launcher.terminate(run.run_id) is False
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED


def test_a_run_of_dagsters_launcher_is_not_failed_by_the_health_check(instance) -> None:
    run = _run(instance)
    assert instance.run_launcher.check_run_worker_health(run).status.value == "RUNNING"


def _start_event(run):
    from dagster import DagsterEvent, DagsterEventType

    return DagsterEvent(
        event_type_value=DagsterEventType.RUN_START.value, job_name=run.job_name, message="up"
    )


def test_a_fork_that_fails_hands_the_run_to_dagsters_launcher(instance, monkeypatch) -> None:
    from dagster._core.launcher import LaunchRunContext

    from orchestration import warm_launcher

    def no_forkserver(*_args):
        raise OSError("no forkserver here")

    handed: list[str] = []
    launcher = instance.run_launcher
    monkeypatch.setattr(warm_launcher.SERVER, "start", no_forkserver)
    monkeypatch.setattr(
        launcher._default, "launch_run", lambda c: handed.append(c.dagster_run.run_id)
    )
    run = _run(instance)
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert handed == [run.run_id]
    messages = [e.message for e in instance.all_logs(run.run_id)]
    assert any("the fork failed: OSError('no forkserver here')" in m for m in messages)
    assert WORKER_TAG not in instance.get_run_by_id(run.run_id).tags


def test_the_worker_tag_is_hidden_from_the_ui_as_dagsters_own_launchers_tags_are():
    """The UI lists every other tag on every run: a pid and start time there is noise
    (the pid is in the run's "Started process for run" event)."""
    from dagster._core.storage.tags import TagType, get_tag_type

    assert get_tag_type(WORKER_TAG) == TagType.HIDDEN
