"""Soak benchmark: the simulator at 10x the demo rate for 10 minutes under `dagster dev`.

    PYTHONPATH=.:bench .venv/bin/python bench/soak_bench.py --minutes 10

`make dev` seeds 3 hours of demo history, then its simulator writes one object per stream
every 15 s (SIM_INTERVAL) from a farm of 300 cows and 4 robots, with the demo's delivery
faults (lake/simulator/demo.py). Here the same seed, then 10x that: one object per stream
every 1.5 s from 3,000 cows and 40 robots (ten times the objects and the records), same
faults, for `--minutes`. Dagster is started the documented way (bench/live_lake.py).

Every 3 s the run queue is sampled: queued runs (QUEUED or NOT_STARTED) in all and per
stream+hour and per mart day, runs in progress. At the end (after a drain of at most
`--drain` seconds): p50/p95/max from write to cleaned rows readable, objects and records
written against the ledger's manifests, and the runs by job and status.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import UTC, datetime

from live_lake import LiveLake, QueueSampler, run_overhead, summary

from lake.simulator import STREAMS, ObjectWritten, Simulator, SimulatorConfig
from lake.simulator.demo import LATE_HOURS

DEMO = {"interval_s": 15.0, "cows": 300, "robots": 4}  # scripts/dev.sh, lake/simulator/cli.py
FAULTS = {"duplicate_rate": 0.01, "late_rate": 0.01, "malformed_rate": 0.002}  # demo.FAULTS


def soak(live: LiveLake, minutes: float, factor: float) -> list[ObjectWritten]:
    config = SimulatorConfig(
        seed=23,
        cows=round(DEMO["cows"] * factor),
        robots=min(99, round(DEMO["robots"] * factor)),
        object_interval_s=DEMO["interval_s"] / factor,
        late_hours=LATE_HOURS,
        **FAULTS,
    )
    sim = Simulator(config)
    gap = config.object_interval_s / len(STREAMS)  # the streams in turn
    written: list[ObjectWritten] = []
    end = time.monotonic() + minutes * 60
    turn = 0
    while time.monotonic() < end:
        began = time.monotonic()
        w = sim.write_object(live.landing, STREAMS[turn % len(STREAMS)], datetime.now(UTC))
        turn += 1
        if w is not None:
            live.landed(w)
            written.append(w)
        time.sleep(max(0.0, gap - (time.monotonic() - began)))
    return written


def ledger_check(live: LiveLake, written: list[ObjectWritten]) -> str:
    """Objects and records the simulator wrote against what the ledger's manifests say."""
    records_written = sum(len(w.records) + len(w.malformed) for w in written)
    manifests = [m for m in live.latencies]  # manifests that appeared
    records_in = sum(json.loads(live.lake.read(m))["records_in"] for m in manifests)
    return (
        f"{len(written)} objects written, {len(manifests)} in the ledger; records written "
        f"{records_written}, records_in of their manifests {records_in}"
    )


def runs_by_status(live: LiveLake) -> str:
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(live.home))) as instance:
        counts = Counter(
            (r.dagster_run.job_name, r.dagster_run.status.value) for r in instance.get_run_records()
        )
    return ", ".join(f"{job} {status}: {n}" for (job, status), n in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--factor", type=float, default=10.0, help="times the demo rate")
    parser.add_argument("--seed-hours", type=float, default=3.0, help="as make dev")
    parser.add_argument("--drain", type=float, default=300.0)
    args = parser.parse_args()
    with LiveLake(seed_hours=args.seed_hours) as live:
        with QueueSampler(live.home, every_s=3) as queue:
            written = soak(live, args.minutes, args.factor)
            print(f"writing stopped; {len(live.latencies)} of {len(written)} cleaned so far")
            began = time.monotonic()
            left = live.drain(args.drain)
            print(f"drain: {time.monotonic() - began:.0f} s, {left} objects not cleaned")
        print(f"latency: {summary(list(live.latencies.values()))}")
        print(queue.report())
        print(ledger_check(live, written))
        print(run_overhead(live.home))
        print(runs_by_status(live))


if __name__ == "__main__":
    main()
