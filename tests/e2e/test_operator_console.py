"""End to end, what an operator sees: a real `dagster dev` started by the launcher on the
demo seed prints no BetaWarning and no DEBUG run events, and Ctrl-C while runs are in
flight leaves no failed run and exits within a bound."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from lake.settings import Settings
from lake.simulator.demo import seed
from orchestration import dev_server

pytestmark = pytest.mark.e2e
STARTUP_BOUND_S = 240  # a bound, not a target: CI under load took 98 s to start the daemon alone
RUN_BOUND_S = 180
GRACE_S = 2  # short, so that the stop has to cancel runs still in flight
STOP_BOUND_S = GRACE_S + 30 + 30 + 20  # grace, cancel bound, dagster dev's exit, slack


def _runs(home: Path) -> list:
    """The runs, read from the instance's storage once `dagster dev` has exited."""
    with DagsterInstance.from_config(str(home)) as instance:
        return instance.get_runs(RunsFilter())


def _a_run_started(port: int) -> bool:
    """Asked of the webserver: opening the instance's SQLite storage from here while
    `dagster dev`'s processes create it races their schema stamping (alembic's "more than
    one head present")."""
    query = "{ runsOrError(filter: {statuses: [STARTED]}) { ... on Runs { results { runId } } } }"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return bool(answer.get("data", {}).get("runsOrError", {}).get("results"))


def test_console_is_quiet_and_ctrl_c_fails_no_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings((data / "landing").as_uri(), (data / "lake").as_uri(), str(data / "w.db"))
    seed(settings, 1, datetime.now(UTC))
    home = data / "dagster_home"
    env = {
        **os.environ,
        "LANDING_URI": settings.landing_uri,
        "LAKE_URI": settings.lake_uri,
        "WAREHOUSE_PATH": settings.warehouse_path,
        "DAGSTER_HOME": str(home),
        "SENSOR_INTERVAL_SECONDS": "2",
        "STOP_GRACE_SECONDS": str(GRACE_S),
    }
    env.pop("PIPELINE_START_DATE", None)
    env.pop("RUN_LOG_LEVEL", None)
    port, log = dev_server.free_port(), tmp_path / "dagster-dev.log"
    proc = dev_server.start(env, log, port)
    try:
        dev_server.wait_until_up(port, STARTUP_BOUND_S)
        deadline = time.monotonic() + RUN_BOUND_S
        while not _a_run_started(port):
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            assert proc.poll() is None, log.read_text()[-4000:]
            time.sleep(0.5)
        time.sleep(1)  # a step under way
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        began = time.monotonic()
        proc.wait(timeout=STOP_BOUND_S)
        stopped_in = time.monotonic() - began
    except subprocess.TimeoutExpired:
        pytest.fail(f"the launcher did not exit within {STOP_BOUND_S}s:\n{log.read_text()[-4000:]}")
    finally:
        if proc.poll() is None:
            dev_server.stop(proc)

    runs = _runs(home)
    statuses = {r.run_id: r.status for r in runs}
    assert DagsterRunStatus.FAILURE not in statuses.values(), statuses
    finished = [s for s in statuses.values() if s not in (DagsterRunStatus.QUEUED,)]
    assert finished and set(finished) <= {DagsterRunStatus.SUCCESS, DagsterRunStatus.CANCELED}
    assert stopped_in < STOP_BOUND_S
    console = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text())
    assert "BetaWarning" not in console
    run_ids = "|".join(statuses)
    debug_run_events = re.findall(rf" - DEBUG - \S+ - ({run_ids}) - ", console)
    assert not debug_run_events
    assert re.search(rf" - INFO - \S+ - ({run_ids}) - ", console), "no run event printed at all"
