"""S3 reads: bytes written to local scratch while cleaning an hour of S3 objects, and the
time per object, on moto (its own process, over HTTP on 127.0.0.1).

`--objects` gzip Firehose objects of robot_telemetry (concatenated JSON, `--records` each)
land in one hour on moto's S3; then `clean_hour` cleans them (the crawl is done before and
not timed). Everything the run writes under its temporary directory is kept (deletions
are turned off for the timed run) and counted afterwards: all bytes, and the bytes of the
files holding landed text (a marker sits in a redacted field, so the output cannot hold
it). DuckDB's spill files would be counted in the first figure; none occur at this size.

Which code runs is chosen by `--repo` (a checkout: this worktree, or main for "before"),
so before and after run the same bench side by side:

    for i in 1 2 3; do for repo in /work/main .; do
      PYTHONPATH=bench .venv/bin/python bench/s3_read_bench.py --repo $repo
    done; done
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqs_bench import aws_on_moto

HOUR = datetime(2026, 11, 21, 9, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.repo).resolve()))
    with aws_on_moto("process", False):
        run(args)


def land(landing, objects: int, records: int, marker: str) -> int:
    from lake.firehose import object_key

    expanded = 0
    for n in range(objects):
        body = "".join(
            json.dumps(
                {
                    "event_id": f"o{n}-{i}",
                    "ts": f"2026-11-21T09:{n % 60:02d}:{i % 60:02d}Z",
                    "robot_id": f"R{i % 40}",
                    "unit": {"temp_c": 20 + i % 17, "state": "milking", "yield_l": i * 0.01},
                    "operator": {"name": f"{marker}-{i % 7}"},  # redacted by the stream
                }
            )
            for i in range(records)
        ).encode()
        expanded += len(body)
        key = object_key("robot_telemetry", HOUR.replace(minute=n % 60), object_id=f"o{n:05d}")
        landing.write(key, gzip.compress(body, 1))
    return expanded


def run(args: argparse.Namespace) -> None:
    import boto3

    from lake.catalog_store import Catalog
    from lake.cleaning.hour import clean_hour
    from lake.crawler import crawl_objects
    from lake.firehose import hour_prefix
    from lake.storage import open_storage
    from lake.streams import load_streams

    spec = load_streams(Path(args.repo) / "streams.yaml")["robot_telemetry"]
    bucket = "s3-read-bench"
    boto3.client("s3").create_bucket(Bucket=bucket)
    landing = open_storage(f"s3://{bucket}/landing")
    lake = open_storage(f"s3://{bucket}/lake")
    marker = f"landedtext{uuid.uuid4().hex}"
    expanded = land(landing, args.objects, args.records, marker)
    objects = list(landing.list(hour_prefix(spec.name, HOUR)))
    crawled = crawl_objects(spec, Catalog(lake, "firehose_raw"), landing, objects)

    with tempfile.TemporaryDirectory(prefix="s3rb-") as root:
        scratch = Path(root)
        tempfile.tempdir = str(scratch)
        keep = (os.unlink, os.remove, shutil.rmtree)
        os.unlink = os.remove = shutil.rmtree = lambda *a, **k: None  # type: ignore[assignment]
        try:
            started = time.perf_counter()
            cpu = time.process_time()
            report = clean_hour(spec, crawled.table, landing, lake, HOUR, objects)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            os.unlink, os.remove, shutil.rmtree = keep  # type: ignore[assignment]
            tempfile.tempdir = None
        files = [p for p in scratch.rglob("*") if p.is_file() and not p.is_symlink()]
        written = sum(p.stat().st_size for p in files)
        landed_copies = sum(p.stat().st_size for p in files if marker.encode() in p.read_bytes())
    assert report.records_cleaned == args.objects * args.records, report.records_cleaned
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.repo}: {args.objects} objects ({expanded / 1e6:.0f} MB of JSON), clean_hour "
        f"{wall:.2f} s wall, {cpu:.2f} s CPU, {wall / args.objects * 1000:.1f} ms an object; "
        f"scratch written {written:,} bytes in {len(files)} files, of it landed text "
        f"{landed_copies:,} bytes; peak RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
