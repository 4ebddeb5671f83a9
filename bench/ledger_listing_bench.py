"""An hour's first totals (lake.hour_totals.record_manifests: the hour's document seeded
from its ledger listing) on a local lake whose flat ledger folder already holds
`--manifests` manifests of other hours (a stream's history), and what a run's per-hour
ledger reads cost there (lake.ledger.read_ledger(...).versions: the hour listed whole).
Runs on the code of PYTHONPATH (A/B).

    PYTHONPATH=.:bench .venv/bin/python bench/ledger_listing_bench.py --manifests 8640 --dir /tmp/ll
"""

import argparse
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lake.storage
from lake.firehose import object_key
from lake.hour_totals import record_manifests
from lake.ledger import manifest_of, read_ledger, write_manifest
from lake.storage import LocalStorage, ObjectInfo

FIRST = datetime(2025, 11, 1, tzinfo=UTC)
STREAM = "s"


def manifest(hour: datetime, n: int) -> tuple[str, dict]:
    info = ObjectInfo(
        object_key(STREAM, hour + timedelta(seconds=n), object_id=f"{n:03d}"), 9, hour
    )
    body = {"source_key": info.key, "etag": info.etag, "size": info.size, "files": []}
    return manifest_of(STREAM, hour, info), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=int, default=8640, help="in the ledger already")
    parser.add_argument("--per-hour", type=int, default=12, help="objects an hour of history")
    parser.add_argument("--hours", type=int, default=48, help="new hours timed")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ledger-listing-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    lake_ = LocalStorage(args.dir)
    for n in range(args.manifests):  # history before and after the timed hours
        write_manifest(
            lake_, *manifest(FIRST + timedelta(hours=2 * (n // args.per_hour)), n % args.per_hour)
        )
    timed = [FIRST + timedelta(hours=2 * n + 1) for n in range(args.hours)]  # between them
    start, cpu0 = time.perf_counter(), time.process_time()
    for hour in timed:
        key, body = manifest(hour, 0)
        write_manifest(lake_, key, body)
        record_manifests(lake_, STREAM, [(key, body)])
    seed, seed_cpu = time.perf_counter() - start, time.process_time() - cpu0
    start = time.perf_counter()
    for hour in timed:
        assert len(read_ledger(lake_, STREAM, hour).versions) == 1
    versions = time.perf_counter() - start
    print(
        f"{lake.storage.__file__}: {args.manifests:,} manifests in the ledger folder: an hour's "
        f"first totals {seed / args.hours * 1000:.2f} ms (CPU {seed_cpu / args.hours * 1000:.2f} ms), "
        f"its ledger listed whole {versions / args.hours * 1000:.2f} ms "
        f"(load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
