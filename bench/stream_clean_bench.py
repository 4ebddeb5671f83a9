"""Cleaning one arrival hour of N simulator records, per stream (issue 15, "ctthru").

    PYTHONPATH=. .venv/bin/python bench/stream_clean_bench.py [--records 10000 100000 ...]
        [--streams cloudtrail clickstream robot_telemetry] [--repeat 3] [--profile FILE]

For each stream, objects of at most 50,000 simulator records (fresh event ids, in the
stream's landing format) land in one hour; the hour is crawled once, then cleaned into a
fresh lake `--repeat` times (best kept). Prints seconds, records/s and the gzip bytes, and
checks that every record was cleaned or quarantined. `--profile FILE` writes a cProfile
of the last cleaning of the last stream and size to FILE.
"""

import argparse
import cProfile
import gzip
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import LocalStorage
from lake.streams import StreamSpec, load_streams

HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
PER_OBJECT = 50_000


def templates(spec: StreamSpec) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        sim = Simulator(SimulatorConfig(seed=1, streams=(spec.name,), object_interval_s=600))
        writes = sim.write_range(LocalStorage(Path(tmp)), HOUR, HOUR + timedelta(hours=6))
        return [r for w in writes for r in w.records]


def land(spec: StreamSpec, root: Path, records: int) -> int:
    """`records` records in HOUR, in objects of at most PER_OBJECT (under the expanded
    size limit); returns their gzip bytes."""
    rng, pool = random.Random(7), templates(spec)
    landing, size = LocalStorage(root / "landing"), 0
    for o, start in enumerate(range(0, records, PER_OBJECT)):
        body = []
        for i in range(start, min(records, start + PER_OBJECT)):
            record = dict(pool[i % len(pool)])
            record[spec.dedup_key] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            body.append(record)
        data = gzip.compress(_documents(spec, body).encode(), 6)
        landing.write(object_key(spec.name, HOUR, object_id=f"{o:05d}"), data)
        size += len(data)
    return size


def _documents(spec: StreamSpec, records: list[dict]) -> str:
    """The records as the stream's format lands them: one a line (ndjson), concatenated,
    or in documents of 1,000 under the records key (json_records)."""
    if spec.records_key is None:
        between = "\n" if spec.format == "ndjson" else ""
        return between.join(json.dumps(r, separators=(",", ":")) for r in records)
    return "".join(
        json.dumps({spec.records_key: records[i : i + 1000]}, separators=(",", ":"))
        for i in range(0, len(records), 1000)
    )


def clean_once(spec: StreamSpec, root: Path, profile: str | None = None) -> tuple[float, int]:
    landing, lake = LocalStorage(root / "landing"), root / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(root / "crawled", lake)  # the crawled catalog, nothing cleaned
    infos = list(landing.list(hour_prefix(spec.name, HOUR)))
    table = Catalog(LocalStorage(lake), "bench").get_table(spec.name)
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if profiler:
        profiler.enable()
    report = clean_hour(spec, table, landing, LocalStorage(lake), HOUR, infos)
    seconds = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    return seconds, report.records_cleaned + report.records_quarantined


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument(
        "--streams", nargs="+", default=["cloudtrail", "clickstream", "robot_telemetry"]
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", help="cProfile of the last cleaning to this file")
    args = parser.parse_args()
    streams = load_streams()
    for name in args.streams:
        spec = streams[name]
        for n in args.records:
            with tempfile.TemporaryDirectory(prefix="stream-clean-") as tmp:
                root = Path(tmp)
                size = land(spec, root, n)
                infos = list(LocalStorage(root / "landing").list(hour_prefix(spec.name, HOUR)))
                crawl_objects(
                    spec,
                    Catalog(LocalStorage(root / "crawled"), "bench"),
                    LocalStorage(root / "landing"),
                    infos,
                )
                best, rows = 1e9, set()
                for r in range(args.repeat):
                    last = r == args.repeat - 1
                    seconds, out = clean_once(spec, root, args.profile if last else None)
                    best = min(best, seconds)
                    rows.add(out)
                assert rows == {n}, (n, rows)  # every record cleaned or quarantined
                print(
                    f"{name:<15} {n:>9,} records {size / 1e6:6.2f} MB gzip: {best:6.2f} s "
                    f"{n / best:>9,.0f} records/s  (load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
