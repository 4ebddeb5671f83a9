"""The schema step of a range run without Dagster: crawl each arrival hour of a
backfill_bench case in a fresh lake, as assets/schema.py does in one run, and print the
time and a digest of the outcome (crawl results and every catalog file, times left out),
so two checkouts can be compared for speed and for the same result.

    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py generate --case hours29 --dir D
    PYTHONPATH=.:bench .venv/bin/python bench/schema_range_bench.py --dir D [--profile F]
    PYTHONPATH=<other checkout>:bench .venv/bin/python bench/schema_range_bench.py --dir D
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import shutil
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from backfill_bench import CASES
from clean_bench import SPEC

from lake.catalog_store import Catalog
from lake.crawler import CrawlResult, crawl_objects
from lake.firehose import hours_between
from lake.landing_scan import hour_listing
from lake.storage import LocalStorage

TIMES = {"UpdateTime", "CreateTime", "created_at", "LastAccessTime", "LastAnalyzedTime"}


def crawl_range(landing: LocalStorage, catalog: Catalog, case: str) -> list[CrawlResult]:
    first, hours, _, _ = CASES[case]
    results = []
    for hour in hours_between(first, first + timedelta(hours=hours)):
        if objects := hour_listing(landing, SPEC.name, hour, None):
            results.append(crawl_objects(SPEC, catalog, landing, objects))
    return results


def digest(results: list[CrawlResult], lake: Path) -> str:
    h = hashlib.sha256()
    for r in results:
        seen = r.hour
        parts = sorted((k, dict(p.stats), p.crawled) for k, p in seen.partitions.items())
        doc = [r.version, r.changed, r.proposed.as_dict(), r.applied.as_dict(), r.incompatible]
        doc += [seen.objects, seen.bytes, seen.records_sampled, seen.sampled_bytes]
        doc += [dict(seen.classifications), seen.unknown, seen.conflicts, parts]
        doc += [seen.records_over_limits, seen.columns_over_limit, seen.json_fields]
        doc += [seen.json_field_candidates, repr(seen.schema)]
        h.update(json.dumps(doc, default=str, sort_keys=True).encode())
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        text = json.dumps(_without_times(json.loads(path.read_text())), sort_keys=True)
        h.update(str(path.relative_to(lake)).encode() + text.encode())
    return h.hexdigest()[:16]


def _without_times(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _without_times(v) for k, v in doc.items() if k not in TIMES}
    if isinstance(doc, list):
        return [_without_times(v) for v in doc]
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="backfill_bench's --dir")
    parser.add_argument("--case", choices=sorted(CASES), default="hours29")
    parser.add_argument("--profile", type=Path, help="cProfile stats of the crawl to this file")
    args = parser.parse_args()
    lake = args.dir / "schema_range_lake"
    shutil.rmtree(lake, ignore_errors=True)
    landing, catalog = LocalStorage(args.dir / "landing"), Catalog(LocalStorage(lake), "lake")
    profiler = cProfile.Profile() if args.profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    results = crawl_range(landing, catalog, args.case)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"crawl of {len(results)} hours: {wall:.2f} s wall, {cpu:.2f} s CPU; "
        f"digest {digest(results, lake)}"
    )


if __name__ == "__main__":
    main()
