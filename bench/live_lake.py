"""A lake under a running `dagster dev`, for the freshness and soak benchmarks.

`LiveLake` starts `dagster dev` the documented way (orchestration.launch, through
orchestration.dev_server) with a fresh DAGSTER_HOME on local folders or on moto's S3 (the
README's S3 section), and times each object from the end of its write to the moment its
ledger manifest exists (written after its cleaned Parquet and the Iceberg commit, so its
rows are readable). `QueueSampler` samples the instance's run queue.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lake.ledger import manifest_of
from lake.simulator import ObjectWritten
from lake.storage import Storage, open_storage
from orchestration import dev_server

BUCKET = "bench-lake"
PROJECT_MARKER = "# The project's instance settings."  # orchestration/launch.py's copy


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    if not values:
        return "no values"
    return (
        f"p50 {percentile(values, 50):.1f} s, p95 {percentile(values, 95):.1f} s, "
        f"max {max(values):.1f} s, mean {statistics.mean(values):.1f} s"
    )


def _moto(where: str) -> tuple[ExitStack, dict[str, str]]:
    """moto's S3 on 127.0.0.1, in a thread of this process or in a process of its own
    (sqs_bench.moto_server), and the AWS variables that point boto3 at it."""
    import boto3
    from sqs_bench import moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
    stack = ExitStack()
    endpoint = stack.enter_context(moto_server(where, sqs_like=False))
    aws = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }
    os.environ.update(aws)  # this process's storages too
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return stack, aws


@dataclass
class LiveLake:
    """`dagster dev` on a fresh lake; `with LiveLake(s3=...) as live:` starts and stops it."""

    s3: bool = False
    moto: str = "thread"  # with s3: moto in a thread of this process, or a "process"
    data: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="live-lake-")))
    seed_hours: float = 0.0
    env_extra: dict[str, str] = field(default_factory=dict)
    instance_settings: str | None = None  # a dagster.yaml of its own (else the project's)
    latencies: dict[str, float] = field(default_factory=dict)  # manifest -> seconds

    def __post_init__(self) -> None:
        self.home = self.data / "dagster_home"  # fresh: the launcher writes dagster.yaml
        if self.instance_settings is not None:  # kept by the launcher: not the project's copy
            self.home.mkdir(parents=True)
            (self.home / "dagster.yaml").write_text(self.instance_settings)
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._moto: Any = None

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "WAREHOUSE_PATH": str(self.data / "warehouse.duckdb"),
            "SENSOR_INTERVAL_SECONDS": "5",
        }
        if self.s3:
            self._moto, aws = _moto(self.moto)
            env.update(aws)
            env.update(
                LANDING_URI=f"s3://{BUCKET}/landing",
                LAKE_URI=f"s3://{BUCKET}/lake",
                PII_HASH_KEY="bench-only-key",
                ICEBERG_CATALOG_URI=f"sqlite:///{self.data / 'iceberg.db'}",
            )
        else:
            env.update(
                LANDING_URI=(self.data / "landing").as_uri(),
                LAKE_URI=(self.data / "lake").as_uri(),
            )
        return {**env, **self.env_extra}

    def __enter__(self) -> LiveLake:
        env = self.env()
        self.landing: Storage = open_storage(env["LANDING_URI"])
        self.lake: Storage = open_storage(env["LAKE_URI"])
        if self.seed_hours:  # `make dev` seeds the demo history before it starts Dagster
            seed = ["-m", "lake.simulator.demo", "seed", "--hours", str(self.seed_hours)]
            subprocess.run([sys.executable, *seed], env=env, check=True, capture_output=True)
        port = dev_server.free_port()
        self._proc = dev_server.start(env, self.data / "dagster-dev.log", port)
        took = dev_server.wait_until_up(port, 240)
        config = (self.home / "dagster.yaml").read_text()
        print(
            f"dagster dev up in {took:.1f} s; data in {self.data}; DAGSTER_HOME holds the "
            f"project's dagster.yaml: {config.startswith(PROJECT_MARKER)}"
        )
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        dev_server.stop(self._proc)
        if self._moto is not None:
            self._moto.close()

    def landed(self, written: ObjectWritten) -> None:
        """Start the clock of an object the simulator has just written."""
        (info,) = [o for o in self.landing.list(written.key) if o.key == written.key]
        hour = written.arrival.replace(minute=0, second=0, microsecond=0)
        with self._lock:
            self._pending[manifest_of(written.stream, hour, info)] = time.monotonic()

    def _watch(self) -> None:
        while not self._done.is_set():
            with self._lock:
                pending = list(self._pending)
            ready = {m: time.monotonic() for m in pending if self.lake.exists(m)}
            with self._lock:
                for m, at in ready.items():
                    self.latencies[m] = at - self._pending.pop(m)
            time.sleep(0.1)

    def settle(self, bound_s: float) -> float:
        """Wait until no run is queued or in progress for 10 s (the seed's backlog is done),
        at most `bound_s`; seconds waited."""
        from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
        from dagster._core.instance.ref import InstanceRef

        busy = [
            DagsterRunStatus.NOT_STARTED,
            DagsterRunStatus.QUEUED,
            DagsterRunStatus.STARTING,
            DagsterRunStatus.STARTED,
        ]
        began = quiet_since = time.monotonic()
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home))) as instance:
            while time.monotonic() - began < bound_s:
                if instance.get_run_records(RunsFilter(statuses=busy), limit=1):
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since > 10:
                    break
                time.sleep(1)
        return time.monotonic() - began

    def drain(self, timeout_s: float) -> int:
        """Wait until every object written is cleaned, at most `timeout_s`; objects left."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.5)
        return len(self._pending)


class QueueSampler:
    """Every `every_s`, the runs waiting in the instance's queue (QUEUED or NOT_STARTED),
    grouped by job and partition, and the runs in progress."""

    def __init__(self, home: Path, every_s: float) -> None:
        self.home, self.every_s = home, every_s
        self.samples: list[tuple[float, int, int]] = []  # (time, waiting, in progress)
        self.most_per_group: Counter[tuple[str, str]] = Counter()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> QueueSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
        from dagster._core.instance.ref import InstanceRef
        from dagster._core.storage.tags import PARTITION_NAME_TAG

        waiting = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
        going = [DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home))) as instance:
            while not self._done.wait(self.every_s):
                queued = instance.get_run_records(RunsFilter(statuses=waiting))
                started = instance.get_run_records(RunsFilter(statuses=going))
                groups = Counter(
                    (r.dagster_run.job_name, r.dagster_run.tags.get(PARTITION_NAME_TAG, ""))
                    for r in queued
                )
                for group, n in groups.items():
                    self.most_per_group[group] = max(self.most_per_group[group], n)
                self.samples.append((time.monotonic(), len(queued), len(started)))

    def report(self) -> str:
        if not self.samples:
            return "no queue samples"
        waiting = [w for _, w, _ in self.samples]
        going = [g for _, _, g in self.samples]
        ingest = [n for (job, _), n in self.most_per_group.items() if job.startswith("ingest_")]
        marts = [n for (job, _), n in self.most_per_group.items() if job == "daily_marts"]
        return (
            f"{len(self.samples)} queue samples every {self.every_s:g} s: queued runs max "
            f"{max(waiting)}, median {statistics.median(waiting):g}, last {waiting[-1]}; "
            f"in progress max {max(going)}; most queued runs of one stream+hour "
            f"{max(ingest, default=0)}, of one mart day {max(marts, default=0)}"
        )


def run_overhead(home: Path) -> str:
    """From the instance's ingest runs: created -> started (the queue, the run launcher's
    new process and the code location's import), started -> first step, the run's time."""
    from dagster import DagsterEventType, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    launch, to_step, duration = [], [], []
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for r in instance.get_run_records():
            if not r.dagster_run.job_name.startswith("ingest_") or r.end_time is None:
                continue
            if r.start_time is None:
                continue
            steps = instance.all_logs(r.dagster_run.run_id, of_type=DagsterEventType.STEP_START)
            launch.append(r.start_time - r.create_timestamp.timestamp())
            if steps:
                to_step.append(min(e.timestamp for e in steps) - r.start_time)
            duration.append(r.end_time - r.start_time)
    if not duration:
        return "no finished ingest runs"
    return (
        f"{len(duration)} ingest runs: created -> started (queue, new process, import) median "
        f"{statistics.median(launch):.1f} s, max {max(launch):.1f} s; started -> first step "
        f"median {statistics.median(to_step):.2f} s; started -> finished median "
        f"{statistics.median(duration):.1f} s"
    )
