"""Backfill benchmark: one `dagster asset materialize --partition-range` run of landing,
schema and cleaned (the user's path) against bare DuckDB on the same files.

    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py generate --case hours29
    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py compare --case hours29 --runs 3
    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py compare --case month --runs 3
    ... compare --code /work/main   # "before": the same run with another checkout's code
    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py core --case month [--per-hour]  # clean_hours [hour by hour]
    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py small --runs 3  # per-object overhead
    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py small --runs 3 --tables  # with Iceberg

Cases (robot_telemetry, concatenated JSON, gzip; event times inside their arrival hour):
- `hours29`: 2,000,000 records in 100 objects spread over 29 arrival hours;
- `month`: 720 arrival hours (2026-11-01..30), one object of 2,000 records an hour.

`ours` runs `python -m orchestration.launch asset materialize --select landing/..,
schema/..,cleaned/.. --partition-range A...B` as a subprocess in a fresh DAGSTER_HOME
(the launcher copies the project's dagster.yaml there), with a fresh lake and Iceberg
catalog, and prints its wall time, the run's own time (run start to end in the instance)
and each step's. `bare` is bench/clean_bench.py's baseline (read_json with the catalog's
columns -> one zstd Parquet file) over the same files. `compare` alternates them and
prints medians and the ratio bare/ours (1.0 = DuckDB speed; the target is 0.5 or more).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clean_bench import SPEC, object_body, record_templates
from clean_bench import clean_hours as clean_hour_by_hour

from lake.catalog_store import Catalog
from lake.cleaning.commit import RunCommit
from lake.cleaning.hour import CleaningSession, clean_hour, clean_hours
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, hours_between, object_key, partition_key
from lake.storage import LocalStorage

REPO = Path(__file__).resolve().parents[1]
CASES = {
    # name: (first arrival hour, hours, objects, records)
    "hours29": (datetime(2026, 11, 21, 8, tzinfo=UTC), 29, 100, 2_000_000),
    "month": (datetime(2026, 11, 1, tzinfo=UTC), 720, 720, 1_440_000),
}


def generate(root: Path, case: str) -> None:
    """The case's objects under root/landing, crawled once into root/lake (database
    `bench`, for the bare baseline only: ours crawls in its own lake)."""
    first, hours, objects, records = CASES[case]
    shutil.rmtree(root, ignore_errors=True)
    templates, rng = record_templates(), random.Random(5)
    landing = LocalStorage(root / "landing")
    for o in range(objects):
        written_at = first + timedelta(seconds=o * hours * 3600 // objects)
        text = object_body(rng, templates, records // objects)
        # clean_bench's bodies are in its hour (2026-11-21 08:xx): move them to this one
        text = text.replace(b'"ts":"2026-11-21T08:', f'"ts":"{written_at:%Y-%m-%dT%H}:'.encode())
        landing.write(object_key(SPEC.name, written_at, object_id=f"{o:05d}"), gzip.compress(text))
    infos = [
        o
        for h in hours_between(first, first + timedelta(hours=hours))
        for o in landing.list(hour_prefix(SPEC.name, h))
    ]
    crawl_objects(SPEC, Catalog(LocalStorage(root / "lake"), "bench"), landing, infos)
    print(f"generated {records:,} records in {objects} objects over {hours} arrival hours")


def cli_env(root: Path, run: Path, code: Path) -> dict[str, str]:
    """The environment of a CLI range run of `code` over root/landing, with a fresh instance
    and lake in `run`."""
    return {
        **os.environ,
        "PYTHONPATH": str(code),
        "DAGSTER_HOME": str(run / "home"),
        "LANDING_URI": (root / "landing").as_uri(),
        "LAKE_URI": (run / "lake").as_uri(),
        "WAREHOUSE_PATH": str(run / "warehouse.duckdb"),
        "ICEBERG_CATALOG_URI": f"sqlite:///{run / 'iceberg.db'}",
        "PIPELINE_START_DATE": "2026-10-01",
        "RUN_LOG_LEVEL": "WARNING",
    }


def ours(
    root: Path,
    case: str,
    code: Path,
    profile: Path | None = None,
    limit: int | None = None,
    layers: tuple[str, ...] = ("landing", "schema", "cleaned"),
) -> tuple[float, float, dict[str, float]]:
    """One CLI range run of `layers` from `code` (a checkout) in a fresh instance and lake;
    with `profile`, `dagster` itself runs under cProfile (stats written there; the launcher
    replaces its process, so the instance folder is prepared here as it would); `limit`:
    the case's first hours only."""
    first, hours, _, records = CASES[case]
    if limit is not None:
        records, hours = records * min(limit, hours) // hours, min(limit, hours)
    run = root / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    env = cli_env(root, run, code)
    last = first + timedelta(hours=hours - 1)
    select = ",".join(f"{layer}/{SPEC.name}" for layer in layers)
    command = [sys.executable, "-m", "orchestration.launch", "asset", "materialize"]
    if profile is not None:
        from orchestration.launch import EVENT_BATCH_SIZE, prepare_home

        prepare_home(env)
        env.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)  # as the launcher does
        dagster = str(Path(sys.executable).with_name("dagster"))
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), dagster]
        command += ["asset", "materialize", "-m", "orchestration.definitions"]
    command += [
        "--select",
        select,
        "--partition-range",
        f"{partition_key(first)}...{partition_key(last)}",
    ]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start, started_at = time.perf_counter(), time.time()
    subprocess.run(command, cwd=code, env=env, check=True, capture_output=True)
    wall, ended_at = time.perf_counter() - start, time.time()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(cpu_after, f) - getattr(cpu_before, f) for f in ("ru_utime", "ru_stime"))
    run_s, steps, (created, run_start, run_end) = _run_times(run / "home", code)
    shown = ", ".join(f"{k} {v:.2f}" for k, v in steps.items())
    print(f"ours: {records:,} records in {wall:.2f} s = {records / wall:,.0f} records/s (wall)")
    print(f"  run {run_s:.2f} s; steps: {shown}; CPU of the CLI process {cpu:.2f} s")
    # the wall outside the run: process start -> run created (imports, code location,
    # instance), created -> RUN_START (planned events), RUN_SUCCESS -> process exit
    print(
        f"  outside: to run created {created - started_at:.2f} s, planning "
        f"{run_start - created:.2f} s, after the run {ended_at - run_end:.2f} s"
    )
    return wall, run_s, steps


def core(root: Path, case: str, per_hour: bool, limit: int | None = None) -> None:
    """The cleaning alone, in this process, as the cleaned asset runs a range: one
    clean_hours call over the case's hours on one CleaningSession, or with `per_hour`
    clean_hour hour by hour on it (the asset's loop before clean_hours). The catalog is
    root/lake's (generate's crawl); outputs go to a fresh root/core lake; `limit`: the
    case's first hours only."""
    first, hours, _, records = CASES[case]
    if limit is not None:
        records, hours = records * min(limit, hours) // hours, min(limit, hours)
    landing, out = LocalStorage(root / "landing"), root / "core"
    table = Catalog(LocalStorage(root / "lake"), "bench").get_table(SPEC.name)
    shutil.rmtree(out, ignore_errors=True)
    lake = LocalStorage(out)
    run_commit = RunCommit(None, SPEC, lake)
    range_hours = hours_between(first, first + timedelta(hours=hours))
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    with CleaningSession() as session:
        if per_hour:
            clean_hour_by_hour(
                table, landing, lake, range_hours, run_commit=run_commit, session=session
            )
        else:
            batches = {h: list(landing.list(hour_prefix(SPEC.name, h))) for h in range_hours}
            clean_hours(SPEC, table, landing, lake, batches, run_commit=run_commit, session=session)
        run_commit.commit()
    wall = time.perf_counter() - start
    label = "hour by hour" if per_hour else "clean_hours"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu_before  # DuckDB's threads too
    print(
        f"core ({label}): {records:,} records in {wall:.2f} s = {records / wall:,.0f} records/s, "
        f"CPU {cpu:.2f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MB "
        f"(load average {os.getloadavg()[0]:.1f})"
    )


def small_objects(root: Path, objects: int, records: int, runs: int, tables: bool = False) -> None:
    """Per-object overhead of cleaning: the same records of one arrival hour in `objects`
    objects and in one, each cleaned by clean_hour `runs` times, alternating; overhead =
    (median time of N objects - median time of 1) / N, in wall time and in the process's
    CPU time (every thread's: less bound to the machine's load). Without `tables` no
    Iceberg tables (a core path); with them a SqlCatalog on SQLite beside each lake,
    `LakeTables` as the cleaned asset builds it, so the run commits as production does
    (the ledger figure then includes the Iceberg commit)."""
    hour = datetime(2026, 11, 21, 8, tzinfo=UTC)
    templates, rng = record_templates(), random.Random(7)
    bodies = [object_body(rng, templates, records) for _ in range(objects)]
    shutil.rmtree(root, ignore_errors=True)
    for label, parts in (("many", bodies), ("one", [b"".join(bodies)])):
        landing = LocalStorage(root / label / "landing")
        for n, body in enumerate(parts):
            written = hour + timedelta(seconds=n * 3600 // len(parts))
            landing.write(object_key(SPEC.name, written, object_id=f"{n:05d}"), gzip.compress(body))
    infos = list(LocalStorage(root / "one" / "landing").list(hour_prefix(SPEC.name, hour)))
    catalog = Catalog(LocalStorage(root / "catalog"), "bench")
    crawl_objects(SPEC, catalog, LocalStorage(root / "one" / "landing"), infos)
    table = catalog.get_table(SPEC.name)
    seconds: dict[str, list[float]] = {"many": [], "one": []}
    cpu: dict[str, list[float]] = {"many": [], "one": []}
    ledger: dict[str, list[float]] = {"many": [], "one": []}  # RunCommit.commit: manifests, totals
    ledger_cpu: dict[str, list[float]] = {"many": [], "one": []}  # the same, CPU of its thread
    commit = RunCommit.commit
    for _ in range(runs):
        for label in seconds:
            landing = LocalStorage(root / label / "landing")
            shutil.rmtree(root / label / "lake", ignore_errors=True)
            lake = LocalStorage(root / label / "lake")
            infos = list(landing.list(hour_prefix(SPEC.name, hour)))
            lake_tables = _fresh_tables(root / label, lake) if tables else None

            def timed_commit(self: RunCommit, label: str = label) -> Any:
                started, cpu_started = time.perf_counter(), time.thread_time()
                try:
                    return commit(self)
                finally:
                    ledger[label].append(time.perf_counter() - started)
                    ledger_cpu[label].append(time.thread_time() - cpu_started)

            RunCommit.commit = timed_commit  # type: ignore[method-assign]
            start, cpu_start = time.perf_counter(), time.process_time()
            clean_hour(SPEC, table, landing, lake, hour, infos, tables=lake_tables)
            seconds[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - cpu_start)
    RunCommit.commit = commit  # type: ignore[method-assign]
    many, one = (statistics.median(seconds[k]) for k in ("many", "one"))
    many_ledger, one_ledger = (statistics.median(ledger[k]) for k in ("many", "one"))
    many_cpu, one_cpu = (statistics.median(cpu[k]) for k in ("many", "one"))
    many_lcpu, one_lcpu = (statistics.median(ledger_cpu[k]) for k in ("many", "one"))
    print(
        f"{'with tables: ' if tables else ''}"
        f"{objects} objects of {records} records: {many:.3f} s; in one object: {one:.3f} s; "
        f"overhead {(many - one) / objects * 1000:.2f} ms per object, of which the ledger "
        f"(manifests and totals) {(many_ledger - one_ledger) / objects * 1000:.2f} ms "
        f"({(many_lcpu - one_lcpu) / objects * 1000:.2f} ms CPU on a local lake); "
        f"CPU {many_cpu:.3f} s against {one_cpu:.3f} s: "
        f"{(many_cpu - one_cpu) / objects * 1000:.2f} ms CPU per object "
        f"(load average {os.getloadavg()[0]:.1f})"
    )


def _fresh_tables(folder: Path, lake: LocalStorage) -> Any:
    """A new SqlCatalog (SQLite in `folder`) whose warehouse is `lake`, as the assets build it."""
    from dataclasses import replace

    from lake.iceberg.catalog import LakeTables
    from lake.settings import DEFAULTS

    (folder / "iceberg.db").unlink(missing_ok=True)
    uri = f"sqlite:///{folder / 'iceberg.db'}"
    return LakeTables(replace(DEFAULTS, lake_uri=lake.uri, iceberg_catalog_uri=uri))


def _run_times(
    home: Path, code: Path
) -> tuple[float, dict[str, float], tuple[float, float, float]]:
    """The run's seconds (start to end), each step's, and the epoch times of the run's
    creation, start and end, read from its instance."""
    script = (
        "import sys, json\n"
        "from dagster import DagsterInstance, DagsterEventType as T\n"
        "with DagsterInstance.from_config(sys.argv[1]) as i:\n"
        "    (r,) = i.get_runs(); s = i.get_run_stats(r.run_id)\n"
        "    c = i.get_run_records()[0].create_timestamp.timestamp()\n"
        "    steps = {x.step_key: x.end_time - x.start_time for x in i.get_run_step_stats(r.run_id)}\n"
        "    print(json.dumps([s.end_time - s.start_time, steps, [c, s.start_time, s.end_time]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(home)],
        env={**os.environ, "PYTHONPATH": str(code)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    import json

    run_s, steps, times = json.loads(out)
    return run_s, {k.split("__")[0]: v for k, v in steps.items()}, tuple(times)


def compare(root: Path, case: str, runs: int, code: Path) -> None:
    walls: dict[str, list[float]] = {"bare": [], "ours": [], "run": []}
    for n in range(runs):
        for mode in ("bare", "ours"):
            if mode == "bare":
                command = [sys.executable, str(REPO / "bench" / "clean_bench.py"), "bare"]
            else:
                command = [sys.executable, __file__, "ours", "--case", case, "--code", str(code)]
            out = subprocess.run(
                [*command, "--dir", str(root)], check=True, capture_output=True, text=True
            ).stdout
            load = os.getloadavg()[0]
            print(f"run {n + 1} (load {load:.1f}) " + "\n  ".join(out.splitlines()))
            walls[mode].append(float(re.search(r"in ([\d.]+) s", out)[1]))
            if mode == "ours":
                walls["run"].append(float(re.search(r"run ([\d.]+) s", out)[1]))
    bare_s, ours_s, run_s = (statistics.median(walls[m]) for m in ("bare", "ours", "run"))
    print(
        f"median s: bare {bare_s:.2f}, ours {ours_s:.2f} wall ({run_s:.2f} in the run); "
        f"bare/ours {bare_s / ours_s:.2f} (wall), {bare_s / run_s:.2f} (run); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("generate", "ours", "compare", "core", "small"))
    parser.add_argument("--case", choices=sorted(CASES), default="hours29")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout `ours` runs")
    parser.add_argument("--per-hour", action="store_true", help="core: clean_hour hour by hour")
    parser.add_argument("--hours", type=int, help="core, ours: the case's first hours only")
    parser.add_argument("--profile", type=Path, help="ours: cProfile stats of the run to this file")
    parser.add_argument("--tables", action="store_true", help="small: commit to Iceberg tables")
    args = parser.parse_args()
    root = args.dir or Path(f"/tmp/backfillbench-{args.case}")
    if args.mode in ("ours", "core", "compare") and not (root / "landing").is_dir():
        parser.error(f"no landing folder in {root}: run `generate --case {args.case}` first")
    if args.mode == "generate":
        generate(root, args.case)
    elif args.mode == "ours":
        ours(root, args.case, args.code.resolve(), args.profile, args.hours)
    elif args.mode == "small":
        small_objects(args.dir or Path("/tmp/backfillbench-small"), 500, 26, args.runs, args.tables)
    elif args.mode == "core":
        core(root, args.case, args.per_hour, args.hours)
    else:
        compare(root, args.case, args.runs, args.code.resolve())


if __name__ == "__main__":
    main()
