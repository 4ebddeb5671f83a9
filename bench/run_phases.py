"""Where the runs of a kept DAGSTER_HOME spent their time, from its run records and event logs.

    .venv/bin/python bench/run_phases.py /tmp/live-lake-XXXX/dagster_home [--since EPOCH]

Per job: how many runs, how they ended, and per phase the median and max seconds:
planned events (created -> enqueued: the run's planned materialization events), queued
(-> the launcher takes it), launch (-> the run process started: a new process
importing the code location), to first step, each step (step start -> step end), and the
tail (last step end -> run end). Then how many seconds of the 4 run slots each job held
(launched -> end), so what occupies the slots while ingest runs wait is visible.
`latency_bench.py` prints the DAGSTER_HOME it used (`data in <dir>`).
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from dagster import DagsterEventType, DagsterInstance, RunsFilter
from dagster._core.instance.ref import InstanceRef

STEP_END = {DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


def run_phases(instance: DagsterInstance, run_id: str, created: float) -> dict[str, float]:
    """Seconds of each phase of one finished run, from its event log."""
    first: dict[str, float] = {}
    steps: dict[str, list[float]] = defaultdict(list)
    last_step_end = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind, at = event.event_type, entry.timestamp
        first.setdefault(kind.value, at)
        if kind == DagsterEventType.STEP_START:
            steps[event.step_key or "?"].append(at)
        elif kind in STEP_END:
            steps[event.step_key or "?"].append(at)
            last_step_end = at
    queued = first.get(DagsterEventType.RUN_ENQUEUED.value)
    dequeued = first.get(DagsterEventType.RUN_STARTING.value)  # the launcher took it
    started = first.get(DagsterEventType.RUN_START.value)
    ended = first.get(DagsterEventType.RUN_SUCCESS.value) or first.get(
        DagsterEventType.RUN_FAILURE.value
    )
    step_start = first.get(DagsterEventType.STEP_START.value)
    phases: dict[str, float] = {}
    if queued:  # the planned events are written when the run is created, before the queue
        phases["planned events"] = queued - created
    if queued and dequeued:
        phases["queued"] = dequeued - queued
    if dequeued and started:
        phases["launch"] = started - dequeued
    if started and step_start:
        phases["to first step"] = step_start - started
    for step, times in steps.items():
        if len(times) >= 2:
            phases[f"step {step.split('__')[0]}"] = times[-1] - times[0]
    if last_step_end and ended:
        phases["tail"] = ended - last_step_end
    if dequeued and ended:
        phases["slot held"] = ended - dequeued
    return phases


def report(home: str, since: float) -> str:
    lines = []
    with DagsterInstance.from_ref(InstanceRef.from_dir(home)) as instance:
        by_job: dict[str, list[dict[str, float]]] = defaultdict(list)
        status: dict[str, list[str]] = defaultdict(list)
        for record in instance.get_run_records(RunsFilter(created_after=_utc(since))):
            run = record.dagster_run
            if record.end_time is None:
                continue
            by_job[run.job_name].append(
                run_phases(instance, run.run_id, record.create_timestamp.timestamp())
            )
            status[run.job_name].append(run.status.value)
        total_held = sum(p.get("slot held", 0) for runs in by_job.values() for p in runs)
        for job, runs in sorted(by_job.items()):
            ends = {s: status[job].count(s) for s in sorted(set(status[job]))}
            held = sum(p.get("slot held", 0) for p in runs)
            lines.append(
                f"{job}: {len(runs)} runs {ends}; slot-seconds {held:.0f} "
                f"({100 * held / max(total_held, 1e-9):.0f}% of all)"
            )
            names = sorted({k for p in runs for k in p}, key=_phase_order)
            for name in names:
                values = [p[name] for p in runs if name in p]
                lines.append(
                    f"  {name:<22} median {statistics.median(values):6.2f} s, "
                    f"max {max(values):6.2f} s ({len(values)} runs)"
                )
    return "\n".join(lines)


def _phase_order(name: str) -> tuple[int, str]:
    order = [
        "planned events",
        "queued",
        "launch",
        "to first step",
        "step landing",
        "step schema",
        "step cleaned",
    ]
    return (order.index(name) if name in order else len(order), name)


def _utc(epoch: float):  # noqa: ANN202 (a datetime or None for RunsFilter)
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home", help="the DAGSTER_HOME folder")
    parser.add_argument("--since", type=float, default=0.0, help="runs created after (epoch s)")
    args = parser.parse_args()
    print(report(args.home, args.since))


if __name__ == "__main__":
    main()
