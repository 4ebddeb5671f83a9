"""SQS mode throughput: objects a minute read from SQS (moto's, or another server's with
--sqs-endpoint) through landing_events_sensor.

moto serves S3 and SQS over HTTP on 127.0.0.1, in its own process (`--moto process`, the
default: as SQS is to a deployed sensor, the server does not share the bench's GIL) or in a
thread of the bench (`--moto thread`, ThreadedMotoServer). The sensor ticks as the daemon
ticks it: each tick starts at least `--interval` seconds after the one before and gets the
committed cursor of the one before (delete the previous tick's messages, long-poll receive
up to MAX_OBJECTS_PER_TICK, build the run requests).

Two loads:
- `burst`: the queue is filled with `--objects` ObjectCreated events first, then drained.
  moto's receive costs O(messages in the queue), so this measures moto's queue walk more
  than the sensor.
- `sustained`: a feeder process (`--feeder thread`: a thread of the bench, as the
  figures before issue 15's "sqs" task) sends `--rate` events a second (batches of 10) for
  `--seconds` while the sensor drains the queue concurrently, so the queue holds what
  arrives between ticks, as in production. The figure is the objects the sensor handed to
  run requests a minute, and whether it kept up (the backlog at the end of the feed).

    .venv/bin/python bench/sqs_bench.py sustained --rate 200 --seconds 120
    .venv/bin/python bench/sqs_bench.py burst --objects 1000
    .venv/bin/python bench/sqs_bench.py sustained --rate 200 --seconds 60 \
        --sqs-endpoint http://127.0.0.1:4566   # fauxqs (bench/README.md): SQS not moto's
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUCKET = "sqs-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("load", choices=["burst", "sustained"])
    parser.add_argument("--objects", type=int, default=1000, help="burst: events queued first")
    parser.add_argument("--rate", type=float, default=200.0, help="sustained: events a second")
    parser.add_argument("--seconds", type=float, default=120.0, help="sustained: feed time")
    parser.add_argument("--interval", type=float, default=5.0, help="least s between ticks")
    parser.add_argument("--max-per-tick", type=int, default=2000)
    parser.add_argument(
        "--feeder",
        choices=["process", "thread"],
        default="process",
        help="sustained: where the feeder runs (a thread shares the sensor's GIL)",
    )
    parser.add_argument("--moto", choices=["process", "thread"], default="process")
    parser.add_argument(
        "--sqs-like-moto",
        action="store_true",
        help="moto without its O(queue) work per message (see serve_moto)",
    )
    parser.add_argument(
        "--sqs-endpoint",
        metavar="URL",
        help="SQS of another server at URL (e.g. fauxqs, see bench/README.md); S3 stays moto's",
    )
    parser.add_argument("--serve-moto", type=int, help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args()
    if args.serve_moto:
        serve_moto(args.serve_moto, args.sqs_like_moto)
        return

    # MAX_OBJECTS_PER_TICK is read by the definitions at import; botocore sends SQS calls
    # to AWS_ENDPOINT_URL_SQS when it is set, and the rest to AWS_ENDPOINT_URL
    env = {"MAX_OBJECTS_PER_TICK": str(args.max_per_tick)}
    if args.sqs_endpoint:
        env["AWS_ENDPOINT_URL_SQS"] = args.sqs_endpoint
    with aws_on_moto(args.moto, args.sqs_like_moto, **env):
        run(args)


def serve_moto(port: int, sqs_like: bool) -> None:
    """moto's server; with `sqs_like`, without moto 5.2.5's walks of the whole queue that
    SQS does not make (see `make_moto_sqs_like`)."""
    from moto.server import main as moto_main

    if sqs_like:
        make_moto_sqs_like()
    moto_main(["-H", "127.0.0.1", "-p", str(port)])


def make_moto_sqs_like() -> None:
    """Patch moto's SQS (in this process) so that no call walks the whole queue once a
    message. moto 5.2.5 does, where SQS does not:
    - receive_message reads the queue's retention through get_queue_attributes, which
      counts every message (visible, in flight, delayed), for each message it returns;
      send_message builds the same attributes for each message sent. Here the retention
      is read from the queue and the approximate counts are kept for APPROX_TTL_S
      (SQS's own counts are approximate and lag too);
    - delete_message looks for the handle in every message's handles, twice, and
      rebuilds the queue's list: here a handle -> message index finds it;
    - each receive call filters the queue's messages through two clock-reading
      properties a message: here one clock read a call."""
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs import models

    def retained(self, queue_name: str, message) -> bool:
        retention = self.get_queue(queue_name).message_retention_period
        return retention + message.sent_timestamp / 1000 > unix_time()

    models.SQSBackend.is_message_valid_based_on_retention_period = retained
    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_not_visible",
        "approximate_number_of_messages_delayed",
    ):
        setattr(models.Queue, name, property(_kept_for_a_while(name)))

    by_handle: dict[str, object] = {}
    mark_received = models.Message.mark_received

    def indexed_mark_received(message, visibility_timeout=None) -> None:
        mark_received(message, visibility_timeout)
        by_handle[message.receipt_handle] = message

    def delete_message(queue, receipt_handle: str) -> None:
        if receipt_handle in queue.deleted_messages:
            return
        message = by_handle.get(receipt_handle)
        try:
            queue._messages.remove(message)  # one scan, where moto made two
        except ValueError:  # a handle never given (None), or of another queue's message
            raise models.ReceiptHandleIsInvalid() from None
        queue.pending_messages.discard(message)
        queue.deleted_messages.update(message.all_receipt_handles)
        for handle in message.all_receipt_handles:
            by_handle.pop(handle, None)

    def visible_messages(queue) -> list:
        now = unix_time_millis()
        return [m for m in queue._messages if m.visible_at < now and m.delayed_until <= now]

    models.Message.mark_received = indexed_mark_received
    models.Queue.delete_message = delete_message
    models.Queue.messages = property(visible_messages)


APPROX_TTL_S = 0.5


def _kept_for_a_while(name: str):
    from moto.sqs import models

    count = getattr(models.Queue, name).fget

    def kept(queue) -> int:
        cache = queue.__dict__.setdefault("_bench_counts", {})
        value, at = cache.get(name, (0, -1.0))
        if time.monotonic() - at > APPROX_TTL_S:
            value, at = count(queue), time.monotonic()
            cache[name] = (value, at)
        return value

    return kept


@contextmanager
def aws_on_moto(where: str, sqs_like: bool, **env: str) -> Iterator[str]:
    """moto_server, with this process's AWS environment (and PII key, and `env`) set to
    use it; yields its endpoint."""
    with moto_server(where, sqs_like) as endpoint:
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            PII_HASH_KEY="bench-key",
            **env,
        )
        yield endpoint


@contextmanager
def moto_server(where: str, sqs_like: bool) -> Iterator[str]:
    if where == "thread":
        assert not sqs_like, "--sqs-like-moto needs --moto process"
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, __file__, "burst", "--serve-moto", str(port)]
        + ["--sqs-like-moto"] * sqs_like,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def send_events(sqs, queue: str, first: int, count: int, hour: datetime) -> None:
    from lake import s3_events
    from lake.firehose import object_key

    entries = []
    for n in range(first, first + count):
        key = object_key(
            "robot_telemetry", hour + timedelta(seconds=n % 3600), object_id=f"o{n:08d}"
        )
        body = s3_events.object_created_body(BUCKET, f"landing/{key}", f"e{n}", f"{n:016X}")
        entries.append({"Id": str(n - first), "MessageBody": body})
    assert not sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed")


def in_queue(sqs, queue: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def feed(queue: str, rate: float, seconds: float, hour: datetime, shared: tuple) -> None:
    """`rate` events a second in batches of 10, on schedule (a late batch is sent at once).
    `shared` (multiprocessing objects): an event set once the client is built, the count of
    events sent, and the wall-clock time the feed ended."""
    import boto3

    ready, sent, ended = shared
    sqs = boto3.client("sqs")
    ready.set()
    started = time.monotonic()
    total = int(rate * seconds)
    while sent.value < total:
        due = started + sent.value / rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        count = min(10, total - sent.value)
        send_events(sqs, queue, sent.value, count, hour)
        sent.value += count
    ended.value = time.time()


def start_feeder(args: argparse.Namespace, queue: str, hour: datetime) -> tuple[Any, Any]:
    """The sustained load's feeder, started once ready to send: in its own process by
    default (as S3 sends the events, the sensor's process does not pay for them), or a
    thread of this one. Returns the count of events sent and the time the feed ended (0.0
    until then), shared."""
    ctx = multiprocessing.get_context("spawn")
    shared = (ctx.Event(), ctx.Value("q", 0), ctx.Value("d", 0.0))
    feed_args = (queue, args.rate, args.seconds, hour, shared)
    if args.feeder == "process":
        feeder: Any = ctx.Process(target=feed, args=feed_args, daemon=True)
    else:
        feeder = threading.Thread(target=feed, args=feed_args, daemon=True)
    feeder.start()
    assert shared[0].wait(120), "the feeder did not start"
    return shared[1], shared[2]


def run(args: argparse.Namespace) -> None:
    import boto3
    from dagster import DagsterInstance, build_sensor_context

    from orchestration.definitions import defs
    from tests.s3_resources import s3_resources

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    sqs = boto3.client("sqs")
    # a new queue each run: a server given by --sqs-endpoint outlives the bench
    queue = sqs.create_queue(QueueName=f"landing-events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    if args.load == "burst":
        for start in range(0, args.objects, 10):
            send_events(sqs, queue, start, min(10, args.objects - start), hour)

    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("landing_events_sensor")
    with tempfile.TemporaryDirectory() as tmp, DagsterInstance.ephemeral() as instance:
        resources = s3_resources(BUCKET, Path(tmp) / "w.duckdb", landing_sqs_queue_url=queue)
        cursor, seen, ticks = None, 0, []
        lag_at_end: int | None = None  # objects sent and not read when the feed ended
        sent, ended = (None, None) if args.load == "burst" else start_feeder(args, queue, hour)
        total = args.objects if sent is None else int(args.rate * args.seconds)
        started, last_read = time.time(), 0.0
        while True:
            tick_start = time.perf_counter()
            with build_sensor_context(
                cursor=cursor, resources=resources, instance=instance, repository_def=repo
            ) as context:
                result = sensor.evaluate_tick(context)
            new = sum(int(r.tags["events/new_objects"]) for r in result.run_requests)
            cursor, seen = result.cursor, seen + new
            ticks.append((time.perf_counter() - tick_start, new))
            feeding = ended is not None and not ended.value
            if new:
                last_read = time.time()
            if ended is not None and not feeding and lag_at_end is None:
                lag_at_end = total - (seen - new)  # read by the ticks that ended before it
            if not feeding and not new:
                break  # this tick deleted the last messages and found none
            if sent is not None:
                print(f"  t={time.time() - started:5.1f} s sent {sent.value} read {seen}")
            time.sleep(max(0.0, tick_start + args.interval - time.perf_counter()))
        wall = time.time() - started
    time.sleep(2 * 0.5)  # past --sqs-like-moto's APPROX_TTL_S: a fresh count
    assert seen == total, (seen, total)
    busy = sum(t for t, _ in ticks)
    biggest = max(ticks, key=lambda t: t[1])
    print(
        f"{args.load}: {seen} objects in {len(ticks)} ticks over {wall:.1f} s wall "
        f"({seen / wall * 60:,.0f} objects a minute); ticks busy {busy:.1f} s "
        f"({seen / busy * 60:,.0f} objects a minute of tick time); largest tick "
        f"{biggest[1]} objects in {biggest[0]:.2f} s, slowest tick {max(t for t, _ in ticks):.2f} s; "
        f"left in queue {in_queue(sqs, queue)}, cursor {len(cursor or '')} bytes"
    )
    if ended is not None:
        print(
            f"feed ended at t={ended.value - started:.1f} s with "
            f"{lag_at_end} objects not yet read (a tick still reading counts none); all read at "
            f"t={last_read - started:.1f} s ({last_read - ended.value:.1f} s after the feed)"
        )


if __name__ == "__main__":
    main()
