"""Cleaning benchmark: raw gzip Firehose objects -> cleaned Parquet, against bare DuckDB.

    .venv/bin/python bench/clean_bench.py generate --dir /tmp/cleanbench --records 1000000 --objects 100
    .venv/bin/python bench/clean_bench.py ours --dir /tmp/cleanbench    # lake.cleaning.hour.clean_hour
    .venv/bin/python bench/clean_bench.py bare --dir /tmp/cleanbench    # COPY (SELECT ... FROM read_json(...)) TO parquet
    .venv/bin/python bench/clean_bench.py compare --dir /tmp/cleanbench --runs 5
    .venv/bin/python bench/clean_bench.py compare --dir /tmp/cleanbench --runs 5 --iceberg  # ours commits to Iceberg

`generate` writes one arrival hour of robot_telemetry objects (concatenated JSON, gzip)
built from simulator records with fresh event ids, and crawls it once so `ours` has its
catalog table. `bare` reads the same files with DuckDB's read_json and explicit columns
(the catalog's, flattened the same way) and writes one zstd Parquet file: no quarantine,
no dedup, no masking, no lineage. Each mode prints its wall time, records/s and the
process's peak RSS; `compare` runs bare and ours alternately, each in a fresh process,
and prints the medians and their ratio.
"""

import argparse
import gzip
import json
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from lake.catalog_store import Catalog
from lake.cleaning.columns import columns_from_table
from lake.cleaning.hour import clean_hour
from lake.cleaning.report import HourReport
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.hive_types import Struct
from lake.iceberg.catalog import LakeTables
from lake.settings import DEFAULTS, Settings
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


def record_templates() -> list[dict]:
    """Simulator records of robot_telemetry (12 hours of 40 robots) to draw objects from."""
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        sim = Simulator(
            SimulatorConfig(
                seed=1, streams=(SPEC.name,), cows=3000, robots=40, object_interval_s=600
            )
        )
        writes = sim.write_range(LocalStorage(Path(tmp)), HOUR, HOUR + timedelta(hours=12))
        return [r for w in writes for r in w.records]


def object_body(rng: random.Random, templates: list[dict], records: int) -> bytes:
    """One object's concatenated JSON: templates with fresh event ids, times in HOUR."""
    body = []
    for _ in range(records):
        record = dict(rng.choice(templates))
        record["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        record["ts"] = f"2026-11-21T08:{rng.randrange(60):02d}:{rng.randrange(60):02d}.000Z"
        body.append(json.dumps(record, separators=(",", ":")))
    return "".join(body).encode()


def clean_hours(
    table: dict, landing: LocalStorage, lake: LocalStorage, hours, **kw: Any
) -> list[HourReport]:
    """clean_hour of SPEC over `hours`, hour by hour (as assets/cleaned.py ran a range
    before lake.cleaning.hour.clean_hours): each hour's landed objects in turn, with `kw`
    (run_commit, tables, session, settings ...)."""
    return [
        clean_hour(
            SPEC, table, landing, lake, hour, list(landing.list(hour_prefix(SPEC.name, hour))), **kw
        )
        for hour in hours
    ]


def generate(root: Path, records: int, objects: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    templates = record_templates()
    rng = random.Random(5)
    landing = LocalStorage(root / "landing")
    per_object, raw_bytes = records // objects, 0
    for o in range(objects):
        text = object_body(rng, templates, per_object)
        raw_bytes += len(text)
        written_at = HOUR + timedelta(seconds=o * 3600 // objects)  # all in one arrival hour
        landing.write(
            object_key(SPEC.name, written_at, object_id=f"{o:05d}"), gzip.compress(text, 6)
        )
    infos = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    crawl_objects(SPEC, Catalog(LocalStorage(root / "lake"), "bench"), landing, infos)
    stored = sum(i.size for i in infos)
    print(
        f"generated {per_object * objects:,} records in {objects} objects: {raw_bytes / 1e6:.0f} MB JSON, {stored / 1e6:.0f} MB gzip"
    )


def ours(root: Path, rerun: bool, iceberg: bool) -> None:
    """The hour's first cleaning (earlier outputs and state are removed before the clock
    starts), or with `rerun` a full refresh over the outputs of an earlier run; with
    `iceberg` the run commits its files to the Iceberg tables (catalog: root/iceberg.db)."""
    landing, lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
    table = Catalog(lake, "bench").get_table(SPEC.name)
    infos = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    if not rerun:
        for output in ("cleaned", "quarantine", "_state"):
            shutil.rmtree(root / "lake" / output, ignore_errors=True)
        (root / "iceberg.db").unlink(missing_ok=True)
    tables = LakeTables(bench_settings(root)) if iceberg else None
    start = time.perf_counter()
    report = clean_hour(SPEC, table, landing, lake, HOUR, infos, full_refresh=rerun, tables=tables)
    _print("ours", time.perf_counter() - start, report.records_in)
    print(
        f"  cleaned {report.records_cleaned:,}, quarantined {report.records_quarantined:,}, duplicates {report.duplicates_dropped:,}"
    )
    if report.commits:
        seconds = {layer: c.seconds for layer, c in report.commits.items()}
        print(f"  iceberg commit {sum(seconds.values()):.3f} s ({_rounded(seconds)})")


def bench_settings(root: Path) -> Settings:
    """The embedded defaults with the lake under `root` (SQLite catalog beside it)."""
    return replace(
        DEFAULTS, lake_uri=(root / "lake").as_uri(), landing_uri=(root / "landing").as_uri()
    )


def _rounded(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items())


def bare(root: Path) -> None:
    lake = LocalStorage(root / "lake")
    table = Catalog(lake, "bench").get_table(SPEC.name)
    columns = columns_from_table(table, SPEC)
    files = [str(p) for p in sorted((root / "landing").rglob("*.gz"))]
    schema = {c.path[0] for c in columns}
    spec_columns = {
        name: _duck_struct(t) for name, t in _top_level(table).fields.items() if name in schema
    }
    select = ", ".join(
        f'{_path_sql(c.path)}::{"VARCHAR" if c.type.startswith("array") else c.duck_type} AS "{c.name}"'
        for c in columns
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out = root / "bare.parquet"
    start = time.perf_counter()
    count = con.execute(
        f"COPY (SELECT {select} FROM read_json(?, format='auto', columns={_sql_map(spec_columns)})) "
        f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)",
        [files],
    ).fetchall()[0][0]
    _print("bare", time.perf_counter() - start, count)


def _top_level(table: dict) -> Struct:
    from lake.catalog_store import stored_schema

    return stored_schema(table)


def _duck_struct(t) -> str:
    if isinstance(t, Struct) and t.fields:
        return "STRUCT(" + ", ".join(f'"{k}" {_duck_struct(v)}' for k, v in t.fields.items()) + ")"
    from lake.cleaning.columns import DUCK_TYPES

    return DUCK_TYPES.get(t, "VARCHAR") if isinstance(t, str) else "JSON"


def _sql_map(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"


def _path_sql(path: tuple[str, ...]) -> str:
    expr = f'"{path[0]}"'
    for part in path[1:]:
        expr = f"struct_extract({expr}, '{part}')"
    return expr


def _print(mode: str, wall: float, records: int) -> None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{mode}: {records:,} records in {wall:.2f} s = {records / wall:,.0f} records/s, peak RSS {peak:.0f} MB"
    )


def compare(root: Path, runs: int, rerun: bool, iceberg: bool) -> None:
    """Alternate bare and ours in fresh processes; print each run and the medians."""
    rates: dict[str, list[float]] = {"bare": [], "ours": []}
    for n in range(runs):
        for mode in ("bare", "ours"):
            out = subprocess.run(
                [sys.executable, __file__, mode, "--dir", str(root)]
                + (["--rerun"] if rerun and mode == "ours" else [])
                + (["--iceberg"] if iceberg and mode == "ours" else []),
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            print(f"run {n + 1} {out.splitlines()[0]}")
            for line in out.splitlines():
                if "iceberg commit" in line:
                    print(line)
            rates[mode].append(float(re.search(r"= ([\d,]+) records/s", out)[1].replace(",", "")))
    bare_rate, ours_rate = (statistics.median(rates[m]) for m in ("bare", "ours"))
    print(
        f"median records/s: bare {bare_rate:,.0f}, ours {ours_rate:,.0f}, "
        f"ours/bare {ours_rate / bare_rate:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("generate", "ours", "bare", "compare"))
    parser.add_argument("--dir", type=Path, default=Path("/tmp/cleanbench"))
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5, help="compare: runs of each mode")
    parser.add_argument(
        "--rerun", action="store_true", help="ours: a full refresh over an earlier run's outputs"
    )
    parser.add_argument(
        "--iceberg", action="store_true", help="ours: commit the run's files to Iceberg tables"
    )
    args = parser.parse_args()
    if args.mode == "generate":
        generate(args.dir, args.records, args.objects)
    elif args.mode == "ours":
        ours(args.dir, args.rerun, args.iceberg)
    elif args.mode == "compare":
        compare(args.dir, args.runs, args.rerun, args.iceberg)
    else:
        bare(args.dir)


if __name__ == "__main__":
    main()
