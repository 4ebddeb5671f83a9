"""Latency benchmark: an object written to landing -> its cleaned rows readable, under `dagster dev`.

    PYTHONPATH=.:bench .venv/bin/python bench/latency_bench.py --objects 20 --gap 3 [--s3]

Seeds `--seed-hours` of the demo history (as `make dev` does) and starts `dagster dev` the documented way (`python -m orchestration.launch dev`, as `make dev`
and `make ui` do) with a fresh DAGSTER_HOME and SENSOR_INTERVAL_SECONDS=5, on local folders
(`make dev`'s embedded default) or, with --s3, on moto's S3 over HTTP with the variables of
the README's S3 section (`--moto process`: moto in a process of its own, closer to S3 than a thread of this bench); with --postgres, Dagster's storage is on a throwaway PostgreSQL
server (deploy/dagster.yaml's storage section, tests/postgres_server.py), and with
--pg-trace DIR every process of `dagster dev` records its PostgreSQL connects and statements
(bench/pg_trace, summed by bench/pg_calls.py at the end). Then the simulator writes one object every `gap` seconds, the
three streams in turn, and each object is timed from the end of its write to the moment
its ledger manifest exists (bench/live_lake.py). It prints p50 / p95 / max, the run queue,
the run overhead from the instance's run records, and the phases of the runs created while
measuring (bench/run_phases.py: queue, launch, steps, run slots held per job).

The code under test is the one on PYTHONPATH: `PYTHONPATH=/work/main:bench` measures main.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from live_lake import LiveLake, QueueSampler, percentile, run_overhead, summary
from pg_calls import report as pg_calls_report
from run_phases import report as phases_report

from lake.simulator import STREAMS, Simulator, SimulatorConfig


def tick_report(home: str, since: float) -> str:
    """The landing sensors' ticks while measuring: seconds between ticks (an object waits
    up to one gap for the tick that sees it; SENSOR_INTERVAL_SECONDS=5 should give 5 s),
    and for the ticks that requested runs, tick start -> run created (the sensor's own work
    and the run's execution plan) and the tick's whole time (the daemon looks at a sensor
    again only when its tick has ended)."""
    from dagster import DagsterInstance
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.instance.ref import InstanceRef

    gaps: list[float] = []
    idle_gaps: list[float] = []  # after a tick that requested no run: the daemon's cadence
    to_run: list[float] = []
    took: list[float] = []
    with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if not state.instigator_name.endswith("_landing_sensor"):
                continue
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000)
            ticks = [t for t in ticks if t.timestamp >= since]
            ticks.sort(key=lambda t: t.timestamp)
            for a, b in zip(ticks, ticks[1:], strict=False):
                gaps.append(b.timestamp - a.timestamp)
                if not a.run_ids:
                    idle_gaps.append(b.timestamp - a.timestamp)
            for tick in ticks:
                runs = [instance.get_run_record_by_id(r) for r in tick.run_ids]
                created = [r.create_timestamp.timestamp() for r in runs if r is not None]
                if created and tick.end_timestamp:
                    to_run.append(min(created) - tick.timestamp)
                    took.append(tick.end_timestamp - tick.timestamp)
    if not gaps:
        return "no landing sensor ticks"
    line = (
        f"landing sensors' tick gaps: median {statistics.median(gaps):.1f} s, "
        f"p95 {percentile(gaps, 95):.1f} s, max {max(gaps):.1f} s ({len(gaps)} gaps)"
    )
    if idle_gaps:
        line += (
            f"; after a tick without runs median {statistics.median(idle_gaps):.1f} s "
            f"({len(idle_gaps)})"
        )
    if to_run:
        line += (
            f"; ticks with runs ({len(to_run)}): start -> run created median "
            f"{statistics.median(to_run):.2f} s, tick took median {statistics.median(took):.2f} s"
        )
    return line


def measure(live: LiveLake, objects: int, gap: float) -> None:
    # a farm big enough that every stream has records in every few seconds
    sim = Simulator(SimulatorConfig(seed=17, cows=3000, robots=40, object_interval_s=gap))
    written, turn = 0, 0
    while written < objects:
        began = time.monotonic()
        stream = STREAMS[turn % len(STREAMS)]
        turn += 1
        w = sim.write_object(live.landing, stream, datetime.now(UTC))
        if w is not None:
            live.landed(w)
            written += 1
        time.sleep(max(0.0, gap - (time.monotonic() - began)))


def traced(storage: dict, trace: Path | None) -> dict:
    """LiveLake arguments with bench/pg_trace on dagster dev's PYTHONPATH, writing to `trace`."""
    if trace is None:
        return storage
    trace.mkdir(parents=True, exist_ok=True)
    hook = Path(__file__).with_name("pg_trace")
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    env = {**storage.get("env_extra", {}), "PG_TRACE_DIR": str(trace), "PYTHONPATH": path}
    return {**storage, "env_extra": env}


@contextmanager
def dagster_storage(postgres: bool) -> Iterator[dict]:
    """LiveLake arguments: the project's SQLite instance, or its settings on PostgreSQL."""
    if not postgres:
        yield {}
        return
    from orchestration.dev_server import free_port
    from tests import postgres_server

    server = postgres_server.start(free_port())
    try:
        url = postgres_server.create_database(server, "bench")
        settings, env = postgres_server.instance_settings(url)
        os.environ.update(env)  # this process reads the instance too (settle, run phases)
        yield {"instance_settings": settings, "env_extra": env}
    finally:
        postgres_server.stop(server)


def run(
    objects: int,
    gap: float,
    timeout: float,
    s3: bool,
    seed_hours: float,
    postgres: bool,
    moto: str = "thread",
    pg_trace: Path | None = None,
) -> None:
    with (
        dagster_storage(postgres) as storage,
        LiveLake(s3=s3, moto=moto, seed_hours=seed_hours, **traced(storage, pg_trace)) as live,
    ):
        print(f"seeded history cleaned in {live.settle(300):.0f} s")
        measuring_from = time.time()
        with QueueSampler(live.home, every_s=2) as queue:
            measure(live, objects, gap)
            left = live.drain(timeout)
        if left:
            print(f"{left} objects not cleaned within {timeout:.0f} s of the last write")
        values = list(live.latencies.values())
        where = (f"moto S3 ({moto})" if s3 else "local folders") + (
            ", PostgreSQL" if postgres else ""
        )
        print(
            f"{len(values)} of {objects} objects ({where}, one every {gap:g} s): {summary(values)}"
        )
        print(queue.report())
        print(tick_report(str(live.home), measuring_from))
        print(run_overhead(live.home))
        print(f"runs created while measuring (bench/run_phases.py --since {measuring_from:.0f}):")
        print(phases_report(str(live.home), measuring_from))
        if pg_trace is not None:
            print(f"PostgreSQL calls while measuring (bench/pg_calls.py {pg_trace} --since ...):")
            print(pg_calls_report(pg_trace, measuring_from))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between objects")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--s3", action="store_true", help="landing and lake on moto's S3")
    parser.add_argument(
        "--seed-hours", type=float, default=1.0, help="demo history written first, as make dev"
    )
    parser.add_argument("--postgres", action="store_true", help="Dagster's storage on PostgreSQL")
    parser.add_argument(
        "--moto",
        choices=["thread", "process"],
        default="thread",
        help="with --s3: moto in a thread of the bench, or in a process of its own (closer to S3)",
    )
    parser.add_argument(
        "--pg-trace",
        type=Path,
        help="with --postgres: a folder for every process's PostgreSQL calls (bench/pg_trace)",
    )
    args = parser.parse_args()
    run(
        args.objects,
        args.gap,
        args.timeout,
        args.s3,
        args.seed_hours,
        args.postgres,
        args.moto,
        args.pg_trace,
    )


if __name__ == "__main__":
    main()
