"""The schema step of a backfill, alone: the crawl of every arrival hour of a landing folder,
hour by hour as assets/schema.py does it, into a fresh lake; and a micro-batch's crawl of
one new object into an hour already crawled.

    PYTHONPATH=.:bench .venv/bin/python bench/crawl_step_bench.py step --dir /tmp/cr-crawl --runs 3
    PYTHONPATH=.:bench .venv/bin/python bench/crawl_step_bench.py micro --dir /tmp/cr-micro --runs 20

`step` reads --dir/landing (e.g. a copy of backfill_bench.py's hours29 landing folder) and
crawls into --dir/lake-N. `micro` makes --dir/landing itself the first time: a seed object
and --runs objects of --records records (clean_bench's templates) in one arrival hour; it
crawls the seed, then each new object as a micro-batch's run does (the whole hour listed,
only the new object sampled). Both print wall and process CPU seconds per run, and a digest
of the catalog (tables, versions, partitions, crawl records, less UpdateTime and other times): equal digests
mean the same catalog. Run A (another checkout first on PYTHONPATH) and B alternately.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from clean_bench import HOUR, SPEC, object_body, record_templates

from lake.catalog_store import Catalog
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage, ObjectInfo


def catalog_digest(lake: Path) -> str:
    """A digest of every catalog document under `lake`, less its clock readings."""
    digest = hashlib.sha256()
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        text = path.read_bytes()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if doc is not None:
            text = json.dumps(_timeless(doc), sort_keys=True).encode()
        digest.update(str(path.relative_to(lake)).encode() + b"\0" + text)
    return digest.hexdigest()[:12]


def _timeless(doc: object) -> object:
    """`doc` less its clock readings (keys ending in `Time` or `_at`: UpdateTime, created_at)."""
    if isinstance(doc, dict):
        return {k: _timeless(v) for k, v in doc.items() if not k.endswith(("Time", "_at"))}
    if isinstance(doc, list):
        return [_timeless(v) for v in doc]
    return doc


def _timed(fn: Callable[..., object], *args: object) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def _crawl_hours(catalog: Catalog, landing: LocalStorage, hours: dict) -> None:
    for hour in sorted(hours):
        crawl_objects(SPEC, catalog, landing, hours[hour])


def step(root: Path, runs: int) -> None:
    landing = LocalStorage(root / "landing")
    hours: dict[str, list[ObjectInfo]] = {}
    for info in landing.list(f"{SPEC.name}/"):
        hours.setdefault(info.key.rsplit("/", 1)[0], []).append(info)
    for run in range(runs):
        lake = root / f"lake-{run}"
        shutil.rmtree(lake, ignore_errors=True)
        catalog = Catalog(LocalStorage(lake), "bench")
        wall, cpu = _timed(_crawl_hours, catalog, landing, hours)
        print(
            f"step: {len(hours)} hours crawled in {wall:.2f} s wall, {cpu:.2f} s CPU;"
            f" catalog {catalog_digest(lake)}"
        )


def micro(root: Path, runs: int, records: int) -> None:
    landing_dir = root / "landing"
    landing = LocalStorage(landing_dir)
    if not landing_dir.exists():
        templates, rng = record_templates(), random.Random(5)
        for n in range(runs + 1):
            body = gzip.compress(object_body(rng, templates, records))
            landing.write(
                object_key(SPEC.name, HOUR.replace(minute=n % 60), object_id=f"{n:05d}"), body
            )
    infos = sorted(landing.list(hour_prefix(SPEC.name, HOUR)), key=lambda i: i.key)
    lake = root / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    catalog = Catalog(LocalStorage(lake), "bench")
    crawl_objects(SPEC, catalog, landing, infos[:1])
    walls, cpus, sampled = [], [], 0
    for n in range(1, min(runs, len(infos) - 1) + 1):
        start, cpu = time.perf_counter(), time.process_time()
        result = crawl_objects(SPEC, catalog, landing, infos[: n + 1])
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - start)
        sampled = result.hour.records_sampled
    print(
        f"micro: {len(walls)} one-object crawls ({sampled} records sampled each): median"
        f" {statistics.median(walls) * 1000:.1f} ms wall, {statistics.median(cpus) * 1000:.1f} ms"
        f" CPU; catalog {catalog_digest(lake)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["step", "micro"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=100, help="micro: records an object")
    args = parser.parse_args()
    if args.mode == "step":
        step(args.dir, args.runs)
    else:
        micro(args.dir, args.runs, args.records)


if __name__ == "__main__":
    main()
