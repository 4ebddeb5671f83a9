"""Baseline: simulated Firehose objects -> crawl -> cleaned Parquet, through the lake core.

    .venv/bin/python bench/ingest_baseline.py --hours 24 --robots 40 --cows 3000

Writes the simulator's objects into a temp landing folder, then times the crawl
(schema) and the cleaning of every arrival hour, and prints records/s for each.
"""

import argparse
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.cleaning.report import HourReport
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, hours_between
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import LocalStorage
from lake.streams import load_streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--cows", type=int, default=3000)
    parser.add_argument("--robots", type=int, default=40)
    parser.add_argument("--stream", default="robot_telemetry")
    args = parser.parse_args()

    spec = load_streams()[args.stream]
    start = datetime(2026, 11, 20, tzinfo=UTC)
    end = start + timedelta(hours=args.hours)
    with tempfile.TemporaryDirectory() as tmp:
        landing, lake = LocalStorage(f"{tmp}/landing"), LocalStorage(f"{tmp}/lake")
        sim = Simulator(
            SimulatorConfig(
                seed=1,
                streams=(args.stream,),
                cows=args.cows,
                robots=args.robots,
                object_interval_s=60,
            )
        )
        written = list(sim.write_range(landing, start, end))
        size = sum(w.size for w in written)
        print(
            f"input: {len(written)} objects, {sum(len(w.records) for w in written):,} records, {size / 1e6:.1f} MB gzip"
        )

        catalog = Catalog(lake, "bench")
        t0 = time.perf_counter()
        for hour in hours_between(start, end):
            infos = list(landing.list(hour_prefix(args.stream, hour)))
            crawl_objects(spec, catalog, landing, infos)
        crawl_s = time.perf_counter() - t0

        table = catalog.get_table(args.stream)
        total = HourReport()
        t0 = time.perf_counter()
        for hour in hours_between(start, end):
            infos = list(landing.list(hour_prefix(args.stream, hour)))
            total.absorb(clean_hour(spec, table, landing, lake, hour, infos))
        clean_s = time.perf_counter() - t0

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"crawl: {crawl_s:.2f} s, {total.records_in / crawl_s:,.0f} records/s")
    print(
        f"clean: {clean_s:.2f} s, {total.records_in / clean_s:,.0f} records/s "
        f"({total.records_cleaned:,} cleaned, {total.duplicates_dropped} duplicates)"
    )
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
