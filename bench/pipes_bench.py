"""pipes: the hours29 range run (through the CLI, as backfill_bench's `ours`) with one heavy
step in the run's process (A: inprocess) and on a Dagster Pipes subprocess worker
(B: subprocess), alternated run by run. `--step clean` (the default) runs landing, schema and
cleaned with CLEAN_COMPUTE; `--step crawl` runs landing and schema with CRAWL_COMPUTE.

    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py generate --case hours29 \\
        --dir /tmp/pipesbench-hours29
    PYTHONPATH=.:bench .venv/bin/python bench/pipes_bench.py --dir /tmp/pipesbench-hours29 --runs 3
    PYTHONPATH=.:bench .venv/bin/python bench/pipes_bench.py --dir /tmp/pipesbench-hours29 \\
        --runs 3 --step crawl

Prints each run's wall time, the run's own time and the step's, with the load average,
then the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from backfill_bench import CASES, REPO, ours

COMPUTES = ("inprocess", "subprocess")
# step -> (its setting, the layers the run materializes, its step's name)
STEPS = {
    "clean": ("CLEAN_COMPUTE", ("landing", "schema", "cleaned"), "cleaned"),
    "crawl": ("CRAWL_COMPUTE", ("landing", "schema"), "schema"),
}


def compare(root: Path, case: str, runs: int, step: str) -> None:
    setting, layers, name = STEPS[step]
    times: dict[str, dict[str, list[float]]] = {c: {"wall": [], "step": []} for c in COMPUTES}
    records = CASES[case][3]
    for n in range(runs):
        for compute in COMPUTES:  # A then B in the same minutes
            os.environ[setting] = compute  # ours' run reads it from the environment
            wall, run_s, steps = ours(root, case, REPO, layers=layers)
            times[compute]["wall"].append(wall)
            times[compute]["step"].append(steps[name])
            print(
                f"run {n + 1} {compute}: wall {wall:.2f} s, run {run_s:.2f} s, {name} step "
                f"{steps[name]:.2f} s, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for compute in COMPUTES:
        wall, step_s = (statistics.median(times[compute][k]) for k in ("wall", "step"))
        print(
            f"median {compute}: wall {wall:.2f} s ({records / wall:,.0f} records/s), "
            f"{name} step {step_s:.2f} s ({records / step_s:,.0f} records/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="hours29")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pipesbench-hours29"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--step", choices=sorted(STEPS), default="clean")
    args = parser.parse_args()
    compare(args.dir, args.case, args.runs, args.step)


if __name__ == "__main__":
    main()
