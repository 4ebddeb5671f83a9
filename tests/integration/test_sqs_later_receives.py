"""SQS mode: every receive of a tick long-polls (moto over HTTP)."""

from __future__ import annotations

import threading
import uuid

import boto3
import pytest

from lake import s3_events
from tests.integration.test_sqs_long_polling import _robot_keys, _send_events

pytestmark = pytest.mark.s3


@pytest.fixture
def queue(s3_bucket: str) -> str:
    return boto3.client("sqs").create_queue(QueueName=f"recv-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def test_messages_that_come_during_the_tick_are_read_by_the_later_receives(
    s3_bucket: str, queue: str
) -> None:
    keys = _robot_keys(10)
    _send_events(queue, s3_bucket, keys[:5])
    later = threading.Timer(0.3, _send_events, (queue, s3_bucket, keys[5:]))
    later.start()
    got = s3_events.receive(boto3.client("sqs"), queue, max_messages=100, wait_s=2)
    later.join()
    # a short poll (wait 0) after the first batch would have found the queue empty
    assert sorted(k for _, k in got.keys) == sorted(f"landing/{k}" for k in keys)
