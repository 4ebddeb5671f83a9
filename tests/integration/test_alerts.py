"""Alerts through moto's SNS delivering to SQS over HTTP on 127.0.0.1: each anomaly once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest

from lake.alerts import notify_new
from lake.storage import LocalStorage
from orchestration.aws_resources import AlertsResource

pytestmark = pytest.mark.s3


@pytest.fixture
def topic_to_queue(aws_env: str) -> tuple[str, str]:
    """An SNS topic whose messages land in an SQS queue (raw delivery off: SNS envelopes)."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue_url


def received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages"):
        for m in batch:
            messages.append(json.loads(json.loads(m["Body"])["Message"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return messages


def anomalies(*ids: str) -> pa.Table:
    return pa.table(
        {
            "anomaly_id": list(ids),
            "kind": ["robot_down"] * len(ids),
            "summary": [f"robot down ({i})" for i in ids],
        }
    )


def test_each_anomaly_reaches_the_queue_once_across_reruns(
    topic_to_queue: tuple[str, str], tmp_path: Path
) -> None:
    topic, queue = topic_to_queue
    lake = LocalStorage(tmp_path / "lake")
    # the resource builds its client from the environment (AWS_ENDPOINT_URL -> moto)
    publish, target = AlertsResource(sns_topic_arn=topic).publisher()
    assert target == f"sns:{topic}"

    first = notify_new(
        lake, "robot_anomalies", anomalies("robot_down:R02:2026-11-21T09:30:00"), publish
    )
    # a re-run of the same day, then a backfill that finds one more
    second = notify_new(
        lake, "robot_anomalies", anomalies("robot_down:R02:2026-11-21T09:30:00"), publish
    )
    third = notify_new(
        lake,
        "robot_anomalies",
        anomalies("robot_down:R02:2026-11-21T09:30:00", "robot_down:R04:2026-11-20T13:00:00"),
        publish,
    )

    assert first.notified == ["robot_down:R02:2026-11-21T09:30:00"]
    assert second.notified == [] and second.already_notified == first.notified
    assert third.notified == ["robot_down:R04:2026-11-20T13:00:00"]
    messages = received(queue)
    assert sorted(m["anomaly_id"] for m in messages) == [
        "robot_down:R02:2026-11-21T09:30:00",
        "robot_down:R04:2026-11-20T13:00:00",
    ]
    assert messages[0]["summary"].startswith("robot down")


def test_a_failed_publish_is_retried_by_the_next_run(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    sent = []

    def flaky(subject: str, message: dict[str, Any]) -> str:
        if not sent:
            sent.append(None)
            raise ConnectionError("SNS unreachable")
        sent.append(message["anomaly_id"])
        return "m-1"

    with pytest.raises(ConnectionError):
        notify_new(lake, "robot_anomalies", anomalies("a:1"), flaky)
    again = notify_new(lake, "robot_anomalies", anomalies("a:1"), flaky)
    assert again.notified == ["a:1"] and sent == [None, "a:1"]


class _LostResponse(LocalStorage):
    """A create that lands but whose response is lost, so the client retries it (as
    botocore does) and the retry fails its precondition against the first attempt."""

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        tag = super().write_if(key, data, expected)
        if expected is None:
            super().write_if(key, data, None)  # the retry: raises PreconditionFailed
        return tag


def test_a_claim_whose_create_was_retried_is_still_this_runs(tmp_path: Path) -> None:
    lake = _LostResponse(tmp_path / "lake")
    sent: list[str] = []

    def publish(subject: str, message: dict[str, Any]) -> str:
        sent.append(message["anomaly_id"])
        return "m-1"

    run = notify_new(lake, "robot_anomalies", anomalies("a:1"), publish)
    assert run.notified == ["a:1"] and sent == ["a:1"]
    again = notify_new(
        LocalStorage(tmp_path / "lake"), "robot_anomalies", anomalies("a:1"), publish
    )
    assert again.already_notified == ["a:1"] and sent == ["a:1"]


def test_a_very_long_anomaly_id_gets_a_bounded_unique_claim(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    ids = ["r" * 5000 + ":1", "r" * 5000 + ":2"]
    run = notify_new(lake, "robot_anomalies", anomalies(*ids), lambda s, m: "m")
    assert run.notified == ids
    claims = [o.key for o in lake.list("_state/alerts/robot_anomalies/")]
    assert len(claims) == 2 and all(len(k.rsplit("/", 1)[-1]) <= 130 for k in claims)


def test_a_claim_left_by_a_run_that_died_before_publishing_is_taken_over(tmp_path: Path) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    lake = LocalStorage(tmp_path / "lake")
    key = "_state/alerts/robot_anomalies/a~3a1.json"
    stale = {"anomaly_id": "a:1", "claim": "dead-run"}
    fresh = {"anomaly_id": "b:1", "claim": "live-run"}
    stale["claimed_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    fresh["claimed_at"] = datetime.now(UTC).isoformat()
    lake.write(key, json.dumps(stale).encode())
    lake.write("_state/alerts/robot_anomalies/b~3a1.json", json.dumps(fresh).encode())

    run = notify_new(lake, "robot_anomalies", anomalies("a:1", "b:1"), lambda s, m: "m-9")
    assert run.notified == ["a:1"] and run.already_notified == ["b:1"]
    assert json.loads(lake.read(key))["message_id"] == "m-9"
