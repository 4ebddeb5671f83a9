"""A run's launch, as the code server does it: where a 1-object ingest run's time goes
before its first step.

    PYTHONPATH=.:bench .venv/bin/python bench/launch_bench.py --runs 3 [--stream S] [--profile DIR]

One fresh lake and instance (the project's dagster.yaml) with one simulated object landed
in the current hour. This process plays the code server: it loads the code location, and
for each run creates the run of `ingest_<stream>` for that hour and starts it the way
`dagster api grpc` does on StartRun (dagster/_grpc/server.py): a `spawn` process running
`start_run_in_subprocess` (the instance from its ref, the run, the code location's import,
the run's execution). The phases come from the run's event log, timed from the spawn:
process up (the worker's `Started process` engine event: interpreter, dagster's imports to
unpickle the job, the instance), RUN_START (the code location's import and the execution
plan), first STEP_START (resources), run end. Runs 2.. find the hour's object cleaned; the
launch phases are the same. `--profile DIR` writes a cProfile of each worker to DIR.
`--warm` forks the same worker from the run launcher's forkserver (orchestration/warm_server.py:
WARM_MODULES and the code location); `--launcher` starts each run through the instance's run launcher
(`instance.launch_run`, the project's dagster.yaml: on this branch the warm launcher,
`dagster api execute_run`'s body in the fork), timed from that call to the worker's exit.
Code under test is the one on PYTHONPATH (`PYTHONPATH=/work/main:/work/main/bench` with
main's copy of this script measures main).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def prepare(data: Path) -> None:
    """Environment of a fresh lake and instance; one object per stream in this hour."""
    os.environ.update(
        DAGSTER_HOME=str(data / "dagster_home"),
        LANDING_URI=(data / "landing").as_uri(),
        LAKE_URI=(data / "lake").as_uri(),
        WAREHOUSE_PATH=str(data / "warehouse.duckdb"),
        ICEBERG_CATALOG_URI=f"sqlite:///{data / 'iceberg.db'}",
        PIPELINE_START_DATE=datetime.now(UTC).date().isoformat(),
    )
    from lake.simulator import STREAMS, Simulator, SimulatorConfig
    from lake.storage import open_storage
    from orchestration.launch import prepare_home

    prepare_home(os.environ)
    landing = open_storage(os.environ["LANDING_URI"])
    sim = Simulator(SimulatorConfig(seed=17, cows=3000, robots=40, object_interval_s=3))
    for stream in STREAMS:
        sim.write_object(landing, stream, datetime.now(UTC))


def profiled_worker(out: str, *args: object) -> None:
    import cProfile

    from dagster._grpc.impl import start_run_in_subprocess

    cProfile.runctx("run(*args)", globals(), {"run": start_run_in_subprocess, "args": args}, out)


def warm_start(target, args: list) -> multiprocessing.process.BaseProcess:
    """A worker forked from the run launcher's server (orchestration/warm_server.py:
    WARM_MODULES and the code location imported once)."""
    from orchestration.warm_server import SERVER

    return SERVER.start(target, tuple(args), "launch-bench", dict(os.environ))[0]


def launch_via_launcher(instance, run) -> tuple[float, float]:
    """The run started by the instance's run launcher (the project's: a warm fork); the
    times of the launch call and of the worker's exit."""
    spawned = time.time()
    instance.launch_run(run.run_id, workspace=None)  # a forked run needs no workspace
    instance.run_launcher.join(timeout=600)
    return spawned, time.time()


def launch(
    stream: str, profile: Path | None, n: int, warm: bool = False, launcher: bool = False
) -> dict[str, float]:
    """Create and start one run as the code server does; seconds of its phases."""
    from dagster import DagsterInstance
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._grpc.impl import start_run_in_subprocess
    from dagster._grpc.types import ExecuteExternalJobArgs
    from dagster._serdes import serialize_value

    import orchestration.definitions as d

    job_name = f"ingest_{stream}"
    repo = ReconstructableRepository.for_module(
        "orchestration.definitions", "defs", working_directory=str(ROOT)
    )
    recon_job = repo.get_reconstructable_job(job_name)
    instance = DagsterInstance.get()
    job_def = d.defs.resolve_job_def(job_name)
    partition = d.hourly.get_last_partition_key()
    run = instance.create_run_for_job(
        job_def,
        tags={"dagster/partition": partition},
        job_code_origin=recon_job.get_python_origin(),
    )
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(
            InProcessCodeLocationOrigin(
                LoadableTargetOrigin(module_name="orchestration.definitions")
            ),
            "__repository__",
        ),
        job_name,
    )
    args = serialize_value(
        ExecuteExternalJobArgs(
            job_origin=origin, run_id=run.run_id, instance_ref=instance.get_ref()
        )
    )
    if launcher:
        spawned, ended = launch_via_launcher(instance, run)
        return phases(instance, run.run_id, spawned, ended)
    ctx = multiprocessing.get_context("forkserver" if warm else "spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    target, targs = start_run_in_subprocess, [args, recon_job, queue, stop]
    if profile is not None:
        target, targs = profiled_worker, [str(profile / f"worker-{n}.prof"), *targs]
    spawned = time.time()
    if warm:
        proc = warm_start(target, targs)
    else:
        proc = ctx.Process(target=target, args=targs)
        proc.start()
    proc.join()
    return phases(instance, run.run_id, spawned, time.time())


def phases(instance, run_id: str, spawned: float, ended: float) -> dict[str, float]:
    """Seconds of a run's phases from its event log, timed from its start at `spawned`."""
    from dagster import DagsterEventType

    first: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ENGINE_EVENT and entry.message.startswith(
            "Started process"
        ):
            first.setdefault("up", entry.timestamp)
        first.setdefault(event.event_type.value, entry.timestamp)
    start = first[DagsterEventType.RUN_START.value]
    step = first[DagsterEventType.STEP_START.value]
    end = first.get(DagsterEventType.RUN_SUCCESS.value) or first[DagsterEventType.RUN_FAILURE.value]
    return {
        "process up": first["up"] - spawned,
        "up -> RUN_START": start - first["up"],
        "launch (spawn -> RUN_START)": start - spawned,
        "RUN_START -> first step": step - start,
        "steps and tail": end - step,
        "spawn -> process exit": ended - spawned,
        "succeeded": float(DagsterEventType.RUN_SUCCESS.value in first),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stream", default="robot_telemetry")
    parser.add_argument("--profile", type=Path)
    parser.add_argument(
        "--warm", action="store_true", help="fork workers from a warm server (WARM_MODULES)"
    )
    parser.add_argument(
        "--launcher",
        action="store_true",
        help="start runs through the instance's run launcher (the project's dagster.yaml)",
    )
    parser.add_argument(
        "--importtime", action="store_true", help="the workers print -X importtime to stderr"
    )
    a = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="launch-bench-"))
    prepare(data)
    if a.importtime:  # a spawned interpreter reads it at start
        os.environ["PYTHONPROFILEIMPORTTIME"] = "1"
    if a.profile:
        a.profile.mkdir(parents=True, exist_ok=True)
    print(f"data in {data}; load average {os.getloadavg()[0]:.2f}", flush=True)
    if (
        a.warm or a.launcher
    ):  # the server starts (and imports) before the first run, as a launcher's would
        warm_start(time.sleep, [0]).join()
        time.sleep(15)
    rows = [launch(a.stream, a.profile, n, a.warm, a.launcher) for n in range(a.runs)]
    for name in rows[0]:
        values = [r[name] for r in rows]
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name}: {shown} (median {statistics.median(values):.2f})")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
