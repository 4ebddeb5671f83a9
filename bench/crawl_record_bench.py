"""The crawl's per-record cost: `sample_objects` over simulator hours of every stream.

    PYTHONPATH=.:bench .venv/bin/python bench/crawl_record_bench.py --dir /tmp/crb \
        [--hours 2 | --backfill-objects 100] [--repeat 3] [--profile]

The first run into --dir simulates --hours arrival hours of robot_telemetry, clickstream
and cloudtrail (40 robots, 3,000 cows, an object every 10 minutes per stream) into
--dir/landing; later runs reuse them, so runs against other code (PYTHONPATH of another
checkout) time the very same objects. --backfill-objects N writes N robot_telemetry
objects of 1,000 records from clean_bench's templates instead (the backfill's objects). Per stream it prints the median wall time of
`sample_objects` over every object, records sampled, microseconds per record, a
digest of everything the crawl reports (schema, conflicts, JSON fields and candidates,
records over limits, counts): equal digests mean equal results; then the merge of the
already decoded samples alone ("merge only", the per-record schema work).
"""

from __future__ import annotations

import argparse
import cProfile
import gzip
import hashlib
import pstats
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clean_bench import object_body, record_templates

import lake.crawl_sample as crawl_sample
from lake.classifiers import SampleLimits, classify_object
from lake.crawl_sample import HourSchema, JsonTracking, sample_objects
from lake.firehose import object_key
from lake.hive_types import MergeReport, Struct, encode_type
from lake.simulator import STREAMS, Simulator, SimulatorConfig
from lake.storage import LocalStorage
from lake.streams import StreamSpec, load_streams

START = datetime(2026, 11, 21, 8, tzinfo=UTC)


def simulate(landing: LocalStorage, hours: int) -> None:
    sim = Simulator(SimulatorConfig(seed=7, cows=3000, robots=40, object_interval_s=600))
    for _ in sim.write_range(landing, START, START + timedelta(hours=hours)):
        pass


def backfill_objects(landing: LocalStorage, objects: int) -> None:
    """robot_telemetry objects of 1,000 records as clean_bench (and the backfill) makes them."""
    templates, rng = record_templates(), random.Random(5)
    for o in range(objects):
        body = gzip.compress(object_body(rng, templates, 1000), 6)
        landing.write(object_key("robot_telemetry", START, object_id=f"{o:05d}"), body)


def digest(seen: HourSchema) -> str:
    parts = [
        repr(encode_type(seen.schema)),
        repr(seen.conflicts),
        repr(seen.json_fields),
        repr(seen.json_field_candidates),
        repr((seen.records_over_limits, seen.columns_over_limit, seen.records_sampled)),
        repr((seen.objects, seen.bytes, seen.sampled_bytes, sorted(seen.classifications.items()))),
        repr(sorted((k, sorted(p.stats.items())) for k, p in seen.partitions.items())),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def merge_only(spec: StreamSpec, samples: list[list]) -> tuple[float, int]:
    """Seconds to merge already decoded samples, one schema per object as the crawl does;
    before RecordMerger (PYTHONPATH of an older checkout) through merge_records."""
    report, tracking = MergeReport(), JsonTracking.of(spec)
    start = time.perf_counter()
    if hasattr(crawl_sample, "RecordMerger"):
        merger = crawl_sample.RecordMerger(report, spec.limits, tracking)
        merged = sum(merger.merge(Struct(), records) for records in samples)
    else:
        merged = sum(
            crawl_sample.merge_records(Struct(), records, report, spec.limits, tracking)
            for records in samples
        )
    return time.perf_counter() - start, merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--backfill-objects", type=int, help="instead: this many clean_bench objects"
    )
    args = parser.parse_args()
    landing = LocalStorage(args.dir / "landing")
    if not (args.dir / "landing").exists():
        if args.backfill_objects:
            backfill_objects(landing, args.backfill_objects)
        else:
            simulate(landing, args.hours)
    specs = load_streams()
    for name in STREAMS if not args.backfill_objects else ("robot_telemetry",):
        spec = specs[name]
        infos = list(landing.list(f"{name}/"))
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            seen = sample_objects(spec, landing, infos)
            times.append(time.perf_counter() - start)
        wall = statistics.median(times)
        print(
            f"{name}: {len(infos)} objects, {seen.records_sampled:,} records sampled -> "
            f"{wall:.3f} s (median of {args.repeat}), "
            f"{wall / max(seen.records_sampled, 1) * 1e6:.1f} us/record, digest {digest(seen)}"
        )
        sampling = SampleLimits(spec.crawler.sample_bytes, spec.crawler.sample_records)
        samples = [
            classify_object(landing, i.key, i.size, sampling, spec.records_key).records
            for i in infos
        ]
        merges = [merge_only(spec, samples) for _ in range(args.repeat)]
        merge_wall = statistics.median(t for t, _ in merges)
        print(
            f"{name}: merge only {merge_wall:.3f} s (median of {args.repeat}) for "
            f"{merges[0][1]:,} records merged, {merge_wall / max(merges[0][1], 1) * 1e6:.1f} us/record"
        )
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(sample_objects, spec, landing, infos)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(18)


if __name__ == "__main__":
    main()
