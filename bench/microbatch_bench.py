"""A 1-object micro-batch's cost against what its hour and dedup window already hold.

    PYTHONPATH=. .venv/bin/python bench/microbatch_bench.py --dir /tmp/mbb \
        --objects 0 1000 10000 --keys 0 1000000 10000000 --repeat 3 [--profile]

For each N of --objects, a fresh lake (local folders, the embedded defaults with the
SQLite Iceberg catalog): a seed object of robot_telemetry crawled (the catalog table
exists, as after the schema asset), then N tiny objects (--fill-records records each)
landed in the same arrival hour and cleaned by `clean_hour` with the Iceberg tables, in
calls of --fill-batch objects (their ledger manifests, cleaned files, dedup keys and
table commits are the real ones), then crawled and exposed once, and the filling runs' totals deltas folded into the hour's
document (as a micro-batch stream leaves them: its 32nd run folds them).
The fillers are named over the hour's first 50 minutes; one untimed warm-up batch follows.
For each K of --keys, the dedup window of the hour
(the event dates `window_dates` gives for the stream's lateness) then holds K extra keys:
random 128-bit keys in one state file per (event date, other arrival hour), written in
the layout lake.cleaning.dedup reads. Then --repeat micro-batches, each one new object of
--records records named after every earlier one (minute 55, a second apart), run as the
assets do it for a landing sensor's run: list the hour (from the previous run's mark on,
when the code has `lake.landing_scan.hour_listing`; else the whole hour), crawl it
(assets/schema.py), then as assets/cleaned.py: `clean_hour` on the listed objects, the
retype check, the warehouse views (`expose_stream`) and `hour_totals`.
Each micro-batch starts with no key file in memory (a run is a new process). Phase seconds
are printed per point (the summary: medians, then the mean total, which shows a run that
folds or compacts); the parts of `clean_hour` are timed by wrapping the
functions it calls (read_ledger, load_seen, fetch + passes, save_hour_keys, the commit; a
ledger that lists lazily, as lake.ledger's does now, is paid in `clean_rest`).
--profile runs one more micro-batch of the last point under cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import gzip
import io
import itertools
import pstats
import random
import shutil
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from clean_bench import HOUR, SPEC, bench_settings, object_body, record_templates

import lake.cleaning.hour as hour_module
import lake.cleaning.key_files as key_files_module
import lake.cleaning.passes as passes_module
from lake import hour_totals as totals_module
from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning.dedup import window_dates
from lake.cleaning.hour import clean_hour
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.hour_totals import hour_totals
from lake.iceberg.catalog import LakeTables
from lake.pii import key_from_env
from lake.retype import retype_stream
from lake.settings import Settings
from lake.storage import LocalStorage, ObjectInfo
from lake.warehouse import Warehouse

try:  # the dedup probe (issue 15): sorted key files, compacted per date
    from lake.cleaning.key_files import KEYS_SCHEMA, compact_day, key_file_bytes
except ImportError:  # the code before it (run against main for "before"): plain files
    from lake.cleaning.dedup import KEYS_SCHEMA

    compact_day = None

    def key_file_bytes(table: pa.Table) -> bytes:
        out = io.BytesIO()
        pq.write_table(table, out, compression="zstd")
        return out.getvalue()


try:  # bounded listings (task microN): a sensor's run lists its hour from the last mark on
    from lake.hour_totals import listing_mark
    from lake.landing_scan import hour_listing
except ImportError:  # the code before them (run against main for "before"): the whole hour
    listing_mark = hour_listing = None

FILL_MINUTES = 50  # filler objects are named over the hour's first 50 minutes
BATCH_MINUTE = 55  # micro-batch objects after them, a second apart: new objects, newest names
FILLER_PREFIX = "filler-"  # `obj` of the synthetic dedup keys
# load_seen exists before the probe only; drop_duplicates probes the key files after it
CLEAN_PARTS = ("read_ledger", "load_seen", "drop_duplicates", "fetch_objects", "save_hour_keys")
DEDUP_PARTS = ("load_seen", "drop_duplicates", "save_hour_keys")
# clean_rest: clean_hour's own work besides the parts (DuckDB session, passes, manifests)
PHASES = (
    "list",
    "crawl",
    "clean",
    *CLEAN_PARTS,
    "commit",
    "clean_rest",
    "retype",
    "expose",
    "hour_totals",
    "total",
)


class PartTimer:
    """Seconds spent in functions lake.cleaning.hour calls, by name (wrapped in place)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        for name in CLEAN_PARTS:
            for module in (hour_module, passes_module):
                if hasattr(module, name):
                    setattr(module, name, self._timed(name, getattr(module, name)))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            result = fn(*args, **kwargs)
            if name == "fetch_objects":  # a generator: the passes consume it
                return self._timed_iter(name, result)
            self.seconds[name] += time.perf_counter() - started
            return result

        return timed

    def _timed_iter(self, name: str, items: Any) -> Any:
        while True:
            started = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.seconds[name] += time.perf_counter() - started
                return
            self.seconds[name] += time.perf_counter() - started
            yield item

    def take(self) -> dict[str, float]:
        taken, self.seconds = dict(self.seconds), defaultdict(float)
        return taken


def land_many(
    landing: LocalStorage, bodies: list[bytes], tag: str, at: timedelta | None = None
) -> list[str]:
    """Land `bodies` named over the first FILL_MINUTES of the hour, or all `at` it."""
    keys = []
    for n, body in enumerate(bodies):
        spread = timedelta(minutes=n * FILL_MINUTES // max(len(bodies), 1), seconds=n % 60)
        when = HOUR + (spread if at is None else at)
        key = object_key(SPEC.name, when, object_id=f"{tag}-{n:05d}")
        landing.write(key, gzip.compress(body, 6))
        keys.append(key)
    return keys


def infos(landing: LocalStorage, keys: list[str]) -> list[ObjectInfo]:
    wanted = set(keys)
    return [i for i in landing.list(hour_prefix(SPEC.name, HOUR)) if i.key in wanted]


def build_hour(root: Path, n_objects: int, args: argparse.Namespace, templates: list[dict]):
    """A lake whose hour holds a crawled seed and N cleaned objects."""
    shutil.rmtree(root, ignore_errors=True)
    landing, lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
    # the warehouse file of the run beside its lake, not the user's
    settings = replace(bench_settings(root), warehouse_path=str(root / "warehouse.duckdb"))
    rng = random.Random(n_objects)
    [seed] = infos(landing, land_many(landing, [object_body(rng, templates, 100)], "seed"))
    crawl_objects(SPEC, Catalog(lake, "bench"), landing, [seed])
    table = Catalog(lake, "bench").get_table(SPEC.name)
    started = time.perf_counter()
    bodies = [object_body(rng, templates, args.fill_records) for _ in range(n_objects)]
    filled = [seed, *infos(landing, land_many(landing, bodies, "fill"))]
    for start in range(0, len(filled), args.fill_batch):
        clean_hour(
            SPEC,
            table,
            landing,
            lake,
            HOUR,
            filled[start : start + args.fill_batch],
            settings=settings,
            tables=LakeTables(settings),
        )
    # as a micro-batch stream leaves it: the filling runs' large totals deltas folded into
    # the hour's document (in a stream the 32nd run after them folds them), the hour
    # crawled, the warehouse views made
    totals_module._compact(lake, SPEC.name, HOUR, totals_module._deltas(lake, SPEC.name, HOUR))
    crawl_objects(SPEC, Catalog(lake, "bench"), landing, filled)
    warehouse = Warehouse(settings.warehouse_path, settings.warehouse_lock_wait_seconds)
    warehouse.expose_stream(lake, LakeTables(settings), SPEC.name)
    print(f"N={n_objects:,}: hour filled in {time.perf_counter() - started:.1f} s")
    return landing, lake, settings, rng


def fill_keys(
    lake: LocalStorage, n_keys: int, files_per_day: int, days: list[date] | None = None
) -> int:
    """Replace the synthetic keys of the hour's window (or of `days`) with n_keys random
    ones; the files."""
    days = days or window_dates(HOUR, SPEC.allowed_lateness_hours)
    for day in days:
        for info in list(lake.list(layout.dedup_keys_folder(SPEC.name, day))):
            own = (
                f"{HOUR:%Y%m%dT%H}"  # the hour's own file, and its run files when the code has them
            )
            if not info.key.endswith(f"{own}.parquet") and f"/{own}/" not in info.key:
                lake.delete(info.key)
    slots = [
        (day, datetime.combine(day, datetime.min.time(), HOUR.tzinfo) + timedelta(hours=h))
        for day in days
        for h in range(files_per_day)
    ]
    slots = [(d, h) for d, h in slots if h != HOUR]  # the hour's own file is the real one
    if not n_keys:
        return 0
    rng = random.Random(n_keys)
    per_file = -(-n_keys // len(slots))
    left = n_keys
    for day, arrival in slots:
        rows = min(per_file, left)
        if rows <= 0:
            break
        keys = random_key_table(rng, rows, f"{FILLER_PREFIX}{arrival:%Y%m%dT%H}")
        lake.write(layout.dedup_keys_file(SPEC.name, day, arrival), key_file_bytes(keys))
        left -= rows
    if compact_day is not None:  # the state the save path keeps: each date compacted
        for day in days:
            compact_day(lake, SPEC.name, day)
    return len(slots)


def random_key_table(rng: random.Random, rows: int, obj: str = FILLER_PREFIX) -> pa.Table:
    """`rows` random keys (hi, lo) of objects named `obj`-<thousand>."""
    names = pa.array([f"{obj}-{i // 1000:05d}" for i in range(rows)])
    return pa.table(
        [_random_uint64(rng, rows), _random_uint64(rng, rows), names], schema=KEYS_SCHEMA
    )


def _random_uint64(rng: random.Random, rows: int) -> pa.Array:
    return pa.Array.from_buffers(pa.uint64(), rows, [None, pa.py_buffer(rng.randbytes(rows * 8))])


def micro_batch(
    landing: LocalStorage,
    lake: LocalStorage,
    settings: Settings,
    body: bytes,
    tag: str,
    timer: PartTimer,
    number: int,
    in_hour: int,
) -> dict[str, float]:
    """The `number`-th new object through list + crawl + clean_hour + hour_totals, as the
    assets run it for a landing sensor's run; the hour then holds `in_hour` objects."""
    land_many(landing, [body], tag, at=timedelta(minutes=BATCH_MINUTE, seconds=number))
    timer.take()  # drop what the filling runs spent
    # a run is a new process: no key file read by an earlier run is in memory
    key_files_module._CACHE.tables.clear()
    key_files_module._CACHE.size = 0
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    landed, whole = listing(landing, lake)
    seconds["list"] = time.perf_counter() - started
    mark = time.perf_counter()
    catalog = Catalog(lake, "bench")
    bounded = {} if whole else {"complete": False}  # the code before it has no `complete`
    crawl_objects(SPEC, catalog, landing, landed, **bounded)
    seconds["crawl"] = time.perf_counter() - mark
    mark = time.perf_counter()
    table = catalog.get_table(SPEC.name)
    report = clean_hour(
        SPEC, table, landing, lake, HOUR, landed, settings=settings, tables=LakeTables(settings)
    )
    seconds["clean"] = time.perf_counter() - mark
    assert report.objects_skipped == len(landed) - 1, report.objects_skipped
    seconds |= timer.take()
    seconds["commit"] = sum(c.seconds for c in report.commits.values())
    parts = sum(seconds.get(p, 0.0) for p in (*CLEAN_PARTS, "commit"))
    seconds["clean_rest"] = seconds["clean"] - parts
    mark = time.perf_counter()
    retype_stream(SPEC, table, landing, lake, key_from_env(landing.uri, lake.uri), settings)
    seconds["retype"] = time.perf_counter() - mark
    mark = time.perf_counter()
    warehouse = Warehouse(settings.warehouse_path, settings.warehouse_lock_wait_seconds)
    warehouse.expose_stream(lake, LakeTables(settings), SPEC.name)
    seconds["expose"] = time.perf_counter() - mark
    mark = time.perf_counter()
    totals = hour_totals(lake, SPEC.name, HOUR, landed, **bounded)
    seconds["hour_totals"] = time.perf_counter() - mark
    assert totals.objects == in_hour, (totals.objects, in_hour)
    seconds["total"] = time.perf_counter() - started
    return seconds


def listing(landing: LocalStorage, lake: LocalStorage) -> tuple[list[ObjectInfo], bool]:
    """The hour's objects as assets/cleaned.py lists them for a landing sensor's run, and
    whether that is the whole hour."""
    if hour_listing is None:
        return list(landing.list(hour_prefix(SPEC.name, HOUR))), True
    mark = listing_mark(lake, SPEC.name, HOUR)
    return hour_listing(landing, SPEC.name, HOUR, mark), mark is None


def summary(n: int, k: int, rows: list[dict[str, float]]) -> str:
    """The point's medians, then its mean total (a run that folds or compacts is one in
    several: the median hides it, the mean does not)."""
    medians = [statistics.median(r.get(p, 0.0) for r in rows) for p in PHASES]
    mean = statistics.mean(r["total"] for r in rows)
    return f"{n:>6,} | {k:>10,} | " + " | ".join(f"{m:.3f}" for m in medians) + f" | {mean:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/microbatch-bench"))
    parser.add_argument("--objects", type=int, nargs="+", default=[0, 1000, 10000])
    parser.add_argument("--keys", type=int, nargs="+", default=[0, 1_000_000, 10_000_000])
    parser.add_argument("--records", type=int, default=100, help="records of the micro-batch")
    parser.add_argument("--fill-records", type=int, default=2, help="records a filler object")
    parser.add_argument("--fill-batch", type=int, default=2000, help="objects a filling run")
    parser.add_argument("--key-files-per-day", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3, help="micro-batches per point")
    parser.add_argument("--profile", action="store_true", help="cProfile the last point")
    args = parser.parse_args()
    templates = record_templates()
    timer = PartTimer()
    lines = []
    for n in args.objects:
        landing, lake, settings, rng = build_hour(args.dir / f"n{n}", n, args, templates)
        batches = itertools.count()
        # untimed, as the sensor's runs leave an hour: the previous batch's mark is a new
        # object's, not the filling runs' last (whose 2-minute window holds fillers)
        warm = object_body(rng, templates, 1)
        micro_batch(landing, lake, settings, warm, "warm", timer, next(batches), n + 2)
        # what the filling left in this process is no run's: out of the collector's way
        gc.collect()
        gc.freeze()
        for k in args.keys:
            files = fill_keys(lake, k, args.key_files_per_day)
            rows = []
            for r in range(args.repeat):
                body = object_body(rng, templates, args.records)
                number = next(batches)
                batch = micro_batch(
                    landing, lake, settings, body, f"b{number}", timer, number, n + 2 + number
                )
                rows.append(batch)
                print(f"  N={n:,} K={k:,} batch {r + 1}: " + _phases(rows[-1]))
            lines.append(summary(n, k, rows))
            print(f"  ({files} key files)")
    if args.profile:
        profiler = cProfile.Profile()
        body = object_body(rng, templates, args.records)
        number = next(batches)
        profiler.runcall(
            micro_batch, landing, lake, settings, body, "profiled", timer, number, n + 2 + number
        )
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
        print(text.getvalue())
    print("N objects | K keys | median s: " + " | ".join(PHASES) + " | mean total")
    print("\n".join(lines))


def _phases(seconds: dict[str, float]) -> str:
    return ", ".join(f"{p} {seconds.get(p, 0.0):.3f}" for p in PHASES)


if __name__ == "__main__":
    main()
