"""The per-hour key queries of a range run (lake.cleaning.hour._keys_by_hour's SQL, as
lake.cleaning.dedup.save_hour_keys runs it: the hour's distinct event dates, then its keys
of a date as Arrow), without files: the run's kept keys in DuckDB, `--hours` hours of
`--keys` keys each, and the queries timed for every `--every`th hour.

    PYTHONPATH=.:bench .venv/bin/python bench/run_keys_bench.py --hours 720

Since task "newkeys" the run's keys name their objects by index (run.names), so this
script runs on code from that change on only.
"""

import argparse
import os
import resource
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import duckdb

import lake.cleaning.hour
from lake.cleaning.tables import NEW_KEYS
from lake.firehose import object_key
from lake.ledger import output_name
from lake.storage import ObjectInfo

FIRST = datetime(2026, 11, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=720)
    parser.add_argument("--keys", type=int, default=2000, help="kept keys an hour")
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    hours = [FIRST + timedelta(hours=n) for n in range(args.hours)]
    todo = {h: [ObjectInfo(object_key("s", h, object_id="o"), 1, h)] for h in hours}
    names = [output_name(h, objs[0].key) for h, objs in todo.items()]
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
    by_hour = lake.cleaning.hour._keys_by_hour(con, run, todo)
    made, made_cpu = time.perf_counter() - start, time.process_time() - cpu0
    timed = list(by_hour.values())[:: args.every]
    cpu0, start = time.process_time(), time.perf_counter()
    for sql in timed:
        days = con.execute(f"SELECT DISTINCT dt FROM ({sql})").fetchall()
        for (day,) in days:
            con.sql(f"SELECT hi, lo, o FROM ({sql}) WHERE dt = ?", params=[day]).to_arrow_table()
    per_hour = (time.perf_counter() - start) / len(timed)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{lake.cleaning.hour.__file__}: {args.hours} hours x {args.keys:,} keys: RUN_KEYS made in "
        f"{made:.2f} s (CPU {made_cpu:.2f} s); {per_hour * 1000:.1f} ms an hour, CPU "
        f"{(time.process_time() - cpu0) / len(timed) * 1000:.1f} ms ({len(timed)} hours timed); peak RSS {usage.ru_maxrss / 1024:.0f} MB, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
