"""pipes, parhours and pipecrawl: the hours29 range run with the cleaned step in the run's
process (CLEAN_COMPUTE=inprocess) or on Dagster Pipes subprocess workers (subprocess), with
its hours cleaned by 1, 2 or 4 workers side by side (CLEAN_WORKERS), variants alternated.
`cli --step crawl` runs landing and schema only, with CRAWL_COMPUTE instead (workers: 1).

    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py generate --case hours29 \\
        --dir /tmp/pipesbench-hours29
    PYTHONPATH=.:bench .venv/bin/python bench/pipes_bench.py cli --dir /tmp/pipesbench-hours29 \\
        --runs 2 --workers 1,2,4 --computes inprocess,subprocess
    PYTHONPATH=.:bench .venv/bin/python bench/pipes_bench.py step --dir /tmp/pipesbench-hours29 \\
        --runs 2 --workers 1,2,4

`cli`: the CLI range run of landing, schema and cleaned (backfill_bench's `ours`: fresh
instance and lake each time); prints each run's wall time, the run's own time and the
cleaned step's. `step`: the cleaning step alone, lake.cleaning.run.clean_run in this
process (threads), on a fresh lake with generate's catalog table; prints wall and CPU.
Each figure with the load average (1 min) when it ended, then the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from backfill_bench import CASES, REPO, ours

from lake.catalog_store import Catalog
from lake.cleaning.run import RunOptions, clean_run
from lake.firehose import hours_between
from lake.pii import PIIKey
from lake.settings import DEFAULTS, Settings
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
# step -> (its compute setting, the layers the run materializes, the step timed)
STEPS = {
    "clean": ("CLEAN_COMPUTE", ("landing", "schema", "cleaned"), "cleaned"),
    "crawl": ("CRAWL_COMPUTE", ("landing", "schema"), "schema"),
}


def cli(
    root: Path, case: str, runs: int, variants: list[tuple[str, int]], step_name: str = "clean"
) -> None:
    setting, layers, name = STEPS[step_name]
    times: dict[tuple[str, int], dict[str, list[float]]] = {
        v: {"wall": [], "step": []} for v in variants
    }
    records = CASES[case][3]
    for n in range(runs):
        for compute, workers in variants:  # alternated, in the same minutes
            os.environ[setting] = compute  # ours' run reads them from the environment
            os.environ["CLEAN_WORKERS"] = str(workers)
            wall, run_s, steps = ours(root, case, REPO, layers=layers)
            times[compute, workers]["wall"].append(wall)
            times[compute, workers]["step"].append(steps[name])
            print(
                f"run {n + 1} {compute} x{workers}: wall {wall:.2f} s, run {run_s:.2f} s, "
                f"{name} step {steps[name]:.2f} s, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for v in variants:
        wall, step_s = (statistics.median(times[v][k]) for k in ("wall", "step"))
        print(
            f"median {v[0]} x{v[1]}: wall {wall:.2f} s ({records / wall:,.0f} records/s), "
            f"{name} step {step_s:.2f} s ({records / step_s:,.0f} records/s)"
        )


class _Quiet:
    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


def step_lake(
    root: Path, out: Path, table: dict[str, Any] | None, **changes: Any
) -> tuple[LocalStorage, Settings]:
    """A fresh lake under `out` holding `table` (generate's catalog table), and the
    settings of a run from root's landing into it (`changes` on top)."""
    shutil.rmtree(out, ignore_errors=True)
    lake = LocalStorage(out / "lake")
    Catalog(lake, "bench").commit_table(table, None, None)
    settings = replace(
        DEFAULTS,
        landing_uri=(root / "landing").as_uri(),
        lake_uri=lake.uri,
        warehouse_path=str(out / "warehouse.duckdb"),
        iceberg_catalog_uri=f"sqlite:///{out / 'iceberg.db'}",
        **changes,
    )
    return lake, settings


def step(root: Path, case: str, runs: int, workers_list: list[int]) -> None:
    """clean_run alone (threads for workers > 1) over the case, fresh lake each time."""
    first, hours, _, records = CASES[case]
    table = Catalog(LocalStorage(root / "lake"), "bench").get_table(SPEC.name)
    walls: dict[int, list[float]] = {w: [] for w in workers_list}
    for n in range(runs):
        for workers in workers_list:
            lake, settings = step_lake(root, root / "step", table, clean_workers=workers)
            storages = LocalStorage(root / "landing"), lake
            key = PIIKey(b"bench-pii-key", "bench")
            range_hours = hours_between(first, first + timedelta(hours=hours))
            before = resource.getrusage(resource.RUSAGE_SELF)
            start = time.perf_counter()
            result = clean_run(
                settings, SPEC, "bench", storages, key, range_hours, RunOptions(), _Quiet()
            )
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            assert result.total.records_in == records, result.total
            walls[workers].append(wall)
            print(
                f"run {n + 1} x{workers}: {wall:.2f} s wall ({records / wall:,.0f} records/s), "
                f"CPU {cpu:.2f} s, cleaned {result.total.records_cleaned:,}, duplicates "
                f"{result.total.duplicates_dropped:,}, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for workers, values in walls.items():
        wall = statistics.median(values)
        print(f"median x{workers}: {wall:.2f} s ({records / wall:,.0f} records/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("cli", "step"), nargs="?", default="cli")
    parser.add_argument("--case", choices=sorted(CASES), default="hours29")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/pipesbench-hours29"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1", help="comma-separated CLEAN_WORKERS values")
    parser.add_argument("--computes", default="inprocess,subprocess")
    parser.add_argument("--step", choices=sorted(STEPS), default="clean", help="cli: the step")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    if args.mode == "step":
        step(args.dir, args.case, args.runs, workers)
        return
    computes = args.computes.split(",")
    variants = [(c, w) for c in computes for w in workers]
    cli(args.dir, args.case, args.runs, variants, args.step)


if __name__ == "__main__":
    main()
