"""stepwrap: the cleaned step's seconds around the cleaning core (issue 15).

    PYTHONPATH=.:bench .venv/bin/python bench/backfill_bench.py generate --case hours29 --dir /tmp/sw
    PYTHONPATH=.:bench .venv/bin/python bench/stepwrap_bench.py phases --dir /tmp/sw
    PYTHONPATH=.:bench .venv/bin/python bench/stepwrap_bench.py compare --dir /tmp/sw --code /tmp/A --runs 3

`phases`: lake.cleaning.run.clean_run over the case in this process (a fresh lake and
Iceberg catalog, generate's catalog table), the step's parts timed by wrappers: wall and
process CPU (every thread's) of the core (clean_hours, the hours' key saves inside it),
the run's commit (the Iceberg commit, the ledger, the key compaction), retype, the
warehouse views, the per-hour totals and metadata; the lazy imports of the step are
forced before it and timed apart. `compare`: `phases` of this checkout and of `--code`
(another checkout, e.g. `git archive main`) in subprocesses, alternated, each with the
load average.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LAZY = ["lake.cleaning.commit", "lake.cleaning.hour", "lake.retype", "lake.warehouse"]
WALL: dict[str, float] = defaultdict(float)
CPU: dict[str, float] = defaultdict(float)


def _timed(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            WALL[label] += time.perf_counter() - wall
            CPU[label] += time.process_time() - cpu

    setattr(owner, name, timed)


def _forced_imports() -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    for module in LAZY:
        importlib.import_module(module)
    import pyiceberg.catalog.sql  # noqa: F401  (opening the SQLite catalog imports it)

    WALL["imports of the step"] = time.perf_counter() - wall
    CPU["imports of the step"] = time.process_time() - cpu


def phases(root: Path, case: str) -> None:
    from backfill_bench import CASES, SPEC
    from pipes_bench import step_lake

    import lake.cleaning.run as run_module
    from lake.catalog_store import Catalog
    from lake.firehose import hours_between
    from lake.pii import PIIKey
    from lake.storage import LocalStorage

    _forced_imports()
    import lake.cleaning.commit as commit
    import lake.cleaning.hour as hour
    import lake.retype as retype
    import lake.warehouse as warehouse

    for owner, name, label in [
        (hour, "clean_hours", "core (clean_hours)"),
        (hour, "save_hour_keys", "  of which key saves"),
        (commit.RunCommit, "commit", "run commit"),
        (commit, "commit_files", "  Iceberg commit"),
        (commit.RunCommit, "_write_ledger", "  ledger"),
        (commit, "compact_due", "  key compaction"),
        (retype, "retype_stream", "retype"),
        (warehouse.Warehouse, "expose_stream", "warehouse views"),
        (run_module, "hour_totals", "hour totals"),
        (run_module, "hour_metadata", "hour metadata"),
    ]:
        _timed(owner, name, label)
    first, hours, _, records = CASES[case]
    table = Catalog(LocalStorage(root / "lake"), "bench").get_table(SPEC.name)
    out = root / f"stepwrap-{os.getpid()}"
    lake, settings = step_lake(root, out, table)
    storages = LocalStorage(root / "landing"), lake
    key = PIIKey(b"bench-pii-key", "bench")
    range_hours = hours_between(first, first + timedelta(hours=hours))
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_module.clean_run(
        settings, SPEC, "bench", storages, key, range_hours, run_module.RunOptions(), _Quiet()
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    shutil.rmtree(out, ignore_errors=True)
    assert result.total.records_in == records, result.total
    core = "core (clean_hours)"
    print(
        f"code {Path(run_module.__file__).parents[2]}: "
        f"clean_run {wall:.2f} s wall, {cpu:.2f} s CPU; outside the core {wall - WALL[core]:.2f} "
        f"s wall, {cpu - CPU[core]:.2f} s CPU; load average {os.getloadavg()[0]:.1f}"
    )
    for label in WALL:
        print(f"  {label}: {WALL[label]:.3f} s wall, {CPU[label]:.3f} s CPU")


class _Quiet:
    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


def compare(root: Path, case: str, runs: int, other: Path) -> None:
    for n in range(runs):
        for label, code in (("B (this checkout)", REPO), (f"A ({other})", other)):
            env = {**os.environ, "PYTHONPATH": f"{code}:{code / 'bench'}"}
            command = [sys.executable, str(code / "bench" / "stepwrap_bench.py"), "phases"]
            if not (code / "bench" / "stepwrap_bench.py").exists():  # a checkout without it
                command = [sys.executable, __file__, "phases"]
            command += ["--dir", str(root), "--case", case]
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            print(f"run {n + 1} {label}: {out.stdout.rstrip()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("phases", "compare"))
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--case", default="hours29")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--code", type=Path, help="compare: the other checkout (A)")
    args = parser.parse_args()
    if args.mode == "phases":
        phases(args.dir, args.case)
    else:
        compare(args.dir, args.case, args.runs, args.code)


if __name__ == "__main__":
    main()
