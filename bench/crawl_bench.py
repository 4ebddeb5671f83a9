"""Crawler benchmark: many 1 MB objects, and objects growing from 1 MB to 100 MB.

    .venv/bin/python bench/crawl_bench.py many --objects 1000      # 1,000 gzip objects of ~1 MB
    .venv/bin/python bench/crawl_bench.py growth --sizes 1,10,100  # time per object by size (MB)

Objects are Firehose-style concatenated JSON robot records, gzip. Record payloads carry
random base64 so the gzip size is close to the JSON size (a worst case for the sampler:
every MB stored is about a MB of text). Run each mode in its own process so its peak
RSS is its own; the script prints wall times and the process's peak RSS.
"""

import argparse
import base64
import gzip
import json
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime

from lake.catalog_store import Catalog
from lake.crawl_sample import sample_objects
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


def make_object(size_mb: float, seed: int) -> bytes:
    """A gzip object of about size_mb MB (stored) of concatenated JSON records."""
    target = int(size_mb * 1_000_000 * 1.6)  # base64 noise: gzip keeps ~5/8 of the text
    parts, total, i = [], 0, 0
    noise = base64.b64encode(os.urandom(target)).decode()
    while total < target:
        record = {
            "event_id": f"{seed}-{i}",
            "ts": f"2026-11-21T08:{i % 60:02d}:00.000Z",
            "robot_id": f"R{i % 40:02d}",
            "cow_id": f"C{i % 3000:04d}",
            "event_type": "milking_end",
            "milking": {"yield_kg": 11.5, "duration_s": 420, "quarters": [{"q": "lf", "kg": 2.9}]},
            "payload": noise[i * 800 : (i + 1) * 800],
        }
        text = json.dumps(record)
        parts.append(text)
        total += len(text)
        i += 1
    return gzip.compress("".join(parts).encode(), compresslevel=1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_many(objects: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        landing = LocalStorage(f"{tmp}/landing")
        body = make_object(1.0, 0)
        for n in range(objects):
            written = HOUR.replace(minute=n % 60, second=(n // 60) % 60)
            landing.write(object_key(SPEC.name, written, object_id=f"{n:06d}"), body)
        infos = list(landing.list(hour_prefix(SPEC.name, HOUR)))
        stored_mb = sum(i.size for i in infos) / 1e6
        catalog = Catalog(LocalStorage(f"{tmp}/lake"), "bench")
        start = time.perf_counter()
        result = crawl_objects(SPEC, catalog, landing, infos)
        wall = time.perf_counter() - start
    print(
        f"many: {len(infos)} objects, {stored_mb:.0f} MB stored -> crawl {wall:.2f} s "
        f"({wall / len(infos) * 1000:.1f} ms/object), {result.hour.records_sampled:,} records sampled, "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )


def bench_growth(sizes: list[float], repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        landing = LocalStorage(f"{tmp}/landing")
        for size in sizes:
            landing.write(
                object_key(SPEC.name, HOUR, object_id=f"size{size:g}"), make_object(size, 1)
            )
            info = next(
                i for i in landing.list(hour_prefix(SPEC.name, HOUR)) if f"size{size:g}" in i.key
            )
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                seen = sample_objects(SPEC, landing, [info])
                times.append(time.perf_counter() - start)
            tracemalloc.start()  # one more run, traced, for the crawl's own peak allocation
            sample_objects(SPEC, landing, [info])
            traced_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(
                f"growth: {info.size / 1e6:6.1f} MB object -> {statistics.median(times) * 1000:6.1f} ms "
                f"(median of {repeats}; {seen.records_sampled} records, "
                f"{seen.sampled_bytes / 1e6:.2f} MB sampled, crawl peak alloc {traced_peak / 1e6:.1f} MB)"
            )
    print(f"growth: process peak RSS {peak_rss_mb():.0f} MB (includes generating the objects)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    many = sub.add_parser("many")
    many.add_argument("--objects", type=int, default=1000)
    growth = sub.add_parser("growth")
    growth.add_argument("--sizes", default="1,10,50,100")
    growth.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.mode == "many":
        bench_many(args.objects)
    else:
        bench_growth([float(s) for s in args.sizes.split(",")], args.repeats)


if __name__ == "__main__":
    main()
