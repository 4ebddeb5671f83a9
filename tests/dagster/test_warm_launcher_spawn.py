"""RUN_WORKERS=spawn: the project's run launcher hands every run to Dagster's default
launcher (orchestration/warm_launcher.py), under a real queue daemon. A file of its own (its
daemon is its own too): CI runs a file per pytest-xdist worker, and this one runs beside
tests/dagster/test_warm_launcher.py's instead of after them.
"""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterRunStatus

from orchestration.warm_launcher import WORKER_TAG
from tests.dagster.test_warm_launcher import Daemon


def test_run_workers_spawn_gives_runs_to_dagsters_launcher(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, {"RUN_WORKERS": "spawn"}, locations=("launcher_tests",))
    try:
        run_id = daemon.submit("launcher_tests", "waits")
        daemon.working(run_id)
        assert WORKER_TAG not in daemon.run(run_id).tags
        assert any("RUN_WORKERS='spawn'" in m for m in daemon.messages(run_id))
        daemon.instance.run_coordinator.cancel_run(run_id)  # through the code server
        assert daemon.finished(run_id).status == DagsterRunStatus.CANCELED
    finally:
        daemon.stop()
