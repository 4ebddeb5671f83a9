"""Notifying anomalies once: an SNS topic when configured, otherwise a log line.

An alert mart (header `alerts: true`) has one row per anomaly with a stable
`anomaly_id`. Each id is claimed in the lake (`_state/alerts/<mart>/<id>.json`) before
it is published, by a create-only write (S3 `If-None-Match: *`, an atomic check on the
local lake), so a re-run, a backfill or a second run racing this one never notifies it
again; if publishing fails the claim is withdrawn and the run fails, so the next run
tries again. A claim left without a message by a run that died before publishing is
taken over after CLAIM_TIMEOUT, so a crash loses no alert (one right after publishing may
notify twice).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from lake import layout
from lake.storage import PreconditionFailed, Storage

log = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], str]  # (subject, message) -> message id


@dataclass
class AlertRun:
    notified: list[str] = field(default_factory=list)  # published (or logged) by this run
    already_notified: list[str] = field(default_factory=list)  # by an earlier run


def sns_publisher(topic_arn: str, client: Any) -> Publish:
    """Publish to SNS with a boto3 SNS client."""

    def publish(subject: str, message: dict[str, Any]) -> str:
        response = client.publish(
            TopicArn=topic_arn,
            Subject=subject[:100],  # SNS's limit
            Message=json.dumps(message, default=str),
            MessageAttributes={
                "kind": {"DataType": "String", "StringValue": str(message.get("kind", ""))}
            },
        )
        return str(response["MessageId"])

    return publish


def log_publisher(subject: str, message: dict[str, Any]) -> str:
    log.warning("ALERT %s: %s", subject, json.dumps(message, default=str))
    return "logged"


def notify_new(lake: Storage, mart: str, rows: pa.Table, publish: Publish) -> AlertRun:
    """Publish every row whose anomaly_id has never been notified."""
    run = AlertRun()
    if "anomaly_id" not in rows.column_names:
        raise ValueError(f"alert mart {mart} has no anomaly_id column")
    for row in rows.to_pylist():
        anomaly_id = str(row["anomaly_id"])
        claim = layout.alert_claim(mart, _file_name(anomaly_id))
        record = {
            "anomaly_id": anomaly_id,
            "claimed_at": datetime.now(UTC).isoformat(),
            "claim": uuid.uuid4().hex,
        }
        tag = _claim(lake, claim, record)
        if tag is None:  # claimed by an earlier or a concurrent run
            run.already_notified.append(anomaly_id)
            continue
        try:
            message_id = publish(f"[{mart}] {row.get('summary') or anomaly_id}", row)
        except Exception:
            lake.delete(claim)
            raise
        record["message_id"] = message_id
        lake.write_if(claim, json.dumps(record).encode(), tag)  # only this run holds it
        run.notified.append(anomaly_id)
    return run


def _claim(lake: Storage, key: str, record: dict[str, str]) -> str | None:
    """Create the claim; its version tag, or None when another run holds it. A create
    whose response was lost and that was retried fails its precondition against itself:
    the claim's token tells that case apart."""
    try:
        return lake.write_if(key, json.dumps(record).encode(), None)
    except PreconditionFailed:
        found = lake.read_versioned(key)
    if found is None:
        return None
    held, tag = json.loads(found[0]), found[1]
    if held.get("claim") == record["claim"]:
        return tag
    if "message_id" in held or not _abandoned(held):
        return None
    try:  # a run that claimed it died before publishing: take the claim over
        return lake.write_if(key, json.dumps(record).encode(), tag)
    except PreconditionFailed:
        return None


def _abandoned(claim: dict[str, Any]) -> bool:
    try:
        claimed_at = datetime.fromisoformat(claim["claimed_at"])
    except (KeyError, TypeError, ValueError):
        return True
    return datetime.now(UTC) - claimed_at > CLAIM_TIMEOUT


# A claim with no message after this was left by a run that died before publishing; the
# next run takes it over (a crash right after publishing may then notify twice: an alert
# is worth more than its duplicate).
CLAIM_TIMEOUT = timedelta(minutes=10)
_MAX_NAME = 120  # a claim's file name; longer ids keep a readable head and a hash


def _file_name(anomaly_id: str) -> str:
    """The id as a safe, bounded file name (ids hold ':'; keep them readable and unique)."""
    name = "".join(c if c.isalnum() or c in "-_." else f"~{ord(c):02x}" for c in anomaly_id)
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(anomaly_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"_{name[: _MAX_NAME - 17]}-{digest}"
