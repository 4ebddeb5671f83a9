"""A range run's key saving (lake.cleaning.hour and lake.cleaning.dedup): the run's kept
keys in DuckDB, `--hours` hours of `--keys` keys each, saved to a fresh local lake as the
cleaning saves them, timed whole (wall and CPU an hour). Runs on the code of PYTHONPATH:
before task "monthcli" two queries an hour (`_keys_by_hour`'s SQL through
`save_hour_keys`: the hour's distinct dates, then each date's keys), from it one scan
(`_run_keys` through `save_hours_keys`).

    PYTHONPATH=.:bench .venv/bin/python bench/run_keys_bench.py --hours 720 --dir /tmp/rk
    PYTHONPATH=/tmp/A:bench .venv/bin/python bench/run_keys_bench.py --hours 720 --dir /tmp/rk

Since task "newkeys" the run's keys name their objects by index (run.names), so this
script runs on code from that change on only.
"""

import argparse
import os
import resource
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow as pa

import lake.cleaning.dedup as dedup
import lake.cleaning.hour as hour_module
from lake.cleaning.tables import NEW_KEYS
from lake.firehose import object_key
from lake.ledger import output_name
from lake.storage import LocalStorage, ObjectInfo

FIRST = datetime(2026, 11, 1, tzinfo=UTC)


def save_keys(con, lake, run, todo) -> None:  # type: ignore[no-untyped-def]
    names = pa.array(run.names, pa.string())
    nothing = {h: set() for h in todo}
    if hasattr(hour_module, "_run_keys"):  # one scan
        sql = hour_module._run_keys(con, run, todo)
        dedup.save_hours_keys(con, lake, "s", list(todo), sql, names, nothing, nothing)
        return
    for hour, sql in hour_module._keys_by_hour(con, run, todo).items():  # queries an hour
        dedup.save_hour_keys(con, lake, "s", hour, sql, names, set(), ())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=720)
    parser.add_argument("--keys", type=int, default=2000, help="kept keys an hour")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/run-keys-bench"))
    args = parser.parse_args()
    hours = [FIRST + timedelta(hours=n) for n in range(args.hours)]
    todo = {h: [ObjectInfo(object_key("s", h, object_id="o"), 1, h)] for h in hours}
    names = [output_name(h, objs[0].key) for h, objs in todo.items()]
    shutil.rmtree(args.dir, ignore_errors=True)
    lake = LocalStorage(args.dir)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # kept keys arrive pass by pass, not in hour order: shuffled by their hash; each names
    # its object by its index in the run's names (lake.cleaning.passes.CleaningRun.names)
    con.execute(
        f"CREATE TEMP TABLE {NEW_KEYS} AS SELECT (DATE '2026-11-01' + (i // {args.keys * 24})::INT) AS dt, "
        f"hash(i) AS hi, hash(i + 1) AS lo, (i // {args.keys})::INTEGER AS o "
        f"FROM range({args.hours * args.keys}) t(i) ORDER BY hi"
    )
    run = SimpleNamespace(new_keys=NEW_KEYS, names=names, name_hours=hours)
    cpu0, start = time.process_time(), time.perf_counter()
    save_keys(con, lake, run, todo)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    files = sum(1 for _ in lake.list("_state/keys/"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{hour_module.__file__}: {args.hours} hours x {args.keys:,} keys saved in {wall:.2f} s "
        f"= {wall / args.hours * 1000:.1f} ms an hour (CPU {cpu / args.hours * 1000:.1f} ms); "
        f"{files} key files; peak RSS {usage.ru_maxrss / 1024:.0f} MB, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
