"""SQS mode throughput: objects a minute read from moto's SQS through landing_events_sensor.

A ThreadedMotoServer on 127.0.0.1 serves S3 and SQS over HTTP. The queue is filled with
`--objects` ObjectCreated events in S3's shape (one object each, Firehose keys of
robot_telemetry over a few hours); then the sensor ticks, each with the committed cursor
of the one before (delete the previous tick's messages, long-poll receive up to
MAX_OBJECTS_PER_TICK, build the run requests), until the queue is empty. Only the ticks
are timed.

    .venv/bin/python bench/sqs_bench.py --objects 20000 --max-per-tick 2000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--max-per-tick", type=int, default=2000)
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        MAX_OBJECTS_PER_TICK=str(args.max_per_tick),  # read by the definitions at import
        PII_HASH_KEY="bench-key",
    )
    try:
        run(args.objects)
    finally:
        server.stop()


def run(objects: int) -> None:
    import boto3
    from dagster import DagsterInstance, build_sensor_context

    from lake import s3_events
    from lake.firehose import object_key
    from orchestration.definitions import defs
    from tests.s3_resources import s3_resources

    bucket = "sqs-bench"
    boto3.client("s3").create_bucket(Bucket=bucket)
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="landing-events")["QueueUrl"]
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    started = time.perf_counter()
    for start in range(0, objects, 10):
        entries = []
        for n in range(start, min(start + 10, objects)):
            arrived = first + timedelta(seconds=n)
            key = object_key("robot_telemetry", arrived, object_id=f"o{n:07d}")
            body = s3_events.object_created_body(bucket, f"landing/{key}", f"e{n}", f"{n:016X}")
            entries.append({"Id": str(n - start), "MessageBody": body})
        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
    print(f"queued {objects} events in {time.perf_counter() - started:.1f} s")

    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("landing_events_sensor")
    with tempfile.TemporaryDirectory() as tmp, DagsterInstance.ephemeral() as instance:
        resources = s3_resources(bucket, Path(tmp) / "w.duckdb", landing_sqs_queue_url=queue)
        cursor, seen, ticks = None, 0, []
        while True:
            tick_start = time.perf_counter()
            with build_sensor_context(
                cursor=cursor, resources=resources, instance=instance, repository_def=repo
            ) as context:
                result = sensor.evaluate_tick(context)
            ticks.append(time.perf_counter() - tick_start)
            new = sum(int(r.tags["events/new_objects"]) for r in result.run_requests)
            cursor, seen = result.cursor, seen + new
            if not new:
                break  # this tick deleted the last messages and found none
        total = sum(ticks)
    assert seen == objects, (seen, objects)
    print(
        f"{objects} objects in {len(ticks)} ticks, {total:.1f} s of ticks "
        f"(slowest {max(ticks):.2f} s, cursor {len(cursor or '')} bytes): "
        f"{objects / total * 60:,.0f} objects a minute"
    )


if __name__ == "__main__":
    main()
