"""The code location preloaded in the run launcher's forkserver (orchestration/warm_server.py):
run workers start with the definitions built, and a change of the project's files or of
the launcher's environment applies to the next run, as with Dagster's own launcher.

The daemon test runs a real `dagster-daemon run` on a copy of the project, whose
lake/settings.py it edits between runs (tests/dagster/launcher_jobs.py reports
`lake.settings.PROBE` and the pid that imported it).
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.launcher import LaunchRunContext, WorkerStatus

from lake.settings import REPO_ROOT
from lake.storage import LocalStorage
from orchestration import launch
from orchestration.worker_process import start_ticks
from tests.conftest import _write_concatenated
from tests.dagster.test_warm_launcher import Daemon

COPIED = (
    "lake",
    "assets",
    "orchestration",
    "sql",
    "streams.yaml",
    "tests/dagster/launcher_jobs.py",
)
PROBE_LINE = "\nPROBE = ({!r}, os.getpid())  # the test's edit\n"


def _copy_project(to: Path) -> Path:
    for name in COPIED:
        source, target = REPO_ROOT / name, to / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    return to


def _set_probe(project: Path, text: str) -> None:
    settings = project / "lake" / "settings.py"
    source = settings.read_text().split("\nPROBE = ")[0]
    settings.write_text(source + PROBE_LINE.format(text))


def _python_threads(pid: int) -> int:
    """Threads of `pid` but jemalloc's background thread (pyarrow's allocator starts it and
    makes fork safe for it: its own atfork handlers)."""
    tasks = Path(f"/proc/{pid}/task")
    return sum((t / "comm").read_text().strip() != "jemalloc_bg_thd" for t in tasks.iterdir())


def test_an_edit_of_the_project_applies_to_the_next_run_while_runs_in_flight_go_on(
    tmp_path: Path,
) -> None:
    project = _copy_project(tmp_path / "project")
    _set_probe(project, "v1")
    daemon = Daemon(tmp_path / "daemon", {}, project=project, locations=("launcher_tests",))
    try:
        first = daemon.submit("launcher_tests", "waits")
        a = daemon.report(first)
        # lake.settings was imported by the forkserver (the worker's parent), not the worker
        assert a["probe"] == ["v1", a["ppid"]] and a["pid"] != a["ppid"]
        assert _python_threads(a["ppid"]) == 1  # forks from a single-threaded server

        _set_probe(project, "v2, edited")
        second = daemon.submit("launcher_tests", "waits")
        b = daemon.report(second)
        assert b["probe"] == ["v2, edited", b["ppid"]] and b["ppid"] != a["ppid"]
        assert any("new code location server" in m for m in daemon.messages(second))

        # the first run, forked by the retired server, goes on and is health-checked
        health = daemon.instance.run_launcher.check_run_worker_health(daemon.run(first))
        assert health.status == WorkerStatus.RUNNING
        assert daemon.run(first).status == DagsterRunStatus.STARTED
        assert daemon.let_finish(first).status == DagsterRunStatus.SUCCESS
        assert daemon.let_finish(second).status == DagsterRunStatus.SUCCESS
        # the retired server exits with its last worker
        daemon.wait("the retired server to exit", lambda: start_ticks(a["ppid"]) is None, 30)

        # an edit that does not import: that run fails as with Dagster's launcher, the next works
        (project / "lake" / "settings.py").write_text("this is not python\n")
        broken = daemon.submit("launcher_tests", "waits")
        assert daemon.finished(broken).status == DagsterRunStatus.FAILURE
        assert DagsterEventType.STEP_FAILURE in daemon.event_types(broken)
        shutil.copy2(REPO_ROOT / "lake" / "settings.py", project / "lake" / "settings.py")
        _set_probe(project, "v3")
        fixed = daemon.submit("launcher_tests", "waits")
        assert daemon.report(fixed)["probe"][0] == "v3"
        assert daemon.let_finish(fixed).status == DagsterRunStatus.SUCCESS
    finally:
        daemon.stop()


HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
RECORDS = [{"event_id": f"e-{i}", "ts": "2026-11-21T08:10:00Z"} for i in range(30)]


def _lake_env(monkeypatch, root: Path) -> LocalStorage:
    landing = LocalStorage(root / "landing")
    monkeypatch.setenv("LANDING_URI", landing.uri)
    monkeypatch.setenv("LAKE_URI", (root / "lake").as_uri())
    monkeypatch.setenv("WAREHOUSE_PATH", str(root / "warehouse.duckdb"))
    monkeypatch.setenv("ICEBERG_CATALOG_URI", f"sqlite:///{root / 'iceberg.db'}")
    return landing


def _cleaned_rows(lake: Path) -> int:
    files = sorted(str(p) for p in (lake / "cleaned" / "robot_telemetry").rglob("*.parquet"))
    if not files:
        return 0
    return duckdb.sql(f"select count(*) from read_parquet({files!r})").fetchall()[0][0]


def _launch_ingest(instance: DagsterInstance) -> str:
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from orchestration.definitions import defs

    repo = ReconstructableRepository.for_module(
        "orchestration.definitions", "defs", working_directory=str(REPO_ROOT)
    )
    origin = repo.get_reconstructable_job("ingest_robot_telemetry").get_python_origin()
    assert origin.executable_path == sys.executable
    run = instance.create_run_for_job(
        defs.resolve_job_def("ingest_robot_telemetry"),
        job_code_origin=origin,
        tags={"dagster/partition": HOUR.strftime("%Y-%m-%d-%H:00")},
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    instance.run_launcher.join(timeout=300)
    return run.run_id


def test_the_launchers_environment_now_applies_to_the_next_run(tmp_path, monkeypatch) -> None:
    """The settings are read when the definitions are built: in the forkserver."""
    home = launch.prepare_home({"DAGSTER_HOME": str(tmp_path / "home")})
    with DagsterInstance.from_config(str(home)) as instance:
        for name in ("one", "two"):
            landing = _lake_env(monkeypatch, tmp_path / name)
            _write_concatenated(landing, "robot_telemetry", HOUR, RECORDS, name)
            run_id = _launch_ingest(instance)
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
        # each run read its own landing and wrote its own lake
        assert _cleaned_rows(tmp_path / "one" / "lake") == len(RECORDS)
        assert _cleaned_rows(tmp_path / "two" / "lake") == len(RECORDS)
