"""The parts of a micro-batch that task "flat" changed, timed alone on a filled hour, for
the `lake` package first on PYTHONPATH (this branch or main: run both, alternated).

    PYTHONPATH=.:bench .venv/bin/python bench/flat_parts_bench.py --lake-root /tmp/mbb/n10000
    PYTHONPATH=/work/main:/work/main/bench .venv/bin/python bench/flat_parts_bench.py \
        --lake-root /tmp/mbb/n10000

--lake-root is a lake microbatch_bench.py filled (landing/ and lake/); it is copied first
(the copy is what is timed, in the format the code imported writes: the crawl record and
the totals document are rewritten by it once, untimed, the totals' deltas folded first). Median of --repeat, milliseconds:
- list: the hour's landing folder from a cursor before its last 2 objects;
- ledger: the stream's manifest folder from a cursor before the hour's last 2 manifests;
- crawl_record: what a bounded crawl of 1 new object does with the partition's record
  (read what it needs, add the object, write it);
- totals: `hour_totals` of a bounded listing (the last 2 objects);
- keys: a 1-object run's dedup keys (100) probed against the hour's window, then saved
  for the hour (`save_hour_keys`), the key-file cache emptied first (a run is a new
  process); a new object each repeat, so on code with run files every FOLD_AT-th repeat
  folds them (the mean is printed too).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from clean_bench import HOUR, SPEC
from microbatch_bench import random_key_table

import lake
from lake import hour_totals as totals_module
from lake import layout
from lake.cleaning import key_files
from lake.cleaning.dedup import save_hour_keys, window_dates
from lake.cleaning.key_files import KeyWindow
from lake.firehose import hour_prefix
from lake.hour_totals import hour_totals
from lake.storage import LocalStorage

try:
    from lake import crawl_record
except ImportError:  # main: the record is one JSON object
    crawl_record = None


def times_ms(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - started))
    return times


def bounded_list(storage: LocalStorage, prefix: str) -> Callable[[], object]:
    keys = [i.key for i in storage.list(prefix)]
    cursor = keys[-3]
    return lambda: list(storage.list(prefix, start_after=cursor))


def record_step(lake_storage: LocalStorage, key: str) -> Callable[[], object]:
    new = {"robot_telemetry/2026/11/21/08/zz-new.gz": ["e", 10, 100]}
    if crawl_record is None:

        def old() -> None:
            record = json.loads(lake_storage.read(key))
            record.update(new)
            lake_storage.write(key, json.dumps(record, separators=(",", ":")).encode())

        return old
    # in this code's format (a record of the first format is read whole): rewrite it once
    lake_storage.write(key, crawl_record.record_bytes(crawl_record.read_record(lake_storage, key)))

    def step() -> None:
        record = crawl_record.read_record(lake_storage, key)
        record.holds(next(iter(new)), "e", 10)
        added = crawl_record.with_added(record, new)
        lake_storage.write(key + ".out", crawl_record.record_bytes(added))

    return step


def keys_step(lake_storage: LocalStorage) -> Callable[[], object]:
    """A 1-object run's keys: probe the window, save them for the hour (a new name each)."""
    con = duckdb.connect()
    days = window_dates(HOUR, SPEC.allowed_lateness_hours)
    count = itertools.count()

    def step() -> None:
        n = next(count)
        key_files._CACHE.tables.clear()  # a new run process reads its key files afresh
        key_files._CACHE.size = 0
        keys = random_key_table(random.Random(n), 100)
        KeyWindow(lake_storage, SPEC.name, days).hits(keys.select(["hi", "lo"]), con)
        o = pa.array([0] * keys.num_rows, pa.int32())
        dt = pa.array([HOUR.date()] * keys.num_rows, pa.date32())
        con.register("k", pa.table({"dt": dt, "hi": keys["hi"], "lo": keys["lo"], "o": o}))
        names = pa.array([f"bench-object-{n:05d}"])
        save_hour_keys(
            con, lake_storage, SPEC.name, HOUR, "SELECT * FROM k", names, {names[0].as_py()}
        )
        con.unregister("k")

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake-root", required=True)
    parser.add_argument("--work", default="/tmp/flat-parts")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(args.lake_root, work, symlinks=True)
    landing, lake_storage = LocalStorage(work / "landing"), LocalStorage(work / "lake")
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    doc = layout.hour_totals_doc(SPEC.name, HOUR)
    # the steady state of micro-batches: the filling runs' large deltas folded in
    totals_module._compact(
        lake_storage, SPEC.name, HOUR, totals_module._deltas(lake_storage, SPEC.name, HOUR)
    )
    if hasattr(totals_module, "_doc_bytes"):  # rewrite the document in this code's format
        lake_storage.write(
            doc, totals_module._doc_bytes(totals_module._parsed(lake_storage.read(doc)))
        )
    (record_key,) = [
        i.key
        for i in lake_storage.list("catalog/")
        if "/crawled/" in i.key and i.key.endswith(".json")
    ]
    parts = {
        "list": bounded_list(landing, hour_prefix(SPEC.name, HOUR)),
        "ledger": bounded_list(lake_storage, layout.ledger_hour_prefix(SPEC.name, HOUR)),
        "crawl_record": record_step(lake_storage, record_key),
        "totals": lambda: hour_totals(lake_storage, SPEC.name, HOUR, objects[-2:], complete=False),
        "keys": keys_step(lake_storage),
    }
    figures = {name: times_ms(fn, args.repeat) for name, fn in parts.items()}
    print(
        f"{lake.__file__}: objects {len(objects):,}; median (mean) "
        + ", ".join(
            f"{k} {statistics.median(v):.1f} ({statistics.mean(v):.1f}) ms"
            for k, v in figures.items()
        )
    )


if __name__ == "__main__":
    main()
