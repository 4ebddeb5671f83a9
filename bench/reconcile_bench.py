"""Reconciliation's table check (lake.reconcile.uncatalogued_objects) on one arrival hour of
`--objects` objects cleaned with tables (SQLite catalog, local lake), the objects' cleaned
rows in files of their own (`own`), in shared files of `--per-file` objects each
(`shared`, made as tests/unit/shared_lake makes them), or in one compacted file (`compacted`).

    # build once (with this branch's code), then time on the code of PYTHONPATH (A/B)
    PYTHONPATH=.:bench .venv/bin/python bench/reconcile_bench.py build --dir /tmp/rb-own --layout own
    PYTHONPATH=.:bench .venv/bin/python bench/reconcile_bench.py time --dir /tmp/rb-own --repeat 5

`build-call` / `time-call`: one reconciliation call (lake.reconcile.reconcile_some_hours)
over 24 arrival hours of `--per-hour` objects each, as the reconcile sensor makes it: `own`
(a file per object: what micro-batches of one object write), or `mixed` (the older 12
hours, a day of their own, compacted into one file; then 4 hours cleaned with shared files,
one per pass; the newest 8 hours a file per object). `--older` hours of own files before
the 24 are in the table too, never checked. `time-call` counts the scan plans made.

    PYTHONPATH=.:bench .venv/bin/python bench/reconcile_bench.py build-call --dir /tmp/rc-own --per-hour 84
    PYTHONPATH=.:bench .venv/bin/python bench/reconcile_bench.py time-call --dir /tmp/rc-own --repeat 3
"""

import argparse
import gzip
import json
import shutil
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lake.reconcile
from lake.firehose import hour_prefix, object_key
from lake.iceberg.catalog import LakeTables
from lake.ledger import read_ledger
from lake.reconcile import uncatalogued_objects
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
NEWEST = datetime(2026, 11, 21, 11, tzinfo=UTC)  # build-call's 24 hours: back to 11-20 12:00
CALL_HOURS = 24


def _parts(root: Path) -> tuple[LocalStorage, LocalStorage, LakeTables]:
    landing, lake_ = LocalStorage(root / "landing"), LocalStorage(root / "lake")
    settings = replace(
        DEFAULTS, lake_uri=lake_.uri, iceberg_catalog_uri=f"sqlite:///{root}/iceberg.db"
    )
    return landing, lake_, LakeTables(settings)


def build(root: Path, objects: int, layout: str, per_file: int) -> None:
    from lake.cleaning.hour import clean_hour
    from lake.iceberg.catalog import CLEANED
    from lake.iceberg.compaction import compact_day
    from tests.unit.shared_lake import share
    from tests.unit.test_cleaning import TABLE

    shutil.rmtree(root, ignore_errors=True)
    landing, lake_, tables = _parts(root)
    keys = []
    for n in range(objects):
        records = (
            {"event_id": f"{n}-{i}", "ts": "2026-11-21T08:10:00Z", "robot_id": "R1"}
            for i in range(5)
        )
        key = object_key(SPEC.name, HOUR + timedelta(seconds=n), object_id=f"o{n:04d}")
        landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
        keys.append(key)
    landed = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    clean_hour(SPEC, TABLE, landing, lake_, HOUR, landed, tables=tables)
    if layout == "shared":
        for n in range(0, objects, per_file):
            share(lake_, tables, SPEC.name, keys[n : n + per_file], HOUR, token=f"{n:012x}")
    elif layout == "compacted":
        compact_day(tables, CLEANED, SPEC.name, HOUR.date(), 1 << 30, min_files=2)


def time_check(root: Path, repeat: int) -> None:
    landing, lake_, tables = _parts(root)
    landed = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    walls, cpus, found = [], [], 0
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        found = len(
            uncatalogued_objects(lake_, tables, read_ledger(lake_, SPEC.name, HOUR), landed)
        )
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    median = statistics.median
    runs = ", ".join(f"{w * 1000:.0f}" for w in walls)
    summary = f"wall median {median(walls) * 1000:.0f} ms ({runs}), CPU median {median(cpus) * 1000:.0f} ms"
    print(
        f"{lake.reconcile.__file__}: {len(landed)} objects, {found} reported uncatalogued; {summary}"
    )


def _land_and_clean(
    landing: LocalStorage, lake_: LocalStorage, tables: LakeTables, hour: datetime, objects: int
) -> None:
    from lake.cleaning.hour import clean_hour
    from tests.unit.test_cleaning import TABLE

    for n in range(objects):
        at = hour + timedelta(seconds=n)
        records = (
            {"event_id": f"{hour:%d%H}-{n}-{i}", "ts": at.isoformat(), "robot_id": "R1"}
            for i in range(5)
        )
        key = object_key(SPEC.name, at, object_id=f"o{n:04d}")
        landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
    landed = list(landing.list(hour_prefix(SPEC.name, hour)))
    clean_hour(SPEC, TABLE, landing, lake_, hour, landed, tables=tables)


def build_call(root: Path, per_hour: int, layout: str, older: int) -> None:
    from lake.cleaning import writing
    from lake.iceberg.catalog import CLEANED
    from lake.iceberg.compaction import compact_day

    shutil.rmtree(root, ignore_errors=True)
    landing, lake_, tables = _parts(root)
    first = NEWEST - timedelta(hours=CALL_HOURS - 1)
    shared_ones = (
        {first + timedelta(hours=h) for h in range(12, 16)} if layout == "mixed" else set()
    )
    for h in range(-older, CALL_HOURS):
        hour = first + timedelta(hours=h)
        writing.SHARE_ROWS = 10_000 if hour in shared_ones else 0
        _land_and_clean(landing, lake_, tables, hour, per_hour)
    if layout == "mixed":
        compact_day(tables, CLEANED, SPEC.name, first.date(), 1 << 30, min_files=2)


def time_call(root: Path, repeat: int) -> None:
    from pyiceberg.table import DataScan

    from lake.iceberg.catalog import CLEANED
    from lake.reconcile import ReconcileCursor, reconcile_some_hours

    landing, lake_, tables = _parts(root)
    table = tables.load(CLEANED, SPEC.name)  # the catalog opened before the clock starts
    files = sum(1 for _ in table.scan().plan_files())
    plans, real = [], DataScan.plan_files
    DataScan.plan_files = lambda scan: plans.append(1) or real(scan)
    oldest = NEWEST - timedelta(hours=CALL_HOURS - 1)
    walls, cpus, found = [], [], {}
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        found = reconcile_some_hours(
            landing, lake_, SPEC.name, ReconcileCursor(), NEWEST, oldest, CALL_HOURS, tables=tables
        ).uncatalogued
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    runs = ", ".join(f"{w * 1000:.0f}" for w in walls)
    print(
        f"{lake.reconcile.__file__}: {files} files in the table, {CALL_HOURS} hours a call, "
        f"{len(plans) / repeat:.0f} scan plans a call, {sum(map(len, found.values()))} reported "
        f"uncatalogued; wall median {statistics.median(walls) * 1000:.0f} ms ({runs}), "
        f"CPU median {statistics.median(cpus) * 1000:.0f} ms"
    )


def main() -> None:
    args = _options().parse_args()
    if args.what == "build":
        build(args.dir, args.objects, args.layout, args.per_file)
    elif args.what == "build-call":
        build_call(args.dir, args.per_hour, args.layout, args.older)
    elif args.what == "time-call":
        time_call(args.dir, args.repeat)
    else:
        time_check(args.dir, args.repeat)


def _options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("what", choices=["build", "time", "build-call", "time-call"])
    options.add_argument("--dir", type=Path, default=Path("/tmp/reconcile-bench"))
    options.add_argument("--objects", type=int, default=500)
    layouts = ["own", "shared", "compacted", "mixed"]  # mixed: build-call's only
    options.add_argument("--layout", choices=layouts, default="own")
    options.add_argument("--per-file", type=int, default=50, help="objects a shared file")
    options.add_argument("--repeat", type=int, default=5)
    options.add_argument("--per-hour", type=int, default=84, help="build-call: objects an hour")
    options.add_argument("--older", type=int, default=0, help="build-call: hours before the call's")
    return options


if __name__ == "__main__":
    main()
