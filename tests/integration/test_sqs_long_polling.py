"""SQS mode at volume: long polling, many receives a tick, a bounded cursor (moto over HTTP)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import boto3
import botocore.session
import pytest
from dagster import DagsterInstance

from lake import s3_events
from lake.firehose import object_key
from tests.s3_resources import landing_events_tick, messages_in_queue, s3_resources

pytestmark = pytest.mark.s3
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


@pytest.fixture
def queue(s3_bucket: str) -> str:
    """An empty queue (the events are sent in S3's shape: no S3 writes needed)."""
    return boto3.client("sqs").create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def _send_events(url: str, bucket: str, keys: list[str]) -> None:
    sqs = boto3.client("sqs")
    for start in range(0, len(keys), 10):
        entries = [
            {
                "Id": str(n),
                "MessageBody": s3_events.object_created_body(
                    bucket, f"landing/{key}", f"etag{start + n}", f"{start + n:016X}"
                ),
            }
            for n, key in enumerate(keys[start : start + 10])
        ]
        assert not sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")


def _robot_keys(count: int) -> list[str]:
    return [
        object_key("robot_telemetry", HOUR.replace(minute=n % 60), object_id=f"o{n:05d}")
        for n in range(count)
    ]


def test_the_first_receive_waits_for_a_message_and_later_ones_do_not(
    s3_bucket: str, queue: str
) -> None:
    sqs = boto3.client("sqs")
    started = time.monotonic()
    empty = s3_events.receive(sqs, queue, max_messages=50, wait_s=1)
    assert empty.receipts == [] and time.monotonic() - started >= 0.9  # it waited

    key = _robot_keys(1)[0]
    timer = threading.Timer(1.0, _send_events, (queue, s3_bucket, [key]))
    timer.start()
    started = time.monotonic()
    got = s3_events.receive(sqs, queue, max_messages=50, wait_s=10)
    elapsed = time.monotonic() - started
    timer.join()
    # returned when the message came, not after the whole wait; the second receive
    # found the queue empty and did not wait another 10 s
    assert got.keys == [(s3_bucket, f"landing/{key}")]
    assert 0.9 <= elapsed < 5, elapsed


def test_a_tick_reads_many_receives_up_to_its_maximum(s3_bucket: str, queue: str) -> None:
    keys = _robot_keys(250)
    _send_events(queue, s3_bucket, keys)
    sqs = boto3.client("sqs")
    # the read's time budget has its own test below: here a slow (loaded) moto must not end it
    first = s3_events.receive(sqs, queue, max_messages=233, wait_s=1, budget_s=600)
    assert len(first.receipts) == 233  # 24 receives, the last one of 3
    rest = s3_events.receive(sqs, queue, max_messages=233, wait_s=1, budget_s=600)
    assert len(rest.receipts) == 17
    read = sorted(k for _, k in first.keys + rest.keys)
    assert read == sorted(f"landing/{k}" for k in keys)  # each once, none lost


def test_the_time_budget_ends_the_reading(s3_bucket: str, queue: str) -> None:
    _send_events(queue, s3_bucket, _robot_keys(100))
    ticks = iter(range(1000))  # each look at the clock: one second later
    got = s3_events.receive(
        boto3.client("sqs"),
        queue,
        max_messages=100,
        wait_s=1,
        budget_s=3.5,
        clock=lambda: float(next(ticks)),
    )
    # the clock is read once for the deadline and once before each receive: 3 receives
    assert len(got.receipts) == 30
    assert messages_in_queue(queue) == 100  # read, not deleted


def test_the_cursor_stays_small_and_a_failed_tick_deletes_nothing(
    s3_bucket: str, queue: str, tmp_path, monkeypatch
) -> None:
    # every tick here must read all it is sent: on a loaded machine moto's receives of
    # 300 messages outlast the tick's time budget (tested above with a clock of its own)
    monkeypatch.setattr(s3_events, "READ_BUDGET_S", 600.0)
    keys = _robot_keys(600)
    _send_events(queue, s3_bucket, keys[:300])
    resources = s3_resources(
        s3_bucket,
        tmp_path / "warehouse.duckdb",
        landing_sqs_queue_url=queue,
        landing_sqs_wait_seconds=1,
    )
    with DagsterInstance.ephemeral() as instance:
        first = landing_events_tick(resources, None, instance)
        assert sum(int(r.tags["events/new_objects"]) for r in first.run_requests) == 300
        assert len(first.cursor) < 100  # 300 receipt handles are not in it
        assert messages_in_queue(queue) == 300  # not committed yet: nothing deleted

        _send_events(queue, s3_bucket, keys[300:])
        lost = landing_events_tick(
            resources, first.cursor, instance
        )  # its cursor is never committed
        assert sum(int(r.tags["events/new_objects"]) for r in lost.run_requests) == 300
        assert messages_in_queue(queue) == 300  # the first tick's messages went

        again = landing_events_tick(
            resources, first.cursor, instance
        )  # Dagster retries from `first`
        assert again.run_requests == []  # the lost tick's messages are still in flight
        assert messages_in_queue(queue) == 300  # and were not deleted: they will come back

        last = landing_events_tick(resources, again.cursor, instance)
        assert last.run_requests == []
        assert messages_in_queue(queue) == 300  # `again` read nothing, so nothing to delete


def test_a_tick_builds_no_s3_client(
    s3_bucket: str, queue: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events name their objects: a tick needs SQS only (an S3 client costs 0.5-1 s)."""
    _send_events(queue, s3_bucket, _robot_keys(20))
    resources = s3_resources(s3_bucket, tmp_path / "warehouse.duckdb", landing_sqs_queue_url=queue)
    built: list[str] = []
    create_client = botocore.session.Session.create_client

    def recording(self, service_name: str, *args, **kwargs):
        built.append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(botocore.session.Session, "create_client", recording)
    with DagsterInstance.ephemeral() as instance:
        first = landing_events_tick(resources, None, instance)
        assert sum(int(r.tags["events/new_objects"]) for r in first.run_requests) == 20
        landing_events_tick(resources, first.cursor, instance)
    assert messages_in_queue(queue) == 0
    assert "sqs" in built and "s3" not in built
