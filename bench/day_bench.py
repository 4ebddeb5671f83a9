"""Throughput benchmark: one simulated day of every stream, landing -> cleaned -> marts.

    .venv/bin/python bench/day_bench.py --cows 3000 --robots 40 --interval 60

Simulates one day (2026-11-20) of the farm, the portal and the AWS account into a
temporary landing folder (one object per stream every `interval` seconds, Firehose's
shortest buffer), then runs, in this process with Dagster's in-process executor:
1. the ingest assets of all three streams (landing, schema, cleaned) for the day's 24 arrival
   hours as one single-run backfill (the partition-range tags a UI backfill sets);
2. every mart for the day as one single-run backfill.
It prints the data size, each run's wall time, the process's peak RSS, and how much of the
wall time was spent inside the lake core (crawl, clean = DuckDB, marts = DuckDB) against
the rest (Dagster: run set-up, event log, checks, I/O of metadata).
"""

from __future__ import annotations

import argparse
import collections
import functools
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dagster import DagsterInstance, materialize  # noqa: E402

import lake.cleaning.hour  # noqa: E402
import lake.crawl_run  # noqa: E402
import lake.mart_build  # noqa: E402
import lake.mart_sinks  # noqa: E402
from lake.settings import DEFAULTS  # noqa: E402
from lake.simulator import Simulator, SimulatorConfig  # noqa: E402
from lake.storage import LocalStorage  # noqa: E402
from orchestration.definitions import ingest_assets, mart_assets, streams  # noqa: E402
from orchestration.resources import resources_from_env  # noqa: E402

DAY = datetime(2026, 11, 20, tzinfo=UTC)
SPENT: collections.Counter[str] = collections.Counter()


def timed(module: Any, name: str, label: str) -> None:
    """Count the wall time spent in `module.name` (the asset modules' references)."""
    inner = getattr(module, name)

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - start

    setattr(module, name, wrapper)


def simulate(
    landing: LocalStorage, cows: int, robots: int, interval: float
) -> tuple[int, int, int]:
    sim = Simulator(SimulatorConfig(seed=23, cows=cows, robots=robots, object_interval_s=interval))
    objects = records = size = 0
    for w in sim.write_range(landing, DAY, DAY + timedelta(days=1)):
        objects += 1
        records += len(w.records) + len(w.malformed)
        size += w.size
    return objects, records, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cows", type=int, default=3000)
    parser.add_argument("--robots", type=int, default=40)
    parser.add_argument("--interval", type=float, default=60.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="day-bench-"))
    landing = LocalStorage(root / "landing")
    start = time.perf_counter()
    objects, records, size = simulate(landing, args.cows, args.robots, args.interval)
    print(
        f"simulated {DAY:%Y-%m-%d}: {objects:,} objects, {records:,} records, "
        f"{size / 1e6:.1f} MB gzip in {time.perf_counter() - start:.1f} s ({root})"
    )
    timed(lake.crawl_run, "crawl_objects", "crawl (Python sampler)")
    # the cleaned and marts assets import these inside their bodies: time the modules'
    timed(lake.cleaning.hour, "clean_hours", "clean (DuckDB)")
    timed(lake.mart_build, "build_mart", "marts (DuckDB)")
    timed(lake.mart_sinks, "write_day", "marts (DuckDB)")  # the sinks: Parquet, Redshift, views
    resources = resources_from_env(
        replace(
            DEFAULTS,
            landing_uri=landing.root.as_uri(),
            lake_uri=(root / "lake").as_uri(),
            warehouse_path=str(root / "warehouse.duckdb"),
        )
    )
    hourly = [a for name in streams.streams for a in ingest_assets(name)]
    walls = {}
    with DagsterInstance.ephemeral() as instance:
        for label, selection, first, last in (
            ("ingest", hourly, f"{DAY:%Y-%m-%d}-00:00", f"{DAY:%Y-%m-%d}-23:00"),
            ("marts", mart_assets, f"{DAY:%Y-%m-%d}", f"{DAY:%Y-%m-%d}"),
        ):
            start = time.perf_counter()
            result = materialize(
                selection,
                resources=resources,
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": first,
                    "dagster/asset_partition_range_end": last,
                },
            )
            walls[label] = time.perf_counter() - start
            assert result.success, f"{label} run failed"
            print(f"{label}: one run, {walls[label]:.1f} s")
    total = sum(walls.values())
    inside = sum(SPENT.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"total {total:.1f} s for {records:,} records ({records / total:,.0f} records/s), peak RSS {peak:.0f} MB"
    )
    for label, seconds in SPENT.most_common():
        print(f"  {label}: {seconds:.1f} s ({seconds / total:.0%})")
    print(f"  Dagster and the rest: {total - inside:.1f} s ({(total - inside) / total:.0%})")


if __name__ == "__main__":
    main()
