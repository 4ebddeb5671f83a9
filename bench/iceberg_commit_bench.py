"""The Iceberg commit's cost in a micro-batch, against the files the table already holds.

    PYTHONPATH=. .venv/bin/python bench/iceberg_commit_bench.py --dir /tmp/icb --files 0 100 1000 5000

For each N of --files, a fresh lake: one seed object of robot_telemetry cleaned (the
tables created by its commit), then N more cleaned files in the same event day registered
in commits of --per-commit files (copies of the seed's first rows under other source
keys: the table's manifests then look like a day of earlier micro-batches, merged as
`commit.manifest-merge.enabled` merges them). Then --repeat micro-batches, each one new
object of --records records landed in the hour and cleaned by `clean_hour` with the
Iceberg tables: the run's wall seconds, the commit's own seconds (cleaned + quarantine,
`Committed.seconds`), and its share of the run. The per-hour figure (1M records) is
`clean_bench.py ours --iceberg`.
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import statistics
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from clean_bench import HOUR, SPEC, bench_settings, object_body, record_templates

from lake.catalog_store import Catalog
from lake.cleaning.commit import SOURCE_KEY
from lake.cleaning.hour import clean_hour
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.commit import TableShape, commit_files
from lake.storage import LocalStorage, ObjectInfo

DAY_FOLDER = f"cleaned/{SPEC.name}/dt=2026-11-21"
ROWS_PER_FILE = 10


def land(landing: LocalStorage, body: bytes, minute: int, name: str) -> ObjectInfo:
    key = object_key(SPEC.name, HOUR + timedelta(minutes=minute), object_id=name)
    landing.write(key, gzip.compress(body, 6))
    return next(i for i in landing.list(hour_prefix(SPEC.name, HOUR)) if i.key == key)


def fill(root: Path, n_files: int, per_commit: int, tables: LakeTables) -> int:
    """N cleaned files beside the seed's, registered `per_commit` a commit; the manifests
    of the current snapshot."""
    lake = LocalStorage(root / "lake")
    [seed] = [i.key for i in lake.list(DAY_FOLDER + "/")]
    rows = pq.read_table(lake.root / seed).slice(0, ROWS_PER_FILE)
    keys = []
    for n in range(n_files):
        source = f"{SPEC.name}/2026/11/21/08/{SPEC.name}-earlier-{n:05d}.gz"
        column = rows.schema.get_field_index(SOURCE_KEY[CLEANED])
        copy = rows.set_column(column, SOURCE_KEY[CLEANED], pa.array([source] * rows.num_rows))
        key = f"{DAY_FOLDER}/earlier-{n:05d}.parquet"
        pq.write_table(copy, lake.root / key, compression="zstd")
        keys.append(key)
    for start in range(0, len(keys), per_commit):
        commit_files(tables, CLEANED, SPEC.name, keys[start : start + per_commit], TableShape())
    table = tables.load(CLEANED, SPEC.name)
    return len(table.current_snapshot().manifests(table.io))


def micro_batches(n_files: int, args: argparse.Namespace, templates: list[dict]) -> list[dict]:
    root = args.dir / f"n{n_files}"
    shutil.rmtree(root, ignore_errors=True)
    landing, lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
    settings = bench_settings(root)
    rng = random.Random(n_files)
    seed = land(landing, object_body(rng, templates, args.records), 0, "seed")
    crawl_objects(SPEC, Catalog(lake, "bench"), landing, [seed])
    table = Catalog(lake, "bench").get_table(SPEC.name)
    clean_hour(
        SPEC, table, landing, lake, HOUR, [seed], settings=settings, tables=LakeTables(settings)
    )
    started = time.perf_counter()
    manifests = fill(root, n_files, args.per_commit, LakeTables(settings))
    print(f"N={n_files}: filled in {time.perf_counter() - started:.1f} s, {manifests} manifests")
    rows = []
    for r in range(args.repeat):
        info = land(landing, object_body(rng, templates, args.records), r + 1, f"batch{r:03d}")
        started = time.perf_counter()
        report = clean_hour(
            SPEC, table, landing, lake, HOUR, [info], settings=settings, tables=LakeTables(settings)
        )
        run = time.perf_counter() - started
        commit = sum(c.seconds for c in report.commits.values())
        rows.append({"run": run, "commit": commit, "share": commit / run})
        print(
            f"  batch {r + 1}: run {run:.3f} s, commit {commit:.3f} s ({commit / run:.0%}), "
            f"{report.records_cleaned:,} records"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/iceberg-commit-bench"))
    parser.add_argument("--files", type=int, nargs="+", default=[0, 100, 1000, 5000])
    parser.add_argument("--per-commit", type=int, default=100, help="files a filling commit")
    parser.add_argument("--records", type=int, default=1000, help="records a micro-batch")
    parser.add_argument("--repeat", type=int, default=5, help="micro-batches per N")
    args = parser.parse_args()
    templates = record_templates()
    print("N files | run s (min / median) | commit s (min / median) | commit share (median)")
    results = {n: micro_batches(n, args, templates) for n in args.files}
    for n, rows in results.items():
        run = [r["run"] for r in rows]
        commit = [r["commit"] for r in rows]
        share = statistics.median(r["share"] for r in rows)
        print(
            f"{n:>7,} | {min(run):.3f} / {statistics.median(run):.3f} | "
            f"{min(commit):.3f} / {statistics.median(commit):.3f} | {share:.0%}"
        )


if __name__ == "__main__":
    main()
