"""Latency benchmark: an object written to landing -> its cleaned rows readable, under `dagster dev`.

    .venv/bin/python bench/latency_bench.py --objects 60 --interval 6

Starts `dagster dev` on the embedded default (local folders under a temporary directory,
SENSOR_INTERVAL_SECONDS=5), then writes simulator objects for the three streams, one
stream at a time in turn every `interval` seconds, and times each object from the moment
its write finished to the moment its ledger manifest exists (written after its cleaned
Parquet, so its rows are readable). It prints p50 / p95 / max, and from the Dagster
instance the run overhead: queued -> started (the run launcher's new process) and
started -> first step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lake.ledger import manifest_of  # noqa: E402
from lake.simulator import Simulator, SimulatorConfig  # noqa: E402
from lake.storage import LocalStorage  # noqa: E402
from orchestration import dev_server  # noqa: E402

STREAMS = ("robot_telemetry", "clickstream", "cloudtrail")


def _manifest(landing: LocalStorage, key: str, arrival: datetime) -> str:
    (info,) = [o for o in landing.list(key) if o.key == key]
    hour = arrival.replace(minute=0, second=0, microsecond=0)
    return manifest_of(key.split("/", 1)[0], hour, info)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(objects: int, interval: float, timeout: float) -> None:
    data = Path(tempfile.mkdtemp(prefix="latency-"))
    home = data / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(REPO / "orchestration" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "LANDING_URI": (data / "landing").as_uri(),
        "LAKE_URI": (data / "lake").as_uri(),
        "WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        "SENSOR_INTERVAL_SECONDS": "5",
        "MARTS_SENSOR_INTERVAL_SECONDS": "30",
    }
    port = dev_server.free_port()
    proc = dev_server.start(env, data / "dagster-dev.log", port)
    try:
        took = dev_server.wait_until_up(port, 180)
        print(f"dagster dev up in {took:.1f} s; data in {data}")
        time.sleep(10)  # let the sensors' first ticks pass
        latencies = measure(data, objects, interval, timeout)
        report(latencies, objects, home)
    finally:
        dev_server.stop(proc)


def measure(data: Path, objects: int, interval: float, timeout: float) -> dict[str, float]:
    landing, lake = LocalStorage(data / "landing"), LocalStorage(data / "lake")
    # a farm big enough that every stream has records in every few seconds
    sim = Simulator(SimulatorConfig(seed=17, cows=3000, robots=40, object_interval_s=interval))
    pending: dict[str, float] = {}  # manifest -> time written
    latencies: dict[str, float] = {}
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            now = time.monotonic()
            with lock:
                ready = [m for m in pending if lake.exists(m)]
                for m in ready:
                    latencies[m] = now - pending.pop(m)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    written = 0
    turn = 0
    while written < objects:
        stream = STREAMS[turn % len(STREAMS)]
        turn += 1
        arrival = datetime.now(UTC)
        w = sim.write_object(landing, stream, arrival)
        if w is not None:
            with lock:
                pending[_manifest(landing, w.key, arrival)] = time.monotonic()
            written += 1
        time.sleep(interval / len(STREAMS))
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.5)
    done.set()
    watcher.join()
    if pending:
        print(f"{len(pending)} objects not cleaned within {timeout:.0f} s of the last write")
    return latencies


def report(latencies: dict[str, float], objects: int, home: Path) -> None:
    values = list(latencies.values())
    print(
        f"{len(values)} of {objects} objects: written -> cleaned rows readable "
        f"p50 {percentile(values, 50):.1f} s, p95 {percentile(values, 95):.1f} s, "
        f"max {max(values):.1f} s, mean {statistics.mean(values):.1f} s"
    )
    from dagster import DagsterEventType, DagsterInstance, RunsFilter

    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.get() as instance:
        records = instance.get_run_records(RunsFilter(job_name="ingest_robot_telemetry"))
        records += instance.get_run_records(RunsFilter(job_name="ingest_clickstream"))
        records += instance.get_run_records(RunsFilter(job_name="ingest_cloudtrail"))
        launch, to_step, duration = [], [], []
        for r in records:
            if r.start_time is None or r.end_time is None:
                continue
            steps = instance.all_logs(r.dagster_run.run_id, of_type=DagsterEventType.STEP_START)
            launch.append(r.start_time - r.create_timestamp.timestamp())
            if steps:
                to_step.append(min(e.timestamp for e in steps) - r.start_time)
            duration.append(r.end_time - r.start_time)
    print(
        f"{len(duration)} ingest runs: created -> started (launcher, new process) median "
        f"{statistics.median(launch):.1f} s; started -> first step median "
        f"{statistics.median(to_step):.2f} s; started -> finished median {statistics.median(duration):.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=60)
    parser.add_argument(
        "--interval", type=float, default=6.0, help="seconds per round of three streams"
    )
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    run(args.objects, args.interval, args.timeout)


if __name__ == "__main__":
    main()
