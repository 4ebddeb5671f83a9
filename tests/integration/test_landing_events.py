"""SQS mode: moto's S3 sends ObjectCreated events to moto's SQS, over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from dagster import DagsterInstance

from lake.firehose import object_key
from lake.s3_events import created_keys
from tests.s3_resources import landing_events_tick, messages_in_queue, s3_resources

pytestmark = pytest.mark.s3
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


@pytest.fixture
def queue(s3_bucket: str) -> str:
    """A queue receiving the bucket's ObjectCreated events (the tests' LANDING_SQS_QUEUE_URL)."""
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"landing-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("s3").put_bucket_notification_configuration(
        Bucket=s3_bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    _drain_test_event(sqs, url)
    return url


def _drain_test_event(sqs: Any, url: str) -> None:
    """S3 sends an s3:TestEvent when notifications are configured."""
    for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_events_start_runs_and_messages_go_only_after_the_tick_is_committed(
    s3_bucket: str, queue: str, tmp_path
) -> None:
    s3 = boto3.client("s3")
    robot = [
        object_key("robot_telemetry", HOUR.replace(minute=m), object_id=f"r{m}") for m in (1, 2)
    ]
    click = object_key("clickstream", HOUR.replace(minute=3), object_id="c3")
    for key in [*robot, click]:
        s3.put_object(Bucket=s3_bucket, Key=f"landing/{key}", Body=b"{}")
    s3.put_object(Bucket=s3_bucket, Key="elsewhere/readme.txt", Body=b"x")  # not landing
    assert messages_in_queue(queue) == 4

    resources = s3_resources(s3_bucket, tmp_path / "warehouse.duckdb", landing_sqs_queue_url=queue)
    with DagsterInstance.ephemeral() as instance:
        first = landing_events_tick(resources, None, instance)
        by_job = sorted(
            (r.job_name, r.partition_key, r.tags["events/new_objects"]) for r in first.run_requests
        )
        assert by_job == [
            ("ingest_clickstream", "2026-11-21-08:00", "1"),
            ("ingest_robot_telemetry", "2026-11-21-08:00", "2"),
        ]
        # the tick's run requests are not committed yet: nothing is deleted
        assert messages_in_queue(queue) == 4

        second = landing_events_tick(
            resources, first.cursor, instance
        )  # the first tick was committed
        assert second.run_requests == []
        assert messages_in_queue(queue) == 0  # deleted, and no message read twice

        s3.put_object(
            Bucket=s3_bucket, Key=f"landing/{robot[0]}x", Body=b"{}"
        )  # not Firehose's name
        later = object_key("robot_telemetry", HOUR.replace(minute=9), object_id="r9")
        s3.put_object(Bucket=s3_bucket, Key=f"landing/{later}", Body=b"{}")
        third = landing_events_tick(resources, second.cursor, instance)
        assert [(r.job_name, r.tags["events/new_objects"]) for r in third.run_requests] == [
            ("ingest_robot_telemetry", "2")  # the odd name is still in its hour folder
        ]
        assert third.run_requests[0].run_key not in {r.run_key for r in first.run_requests}


def test_sns_wrapped_and_url_encoded_events() -> None:
    inner = (
        '{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},'
        '"object":{"key":"landing/robot_telemetry/2026/11/21/08/a+b%3Dc.gz"}}},'
        '{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"x"}}}]}'
    )
    wrapped = json.dumps({"Type": "Notification", "Message": inner})
    expected = [("b", "landing/robot_telemetry/2026/11/21/08/a b=c.gz")]
    assert created_keys(inner) == expected
    assert created_keys(wrapped) == expected
    assert created_keys('{"Event":"s3:TestEvent"}') == [] and created_keys("not json") == []
