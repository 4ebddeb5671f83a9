"""End to end: a real `dagster dev` process; its sensor launches the run that cleans what lands."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, RunsFilter

from lake.config import REPO_ROOT
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import LocalStorage

pytestmark = pytest.mark.e2e
STARTUP_BOUND_S = 120
RUN_BOUND_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, bound_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(
        f"timed out after {bound_s}s waiting for {what}; dagster dev log:\n{log.read_text()[-4000:]}"
    )


def _server_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture
def dagster_dev(tmp_path: Path):
    data = tmp_path / "data"
    home = data / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        **os.environ,
        "LANDING_URI": (data / "landing").as_uri(),
        "LAKE_URI": (data / "lake").as_uri(),
        "WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        "SENSOR_INTERVAL_SECONDS": "2",
        "MARTS_SENSOR_INTERVAL_SECONDS": "5",
    }
    log = tmp_path / "dagster-dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(lambda: _server_up(port), STARTUP_BOUND_S, "the Dagster webserver", log)
        yield {"data": data, "home": home, "log": log, "port": port}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_sensor_launched_run_cleans_landed_objects(dagster_dev, monkeypatch) -> None:
    data = dagster_dev["data"]
    landing, lake = LocalStorage(data / "landing"), LocalStorage(data / "lake")
    sim = Simulator(
        SimulatorConfig(
            seed=5, streams=("robot_telemetry",), duplicate_rate=0.05, malformed_rate=0.02
        )
    )
    now = datetime.now(UTC).replace(microsecond=0)
    written = [w for w in [sim.write_object(landing, "robot_telemetry", arrival=now)] if w]
    assert written, "the simulator wrote nothing"
    expected = {r["event_id"] for w in written for r in w.records}
    manifests = [
        f"_state/cleaned/robot_telemetry/{now:%Y%m%dT%H}-{w.key.rsplit('/', 1)[1].removesuffix('.gz')}.parquet.json"
        for w in written
    ]
    _wait(
        lambda: all(lake.exists(m) for m in manifests),
        RUN_BOUND_S,
        "cleaned Parquet",
        dagster_dev["log"],
    )

    rows = duckdb.sql(
        f"SELECT event_id FROM read_parquet('{lake.root}/cleaned/robot_telemetry/*/*.parquet')"
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(expected)

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_dev["home"]))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="ingest_robot_telemetry"))
    assert runs, "no ingest run was recorded"
    assert {r.tags.get("dagster/sensor_name") for r in runs} == {"robot_telemetry_landing_sensor"}
