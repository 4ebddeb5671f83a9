"""The dedup probe alone against a window of K keys, and the compaction that writes it.

    PYTHONPATH=.:bench .venv/bin/python bench/key_probe_bench.py --dir /tmp/kpb \
        --keys 1000000 10000000 --probe 100 --repeat 15

For each K: the window of microbatch_bench's hour (its three event dates) filled with K
random keys in 71 hour files (`fill_keys`), each date compacted; the compaction of one
date timed again (its hour files rewritten first, so all are fresh: the cost a run's end or
the maintenance asset pays every ~4 hours a date) with the process's peak RSS; then
--repeat probes of --probe new random keys (`KeyWindow.hits`, key-file cache emptied
before each, as in a new run process), median and min in ms. Run it with each side's code
on PYTHONPATH: the lake it fills is its own (--dir/<K>).
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from pathlib import Path

import pyarrow as pa
from clean_bench import HOUR, SPEC
from microbatch_bench import _random_uint64, fill_keys

import lake.cleaning.key_files as key_files
from lake import layout
from lake.cleaning.dedup import window_dates
from lake.storage import LocalStorage


def probe_ms(window: key_files.KeyWindow, rng: random.Random, keys: int) -> float:
    key_files._CACHE.tables.clear()
    key_files._CACHE.size = 0
    probe = pa.table({"hi": _random_uint64(rng, keys)})
    started = time.perf_counter()
    window.hits(probe)
    return 1000 * (time.perf_counter() - started)


def compaction_s(lake: LocalStorage, day) -> float:  # type: ignore[no-untyped-def]
    """One date's compaction with every hour file fresh (rewritten as it is)."""
    folder = layout.dedup_keys_folder(SPEC.name, day)
    for info in list(lake.list(folder)):
        if info.key.endswith(".parquet") and "compacted" not in info.key:
            lake.write(info.key, lake.read(info.key))
    started = time.perf_counter()
    key_files.compact_day(lake, SPEC.name, day)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/key-probe-bench"))
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--probe", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    days = window_dates(HOUR, SPEC.allowed_lateness_hours)
    for k in args.keys:
        lake = LocalStorage(args.dir / str(k))
        fill_keys(lake, k, 24)
        compact = compaction_s(lake, days[1])
        window = key_files.KeyWindow(lake, SPEC.name, days)
        rng = random.Random(k)
        probe_ms(window, rng, args.probe)  # warm: imports, the DuckDB connection
        times = [probe_ms(window, rng, args.probe) for _ in range(args.repeat)]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(
            f"K={k:,}: probe of {args.probe} keys median {statistics.median(times):.1f} ms, "
            f"min {min(times):.1f} ms; one date's compaction {compact:.2f} s; "
            f"peak RSS {peak} MB"
        )


if __name__ == "__main__":
    main()
