"""The 2 GB hour's dedup replayed: drop_duplicates, keep_keys and save_hour_keys alone.

    # once: each pass's narrow typed records (_object, _position, _dt, _key_hi, _key_lo,
    # _reason) of `clean_bench.py ours --dir D` written to OUT/pass-NN.parquet
    PYTHONPATH=.:bench .venv/bin/python bench/dedup_cost_bench.py capture --dir D --out OUT
    # then, as often as wanted (code under test first on PYTHONPATH)
    PYTHONPATH=.:bench .venv/bin/python bench/dedup_cost_bench.py replay --passes OUT --lake L

`replay` runs the cleaning run's dedup steps over the captured passes on a DuckDB
connection set up as CleaningSession's (memory limit 1 GB, two threads: the session's on this machine; --threads, --memory), into a fresh lake L
(removed first): each pass's drop_duplicates and keep_keys, then save_hour_keys of the
run's keys. It prints each step's wall time, the process's CPU and peak RSS.
"""

import argparse
import resource
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lake.cleaning import dedup
from lake.cleaning.key_files import KeyWindow
from lake.cleaning.typed import Typed
from lake.hive_types import Struct
from lake.storage import LocalStorage

HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
STREAM = "robot_telemetry"
NARROW = "_object, _position, _dt, _key_hi, _key_lo, _reason"


def capture(case: Path, out: Path) -> None:
    import clean_bench

    import lake.cleaning.passes as passes

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    real, count = passes.drop_duplicates, [0]

    def keep(con, records, window):
        path = out / f"pass-{count[0]:02d}.parquet"
        con.sql(f"SELECT {NARROW} FROM {records.relation}").write_parquet(str(path))
        count[0] += 1
        return real(con, records, window)

    passes.drop_duplicates = keep
    sys.argv = ["clean_bench.py", "ours", "--dir", str(case)]
    clean_bench.main()


def replay(folder: Path, lake_dir: Path, threads: int, memory: str) -> None:
    shutil.rmtree(lake_dir, ignore_errors=True)
    lake = LocalStorage(lake_dir)
    (lake_dir / "tmp").mkdir(parents=True)  # DuckDB's spill folder (the session's scratch)
    config = {"memory_limit": memory, "threads": threads, "temp_directory": str(lake_dir / "tmp")}
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    new_keys = dedup.create_new_keys(con)
    window = KeyWindow(lake, STREAM, dedup.window_dates(HOUR, 48))
    names: list[str] = []
    times = {"drop_duplicates": 0.0, "keep_keys": 0.0}
    cpu = dict.fromkeys(times, 0.0)
    cpu0 = time.process_time()
    for path in sorted(folder.glob("pass-*.parquet")):
        table = pq.read_table(path)
        con.register("typed", table)
        objects = pa.compute.max(table["_object"]).as_py() + 1
        start, used = time.perf_counter(), time.process_time()
        deduped = dedup.drop_duplicates(con, Typed(table, [], Struct({})), window)
        times["drop_duplicates"] += time.perf_counter() - start
        cpu["drop_duplicates"] += time.process_time() - used
        start, used = time.perf_counter(), time.process_time()
        dedup.keep_keys(con, deduped, len(names))
        times["keep_keys"] += time.perf_counter() - start
        cpu["keep_keys"] += time.process_time() - used
        names += [f"{path.stem}-object-{n:04d}" for n in range(objects)]
        con.unregister("typed")
    start, used = time.perf_counter(), time.process_time()
    written = dedup.save_hour_keys(
        con, lake, STREAM, HOUR, f"SELECT dt, hi, lo, o FROM {new_keys}", pa.array(names), set()
    )
    times["save_hour_keys"] = time.perf_counter() - start
    cpu["save_hour_keys"] = time.process_time() - used
    for step, seconds in times.items():
        print(f"{step:16s} {seconds:7.2f} s wall {cpu[step]:7.2f} s CPU")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{'cpu':16s} {time.process_time() - cpu0:7.2f} s, peak RSS {rss} MB, files {written}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["capture", "replay"])
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--passes", type=Path)
    parser.add_argument("--lake", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", default="1GB")  # CleaningSession's default
    args = parser.parse_args()
    modes = {
        "capture": lambda: capture(args.dir, args.out),
        "replay": lambda: replay(args.passes, args.lake, args.threads, args.memory),
    }
    modes[args.mode]()


if __name__ == "__main__":
    main()
