"""pipes: the hours29 range run (landing, schema, cleaned through the CLI, as backfill_bench's
`ours`) with the cleaned step in the run's process (CLEAN_COMPUTE=inprocess) and on a
Dagster Pipes subprocess worker (CLEAN_COMPUTE=subprocess), alternated run by run.

    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py generate --case hours29 \\
        --dir /tmp/pipesbench-hours29
    PYTHONPATH=.:bench .venv/bin/python bench/pipes_bench.py --dir /tmp/pipesbench-hours29 --runs 3

Prints each run's wall time, the run's own time and the cleaned step's, with the load
average, then the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from backfill_bench import CASES, REPO, ours

COMPUTES = ("inprocess", "subprocess")


def compare(root: Path, case: str, runs: int) -> None:
    times: dict[str, dict[str, list[float]]] = {c: {"wall": [], "cleaned": []} for c in COMPUTES}
    records = CASES[case][3]
    for n in range(runs):
        for compute in COMPUTES:  # A then B in the same minutes
            os.environ["CLEAN_COMPUTE"] = compute  # ours' run reads it from the environment
            wall, _, steps = ours(root, case, REPO)
            times[compute]["wall"].append(wall)
            times[compute]["cleaned"].append(steps["cleaned"])
            print(
                f"run {n + 1} {compute}: cleaned step {steps['cleaned']:.2f} s, "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for compute in COMPUTES:
        wall, cleaned = (statistics.median(times[compute][k]) for k in ("wall", "cleaned"))
        print(
            f"median {compute}: wall {wall:.2f} s ({records / wall:,.0f} records/s), "
            f"cleaned step {cleaned:.2f} s ({records / cleaned:,.0f} records/s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="hours29")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pipesbench-hours29"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    compare(args.dir, args.case, args.runs)


if __name__ == "__main__":
    main()
