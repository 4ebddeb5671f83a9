"""RSS of the 2 GB hour's cleaning, step by step: after each pass and around the saves of
its keys (issue 15, task "newkeys").

    PYTHONPATH=.:bench .venv/bin/python bench/newkeys_rss_bench.py --dir /tmp/cb7-nk

Runs clean_bench.py's `ours` on `--dir` (made by `clean_bench.py generate`) with
CleaningRun.clean_pass and lake.cleaning.hour.save_hour_keys wrapped: each prints the
process's RSS when it returns and the highest RSS a 20 ms sampler saw while it ran.
Works on any checkout with those two names (main's or a branch's).
"""

import argparse
import os
import threading
import time
from functools import wraps
from pathlib import Path

import clean_bench

import lake.cleaning.hour as hour_module
from lake.cleaning.passes import CleaningRun


def rss_mb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20


class Sampler:
    """The highest RSS seen since the last `take`, sampled on a thread."""

    def __init__(self) -> None:
        self.peak = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.02)

    def take(self) -> int:
        peak, self.peak = max(self.peak, rss_mb()), 0
        return peak


def traced(label: str, fn, sampler: Sampler):
    @wraps(fn)
    def run(*args, **kwargs):
        sampler.take()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        print(
            f"  {label}: {time.perf_counter() - start:.1f} s, peak {sampler.take()} MB, "
            f"after {rss_mb()} MB",
            flush=True,
        )
        return result

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    sampler = Sampler()
    CleaningRun.clean_pass = traced("pass", CleaningRun.clean_pass, sampler)
    hour_module.save_hour_keys = traced("save_hour_keys", hour_module.save_hour_keys, sampler)
    print(f"{hour_module.__file__}, load average {os.getloadavg()[0]:.1f}")
    clean_bench.ours(args.dir, rerun=False, iceberg=False)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
