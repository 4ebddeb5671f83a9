"""ecshand: a parallel run's chunks handed back through the lake (JSON + Parquet under
`_state/chunks/`) against the base's local pickle.

    git archive 1dd95eb | tar -x -C /tmp/ecshand-main          # the base (pickle handoff)
    PYTHONPATH=.:bench .venv/bin/python bench/handoff_bench.py ab --dir /tmp/ecshand-h29 \\
        --base /tmp/ecshand-main --runs 2
    PYTHONPATH=.:bench .venv/bin/python bench/handoff_bench.py chunk --dir /tmp/ecshand-h29 \\
        --base /tmp/ecshand-main

`ab`: backfill_bench's `ours` (the CLI range run of landing, schema and cleaned, fresh
instance and lake) with CLEAN_COMPUTE=subprocess CLEAN_WORKERS=2, the base's checkout and
this one alternated; wall, run and cleaned step, load average at each end. `chunk`: the
case's two chunks cleaned once (threads), then each handed back `--repeat` times: this
handoff's dump and load on local folders and on moto's S3 over HTTP (ThreadedMotoServer on
loopback), and the base's pickle dump and load; bytes and median milliseconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path

from backfill_bench import CASES, REPO, ours
from pipes_bench import SPEC

from lake.catalog_store import Catalog
from lake.cleaning.handoff import drop_handoff, dump_chunk, load_chunk
from lake.cleaning.parallel import HeldCommit, clean_chunk, split_hours
from lake.cleaning.run import RunOptions, cleaner
from lake.firehose import hour_prefix, hours_between
from lake.iceberg.catalog import LakeTables
from lake.layout import chunk_handoff_folder
from lake.pii import PIIKey
from lake.settings import DEFAULTS
from lake.storage import LocalStorage, S3Storage, Storage


def ab(root: Path, case: str, base: Path, runs: int) -> None:
    os.environ |= {"CLEAN_COMPUTE": "subprocess", "CLEAN_WORKERS": "2"}
    walls: dict[str, list[float]] = {"base": [], "this": []}
    for n in range(runs):
        for name, code in (("base", base), ("this", REPO)):
            wall, run_s, steps = ours(root, case, code)
            walls[name].append(steps["cleaned"])
            print(
                f"run {n + 1} {name}: wall {wall:.2f} s, run {run_s:.2f} s, cleaned step "
                f"{steps['cleaned']:.2f} s, load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for name, values in walls.items():
        print(f"median {name}: cleaned step {statistics.median(values):.2f} s")


def _timed(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def chunk(root: Path, case: str, base: Path, repeat: int) -> None:
    first, hours, _, _ = CASES[case]
    out = root / "handoff"
    shutil.rmtree(out, ignore_errors=True)
    lake = LocalStorage(out / "lake")
    table = Catalog(LocalStorage(root / "lake"), "bench").get_table(SPEC.name)
    Catalog(lake, "bench").commit_table(table, None, None)
    landing = LocalStorage(root / "landing")
    settings = replace(
        DEFAULTS,
        landing_uri=landing.uri,
        lake_uri=lake.uri,
        warehouse_path=str(out / "warehouse.duckdb"),
        iceberg_catalog_uri=f"sqlite:///{out / 'iceberg.db'}",
    )
    tables = LakeTables(settings)
    key = PIIKey(b"bench-pii-key", "bench")
    clean = cleaner(settings, SPEC, table, (landing, lake), key, RunOptions(), tables)
    range_hours = hours_between(first, first + timedelta(hours=hours))
    batches = {h: list(landing.list(hour_prefix(SPEC.name, h))) for h in range_hours}
    base_handoff = _base_module(base)
    s3 = _moto_lake()
    for k, part in enumerate(split_hours(batches, 2)):
        held = HeldCommit(tables, SPEC, lake, token="0123456789ab")
        reports, keys = clean_chunk(clean, settings, part, frozenset(), held)
        objects = sum(map(len, part.values()))
        print(f"chunk {k + 1}: {len(part)} hours, {objects} objects, {keys.num_rows:,} keys")
        folder = chunk_handoff_folder(SPEC.name, held.token, min(part))
        for where, storage in (("local folders", lake), ("moto S3 (HTTP)", s3)):
            step = HeldCommit(tables, SPEC, storage, token=held.token)
            size = dump_chunk(storage, folder, reports, keys, held)
            dump_ms = _timed(repeat, partial(dump_chunk, storage, folder, reports, keys, held))
            load_ms = _timed(repeat, partial(load_chunk, storage, folder, step, part))
            drop_handoff(storage, folder)
            print(
                f"  lake handoff, {where}: {size:,} bytes, dump {dump_ms:.1f} ms, load {load_ms:.1f} ms"
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "chunk.pickle"
            step = HeldCommit(tables, SPEC, lake, token=held.token)
            dump_ms = _timed(repeat, partial(base_handoff.dump_chunk, path, reports, keys, held))
            load_ms = _timed(repeat, partial(base_handoff.load_chunk, path, step))
            size = path.stat().st_size
            print(
                f"  base pickle, local file: {size:,} bytes, dump {dump_ms:.1f} ms, load {load_ms:.1f} ms"
            )
    print(f"load average {os.getloadavg()[0]:.1f}")


def _base_module(base: Path):  # type: ignore[no-untyped-def]
    """The base's lake/cleaning/handoff.py (its other modules are this checkout's)."""
    spec = importlib.util.spec_from_file_location("base_handoff", base / "lake/cleaning/handoff.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _moto_lake() -> Storage:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ |= {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client("s3").create_bucket(Bucket="handoff-bench")
    return S3Storage("handoff-bench", "lake")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("ab", "chunk"))
    parser.add_argument("--case", choices=sorted(CASES), default="hours29")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/ecshand-h29"))
    parser.add_argument("--base", type=Path, default=Path("/tmp/ecshand-main"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.mode == "ab":
        ab(args.dir, args.case, args.base, args.runs)
    else:
        chunk(args.dir, args.case, args.base, args.repeat)


if __name__ == "__main__":
    main()
