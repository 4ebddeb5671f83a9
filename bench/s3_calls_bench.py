"""S3 calls of one one-object micro-batch on a lake on moto's S3, counted at the server.

    PYTHONPATH=.:bench .venv/bin/python bench/s3_calls_bench.py [--earlier 20] [--day-every 1800]

moto's S3 runs in a thread of this process behind a WSGI wrapper that records every
request (boto3's and pyarrow's alike, which botocore's event hooks would miss). The lake
is seeded with a day of landing keys before the current hour (one object every
`--day-every` seconds), ingested by one range run, and `--earlier` objects earlier in the
current hour, ingested by a sensor-started run. Then one object lands: the landing
sensor's tick and its run (landing, schema, cleaned; each step materialized alone, in
process, with the tick's run tags) are counted by operation and by key prefix (digits
shown as #, long hex and uuid runs as *).

The code under test is the one on PYTHONPATH (`PYTHONPATH=/tmp/motofresh-A:bench` for main).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.s3_requests import RequestLog, bench_bucket, moto_server

STREAM = "robot_telemetry"


def table(title: str, rows: list[tuple[str, str]]) -> str:
    by_op = Counter(op for op, _ in rows)
    lines = [f"### {title}: {len(rows)} requests", ""]
    lines.append("| operation | calls |")
    lines.append("|---|---:|")
    lines += [f"| {op} | {n} |" for op, n in sorted(by_op.items())]
    lines += ["", "| operation | prefix | calls |", "|---|---|---:|"]
    counted = Counter(rows)
    lines += [f"| {op} | `{prefix}` | {n} |" for (op, prefix), n in sorted(counted.items())]
    return "\n".join(lines) + "\n"


def run(earlier: int, day_every: int, batches: int, raw: str | None = None) -> None:
    log = RequestLog()
    work = Path(tempfile.mkdtemp(prefix="s3calls-"))
    with moto_server(log) as endpoint:
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        bucket = bench_bucket(endpoint, "s3-calls-bench")
        tables = ingest(log, bucket, work, hour, earlier, day_every, batches)
    for title, rows in tables:
        print(table(title, rows))
    if raw:
        with open(raw, "w") as out:
            out.writelines(f"{p}\t{op}\t{key}\n" for p, op, key in log.raw if p != "setup")


def ingest(
    log: RequestLog,
    bucket: str,
    work: Path,
    hour: datetime,
    earlier: int,
    day_every: int,
    batches: int,
) -> list[tuple[str, list[tuple[str, str]]]]:
    from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

    from lake.simulator import Simulator, SimulatorConfig
    from lake.storage import open_storage
    from orchestration.definitions import defs, ingest_assets
    from tests.s3_resources import s3_resources

    resources = s3_resources(bucket, work / "warehouse.duckdb")
    landing = open_storage(f"s3://{bucket}/landing")
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(f"{STREAM}_landing_sensor")
    assets = ingest_assets(STREAM)
    day = Simulator(SimulatorConfig(seed=1, streams=(STREAM,), object_interval_s=day_every))
    now = Simulator(SimulatorConfig(seed=2, streams=(STREAM,), object_interval_s=150))
    written = list(day.write_range(landing, hour - timedelta(days=1), hour))
    first, last = hour - timedelta(days=1), hour - timedelta(hours=1)
    range_tags = {
        "dagster/asset_partition_range_start": f"{first:%Y-%m-%d-%H:%M}",
        "dagster/asset_partition_range_end": f"{last:%Y-%m-%d-%H:%M}",
    }
    assert materialize(assets, resources=resources, tags=range_tags).success
    print(f"seeded a day: {len(written)} objects", file=sys.stderr)
    arrivals = [hour + timedelta(seconds=150 * i) for i in range(earlier + batches)]
    for arrival in arrivals[:earlier]:
        now.write_object(landing, STREAM, arrival)
    tables = []
    with DagsterInstance.ephemeral() as instance:
        cursor = None

        def tick(cursor: str | None) -> Any:
            with build_sensor_context(
                cursor=cursor, resources=resources, instance=instance, repository_def=repo
            ) as context:
                return sensor.evaluate_tick(context)

        result = tick(cursor)
        cursor = result.cursor
        current = f"{hour:%Y-%m-%d-%H:%M}"
        [request] = [r for r in result.run_requests if r.partition_key == current]
        run_batch(assets, resources, request, materialize, AssetKey, None)
        for n, arrival in enumerate(arrivals[earlier:], 1):
            now.write_object(landing, STREAM, arrival)
            log.phase = f"batch {n}: sensor tick"
            result = tick(cursor)
            cursor = result.cursor
            [request] = result.run_requests
            run_batch(assets, resources, request, materialize, AssetKey, (log, n))
            log.phase = "after"
            for phase in ("sensor tick", "landing", "schema", "cleaned"):
                tables.append((f"batch {n}: {phase}", log.of(f"batch {n}: {phase}")))
    return tables


def run_batch(assets, resources, request, materialize, asset_key, logging) -> None:
    """The run a tick requested, one step at a time (each step's calls apart)."""
    try:  # a run is a process of its own: nothing of an earlier run's is cached
        from lake.iceberg.metadata_io import CACHE

        CACHE.clear()
    except ImportError:  # main's code before the cache
        pass
    for layer in ("landing", "schema", "cleaned"):
        if logging is not None:
            log, n = logging
            log.phase = f"batch {n}: {layer}"
        result = materialize(
            assets,
            selection=[asset_key([layer, STREAM])],
            partition_key=request.partition_key,
            tags=request.tags,
            resources=resources,
        )
        assert result.success, layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--earlier", type=int, default=20, help="objects earlier in the hour")
    parser.add_argument("--day-every", type=int, default=1800, help="seconds between day keys")
    parser.add_argument("--batches", type=int, default=2, help="one-object batches counted")
    parser.add_argument("--raw", help="write every request (phase, operation, key) to this file")
    args = parser.parse_args()
    run(args.earlier, args.day_every, args.batches, args.raw)


if __name__ == "__main__":
    main()
