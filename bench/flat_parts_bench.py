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
- totals: `hour_totals` of a bounded listing (the last 2 objects).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from clean_bench import HOUR, SPEC

import lake
from lake import hour_totals as totals_module
from lake import layout
from lake.firehose import hour_prefix
from lake.hour_totals import hour_totals
from lake.storage import LocalStorage

try:
    from lake import crawl_record
except ImportError:  # main: the record is one JSON object
    crawl_record = None


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


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
    entries = json.loads(lake_storage.read(key))  # the first format: rewrite it once
    lake_storage.write(key, crawl_record.record_bytes(crawl_record.of_entries(entries)))

    def step() -> None:
        record = crawl_record.read_record(lake_storage, key)
        record.holds(next(iter(new)), "e", 10)
        added = crawl_record.with_added(record, new)
        lake_storage.write(key + ".out", crawl_record.record_bytes(added))

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
    }
    figures = {name: median_ms(fn, args.repeat) for name, fn in parts.items()}
    print(
        f"{lake.__file__}: objects {len(objects):,}; "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in figures.items())
    )


if __name__ == "__main__":
    main()
