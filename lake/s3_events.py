"""S3 event notifications (ObjectCreated) read from an SQS queue, instead of listing.

S3 sends one message per event batch to the queue (directly, or through SNS, which wraps
it in an envelope). A message is deleted only once the run requests made from it are
committed: the sensor keeps the receipt handles of a tick in its cursor and deletes them
at the start of the next tick (Dagster commits a tick's run requests and cursor
together). A tick that fails leaves its messages in the queue; they come back when their
visibility timeout ends, and run keys and the cleaning ledger make the repeat harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

VISIBILITY_TIMEOUT_S = 300  # longer than a tick and the next one: a receipt must stay valid
MAX_MESSAGES_PER_TICK = 100  # ten receives of ten


@dataclass
class Received:
    keys: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key) created
    # (bucket, key) -> what tells this write of the key from an earlier one (ETag, sequencer)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)
    receipts: list[str] = field(default_factory=list)  # every message read, to delete later
    ignored: int = 0  # messages with no ObjectCreated record (S3's test event, deletes...)


def created_keys(body: str) -> list[tuple[str, str]]:
    """(bucket, key) of the ObjectCreated records of one message body (SNS-wrapped or not)."""
    return [(bucket, key) for bucket, key, _ in created_objects(body)]


def created_objects(body: str) -> list[tuple[str, str, str]]:
    """(bucket, key, version) of the ObjectCreated records of one message body, the
    version being the event's ETag and sequencer (an overwrite under the same key differs)."""
    try:
        doc = json.loads(body)
    except json.JSONDecodeError:
        return []
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        return created_objects(doc["Message"])
    records = doc.get("Records") if isinstance(doc, dict) else None
    keys = []
    for record in records or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        bucket = (s3.get("bucket") or {}).get("name")
        obj = s3.get("object") or {}
        key = obj.get("key")
        if bucket and key:
            version = f"{obj.get('eTag', '')}:{obj.get('sequencer', '')}"
            keys.append((bucket, unquote_plus(key), version))  # S3 URL-encodes keys in events
    return keys


def receive(sqs: Any, queue_url: str, max_messages: int = MAX_MESSAGES_PER_TICK) -> Received:
    """Read up to `max_messages` messages without deleting them."""
    got = Received()
    while len(got.receipts) < max_messages:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages - len(got.receipts)),
            VisibilityTimeout=VISIBILITY_TIMEOUT_S,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            got.receipts.append(message["ReceiptHandle"])
            created = created_objects(message.get("Body", ""))
            for bucket, key, version in created:
                got.keys.append((bucket, key))
                got.versions[(bucket, key)] = version
            got.ignored += not created
    return got


def delete(sqs: Any, queue_url: str, receipts: list[str]) -> list[str]:
    """Delete messages by receipt handle, ten a call; return the handles SQS refused
    (an expired handle: that message will come back and be handled again)."""
    refused = []
    for start in range(0, len(receipts), 10):
        entries = [
            {"Id": str(n), "ReceiptHandle": handle}
            for n, handle in enumerate(receipts[start : start + 10])
        ]
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        refused += [entries[int(f["Id"])]["ReceiptHandle"] for f in response.get("Failed", [])]
    return refused
