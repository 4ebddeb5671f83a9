"""Dedup's cost: a 1-object micro-batch against K keys in its window, and one run over many hours.

    PYTHONPATH=.:bench .venv/bin/python bench/dedup_bench.py curve --dir /tmp/ddb \\
        --keys 0 1000000 10000000 --repeat 5
    PYTHONPATH=.:bench .venv/bin/python bench/dedup_bench.py backfill --dir /tmp/ddb \\
        --hours 48 --records 5000 --keys 1000000

Run it once with the worktree first on PYTHONPATH (after) and once with main's checkout
(before: `PYTHONPATH=/work/main:bench`); the key files are filled in the layout the code
under test keeps (bench/microbatch_bench.py `fill_keys`: sorted and compacted after,
plain hour files before).

`curve`: microbatch_bench's 1-object batch (list, crawl, clean_hour, retype, views,
totals) in an hour that holds nothing else, with K random keys in the 3 event dates of
its window; `dedup` is load_seen (before only) + drop_duplicates + save_hour_keys.

`backfill`: one run over --hours arrival hours, as assets/cleaned.py runs a range (one
RunCommit with the Iceberg tables, clean_hour hour after hour, one commit), each hour one
fresh object of --records records with event times in that hour and a redelivery of the
previous hour's object (its records are the duplicates, dropped against the key files),
after --keys random keys were put in the window's dates.

`compaction` (after only): compact_day of one date of the K-key window with one new hour
file of K/72 keys, what the batch that compacts a date pays.

`hours29`: bench/backfill_bench.py's `core` run of its hours29 case (2M records, 29
arrival hours, one CleaningSession and one RunCommit without tables) on the landing
folder `backfill_bench.py generate` left (--dir, default /tmp/backfillbench-hours29,
only read), cleaned into a lake of its own (--out), with the dedup parts timed and the
RunCommit's commit (where the run's dates are compacted) timed on its own.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import shutil
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

from clean_bench import HOUR, SPEC, clean_hours, object_body, record_templates
from microbatch_bench import (
    DEDUP_PARTS,
    PartTimer,
    build_hour,
    fill_keys,
    key_file_bytes,
    micro_batch,
    random_key_table,
)

from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning.commit import RunCommit
from lake.cleaning.dedup import window_dates
from lake.firehose import object_key
from lake.iceberg.catalog import LakeTables
from lake.storage import LocalStorage

DEFAULT_DIR = Path("/tmp/dedup-bench")


def curve(args: argparse.Namespace) -> None:
    templates = record_templates()
    timer = PartTimer()
    build = argparse.Namespace(fill_records=2, fill_batch=2000)
    landing, lake, settings, rng = build_hour(args.dir / "curve", 0, build, templates)
    print("K keys | median s: dedup | of it: load_seen | drop_duplicates | save | clean | total")
    for k in args.keys:
        fill_keys(lake, k, 24)
        rows = []
        for r in range(args.repeat):
            body = object_body(rng, templates, args.records)
            rows.append(micro_batch(landing, lake, settings, body, f"k{k}-b{r}", timer))
            rows[-1]["dedup"] = sum(rows[-1].get(p, 0.0) for p in DEDUP_PARTS)
        phases = ("dedup", *DEDUP_PARTS, "clean", "total")
        medians = [statistics.median(row.get(p, 0.0) for row in rows) for p in phases]
        print(f"{k:>10,} | " + " | ".join(f"{m:.3f}" for m in medians), flush=True)


def _hour_body(rng: random.Random, templates: list[dict], records: int, hour: datetime) -> bytes:
    """object_body's records with their event times moved into `hour`."""
    return object_body(rng, templates, records).replace(
        b'"ts":"2026-11-21T08:', f'"ts":"{hour:%Y-%m-%dT%H}:'.encode()
    )


def backfill(args: argparse.Namespace) -> None:
    templates = record_templates()
    timer = PartTimer()
    build = argparse.Namespace(fill_records=2, fill_batch=2000)
    landing, lake, settings, rng = build_hour(args.dir / "backfill", 0, build, templates)
    hours = [HOUR + timedelta(hours=1 + n) for n in range(args.hours)]
    _fill_window(lake, args.keys, hours)
    previous = None
    for hour in hours:
        body = _hour_body(rng, templates, args.records, hour)
        landing.write(object_key(SPEC.name, hour, object_id="fresh"), gzip.compress(body, 6))
        if previous is not None:  # a Firehose retry: the previous hour's records again
            landing.write(object_key(SPEC.name, hour, object_id="retry"), previous)
        previous = gzip.compress(body, 6)
    table = Catalog(lake, "bench").get_table(SPEC.name)
    timer.take()
    started = time.perf_counter()
    tables = LakeTables(settings)
    run = RunCommit(tables, SPEC, lake)
    reports = clean_hours(
        table, landing, lake, hours, settings=settings, tables=tables, run_commit=run
    )
    dropped = sum(r.duplicates_dropped for r in reports)
    run.commit()
    total = time.perf_counter() - started
    parts = timer.take()
    assert dropped == args.records * (args.hours - 1), dropped
    dedup = sum(parts.get(p, 0.0) for p in DEDUP_PARTS)
    print(
        f"{args.hours} hours x {args.records:,} records (+ redeliveries), {args.keys:,} keys: run {total:.2f} s, dedup {dedup:.2f} s ("
        + ", ".join(f"{p} {parts.get(p, 0.0):.2f}" for p in DEDUP_PARTS)
        + f"), duplicates dropped {dropped:,}"
    )


def _fill_window(lake: LocalStorage, n_keys: int, hours: list[datetime]) -> None:
    """n_keys random keys over the event dates the run's windows cover (fill_keys' layout)."""
    days = sorted({d for h in hours for d in window_dates(h, SPEC.allowed_lateness_hours)})
    fill_keys(lake, n_keys, 24, days)


def compaction(args: argparse.Namespace) -> None:
    """The batch that compacts a date pays for the date's keys: time compact_day with K
    keys in the window (a third of them in the date) and one new hour file beside them."""
    from lake.cleaning.key_files import compact_day

    lake = LocalStorage(args.dir / "compaction")
    days = window_dates(HOUR, SPEC.allowed_lateness_hours)
    for k in args.keys:
        fill_keys(lake, k, 24, days)
        rng = random.Random(k)
        extra = random_key_table(rng, max(k // 72, 1))
        lake.write(layout.dedup_keys_file(SPEC.name, days[-1], HOUR), key_file_bytes(extra))
        started = time.perf_counter()
        compact_day(lake, SPEC.name, days[-1])
        print(f"{k:>10,} keys: compact_day {time.perf_counter() - started:.2f} s", flush=True)


def hours29(args: argparse.Namespace) -> None:
    from backfill_bench import CASES

    from lake.cleaning.hour import CleaningSession
    from lake.firehose import hours_between

    first, count, _, records = CASES["hours29"]
    landing = LocalStorage(args.dir / "landing")
    table = Catalog(LocalStorage(args.dir / "lake"), "bench").get_table(SPEC.name)
    timer = PartTimer()
    for n in range(args.repeat):
        shutil.rmtree(args.out, ignore_errors=True)
        lake = LocalStorage(args.out)
        timer.take()
        run = RunCommit(None, SPEC, lake)
        started = time.perf_counter()
        with CleaningSession() as session:
            hours = hours_between(first, first + timedelta(hours=count))
            clean_hours(table, landing, lake, hours, run_commit=run, session=session)
            committed = time.perf_counter()
            run.commit()
        ended = time.perf_counter()
        parts = timer.take()
        print(
            f"run {n + 1}: {records:,} records in {ended - started:.2f} s; "
            + ", ".join(f"{p} {parts.get(p, 0.0):.2f}" for p in DEDUP_PARTS)
            + f", commit {ended - committed:.2f}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("curve", "backfill", "compaction", "hours29"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--keys", type=int, nargs="+", default=[0, 1_000_000, 10_000_000])
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dedup-bench-hours29"))
    args = parser.parse_args()
    if args.mode == "curve":
        curve(args)
    elif args.mode == "compaction":
        compaction(args)
    elif args.mode == "hours29":
        args.dir = args.dir if args.dir != DEFAULT_DIR else Path("/tmp/backfillbench-hours29")
        hours29(args)
    else:
        args.keys = args.keys[0]
        backfill(args)


if __name__ == "__main__":
    main()
