"""Cleaning one arrival hour of N records with the text rules' SQL packed in lists or
written per column (lake.pii_rules.text_rule_stages), to place PACK_BELOW_BYTES.

    PYTHONPATH=.:bench .venv/bin/python bench/mask_packing_bench.py [--records 1 1000 ...]

For each stream with text rules, objects of N simulator records (fresh event ids) land
in one hour; the hour is crawled once, then cleaned into a fresh lake with packing forced
on and forced off, alternating, best of `--repeat`. Prints seconds and the gzip bytes.
"""

import argparse
import gzip
import json
import random
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lake.cleaning.typed as typed
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


def clean_once(spec: StreamSpec, root: Path, packed: bool) -> tuple[float, int]:
    landing, lake = LocalStorage(root / "landing"), root / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    shutil.copytree(root / "crawled", lake)  # the crawled catalog, nothing cleaned
    infos = list(landing.list(hour_prefix(spec.name, HOUR)))
    table = Catalog(LocalStorage(lake), "bench").get_table(spec.name)
    typed.PACK_BELOW_BYTES = 1 << 62 if packed else 0
    t0 = time.perf_counter()
    report = clean_hour(spec, table, landing, LocalStorage(lake), HOUR, infos)
    return time.perf_counter() - t0, report.records_cleaned + report.records_quarantined


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, nargs="+", default=[1, 1000, 10000, 50000])
    parser.add_argument("--streams", nargs="+", default=["cloudtrail", "clickstream"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    streams = load_streams()
    for name in args.streams:
        spec = streams[name]
        for n in args.records:
            with tempfile.TemporaryDirectory(prefix="mask-packing-") as tmp:
                root = Path(tmp)
                size = land(spec, root, n)
                infos = list(LocalStorage(root / "landing").list(hour_prefix(spec.name, HOUR)))
                crawl_objects(
                    spec,
                    Catalog(LocalStorage(root / "crawled"), "bench"),
                    LocalStorage(root / "landing"),
                    infos,
                )
                best, rows = {True: 1e9, False: 1e9}, set()
                for _ in range(args.repeat):
                    for packed in (True, False):
                        seconds, out = clean_once(spec, root, packed)
                        best[packed] = min(best[packed], seconds)
                        rows.add(out)
                assert rows == {n}, (n, rows)  # every record cleaned or quarantined
                print(
                    f"{name} {n:>7,} records {size / 1e6:6.2f} MB gzip: "
                    f"packed {best[True]:.2f} s, per column {best[False]:.2f} s"
                )


if __name__ == "__main__":
    main()
