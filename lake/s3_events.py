"""S3 event notifications (ObjectCreated) read from an SQS queue, instead of listing.

S3 sends one message per event batch to the queue (directly, or through SNS, which wraps
it in an envelope). A tick reads with long polling: its first receive waits up to
LANDING_SQS_WAIT_SECONDS on an empty queue, later ones LATER_WAIT_S, and it reads until it
holds MAX_OBJECTS_PER_TICK messages, a receive comes back empty or READ_BUDGET_S runs out.

A message is deleted only once the run requests made from it are committed: Dagster
commits a tick's run requests and cursor together, so the next tick deletes the messages
of the tick its cursor names. The receipt handles themselves (400+ bytes each, thousands
a tick) stay out of the cursor: the tick keeps them under a fresh tick id in the
orchestrator's key-value store (not in the lake, whose own writes would raise S3 events
when the bucket's notifications cover it), and the cursor holds only that id. The next tick deletes the kept handles only when the kept id is the one its
cursor names; a tick that failed before its cursor was committed kept a different id, and
its messages are not deleted. They come back when their visibility timeout ends, and run
keys and the cleaning ledger make the repeat harmless. Deleting inside the tick that read
them would be simpler but would lose objects whenever the tick dies between the delete
and Dagster's commit (only the reconciliation sensor, minutes later, would find them).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from lake.settings import DEFAULTS

VISIBILITY_TIMEOUT_S = 300  # longer than a tick and the next one: a receipt must stay valid
READ_BUDGET_S = 20.0  # receiving stops after this: Dagster ends a sensor tick at 60 s
LATER_WAIT_S = 1  # long polling after the first receive: returns as soon as messages come


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


def object_created_body(bucket: str, key: str, etag: str, sequencer: str) -> str:
    """The body S3 sends for one ObjectCreated:Put (the shape created_objects reads), for
    simulators and benchmarks that feed a queue without S3."""
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": bucket},
            "object": {"key": quote_plus(key, safe="/"), "eTag": etag, "sequencer": sequencer},
        },
    }
    return json.dumps({"Records": [record]})


def receive(
    sqs: Any,
    queue_url: str,
    max_messages: int = DEFAULTS.max_objects_per_tick,
    wait_s: int = DEFAULTS.landing_sqs_wait_seconds,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Received:
    """Read up to `max_messages` messages without deleting them, ten a receive. The first
    receive waits up to `wait_s` for a message; later ones long-poll for LATER_WAIT_S (a
    short poll, wait 0, asks only some of SQS's servers and can come back empty from a
    queue that still holds messages). No receive starts after `budget_s` (default
    READ_BUDGET_S), and an empty receive ends the read. One receive at a time: moto's SQS
    is not thread-safe (parallel receives there left messages in flight that no response
    returned)."""
    got = Received()
    deadline = clock() + (READ_BUDGET_S if budget_s is None else budget_s)
    wait = wait_s
    while len(got.receipts) < max_messages and clock() < deadline:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, max_messages - len(got.receipts)),
            VisibilityTimeout=VISIBILITY_TIMEOUT_S,
            WaitTimeSeconds=wait,
        ).get("Messages", [])
        wait = min(wait_s, LATER_WAIT_S)
        if not batch:
            break
        for message in batch:
            _add(got, message)
    return got


def _add(got: Received, message: dict[str, Any]) -> None:
    got.receipts.append(message["ReceiptHandle"])
    created = created_objects(message.get("Body", ""))
    for bucket, key, version in created:
        if (bucket, key) not in got.versions:  # SQS may deliver a message twice
            got.keys.append((bucket, key))
        got.versions[(bucket, key)] = version
    got.ignored += not created


def pending_record(receipts: list[str]) -> tuple[str, str]:
    """A tick's receipt handles as text to keep beside the cursor, under a new tick id:
    (tick id, text)."""
    tick = uuid.uuid4().hex
    return tick, json.dumps({"tick": tick, "receipts": receipts})


def committed_receipts(saved: str | None, tick: str | None) -> list[str]:
    """The kept receipt handles if they are those of `tick` (the committed cursor's); none
    if a later tick kept its own and failed before its cursor was committed."""
    if not saved or tick is None:
        return []
    doc = json.loads(saved)
    return doc["receipts"] if doc.get("tick") == tick else []


def delete(sqs: Any, queue_url: str, receipts: list[str]) -> list[str]:
    """Delete messages by receipt handle, ten a call; return the handles SQS refused
    (an expired handle: that message will come back and be handled again). One call at a
    time, as receive."""
    refused = []
    for start in range(0, len(receipts), 10):
        handles = receipts[start : start + 10]
        entries = [{"Id": str(n), "ReceiptHandle": h} for n, h in enumerate(handles)]
        response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        refused += [handles[int(f["Id"])] for f in response.get("Failed", [])]
    return refused
