"""Landing discovery on a bucket of 100,000 keys: moto's S3 over HTTP on 127.0.0.1.

The 100,000 existing keys are put straight into moto's backend (over HTTP they would take
minutes to create); everything the code under test does goes through boto3 and HTTP, and
every ListObjectsV2 call it makes is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends

from lake.firehose import object_key, parse_key
from lake.landing_scan import ScanCursor, ScanResult, scan_new_objects
from lake.settings import DEFAULTS
from lake.storage import S3Storage

pytestmark = pytest.mark.s3
STREAM = "robot_telemetry"
T0 = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
EXISTING = 100_000
EVERY = timedelta(seconds=12)  # 100,000 keys over ~14 days, 300 an hour


@pytest.fixture(scope="module")
def big_bucket(moto_endpoint: str) -> Iterator[tuple[str, datetime]]:
    name = "landing-at-scale"
    boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=name)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(EXISTING):
        backend.put_object(name, object_key(STREAM, T0 + i * EVERY, object_id=f"{i:06d}"), b"{}")
    yield name, T0 + (EXISTING - 1) * EVERY


@pytest.fixture
def landing(aws_env: str, big_bucket: tuple[str, datetime]) -> tuple[S3Storage, list[str]]:
    """The bucket through S3Storage, and a log of its ListObjectsV2 calls."""
    client = boto3.client("s3")
    calls: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(params.get("StartAfter", ""))

    client.meta.events.register("provide-client-params.s3.ListObjectsV2", count)
    return S3Storage(big_bucket[0], "", client=client), calls


def caught_up(storage: S3Storage, newest: datetime) -> ScanCursor:
    """The cursor of a sensor that has been running: it saw every key up to the newest.
    (Set-up, not measured: it starts from a key of DEFAULTS.landing_late_hours + 2 hours ago, as the cursor
    of an earlier tick would be, rather than listing all 100,000 keys.)"""
    earlier = object_key(
        STREAM, newest - timedelta(hours=DEFAULTS.landing_late_hours + 2), object_id=""
    )
    cursor = ScanCursor(last_key=earlier)
    while True:
        result = scan_new_objects(storage, STREAM, cursor)
        cursor = ScanCursor.from_json(result.cursor.to_json())
        if not result.truncated and not result.new:
            return cursor


def keys(result: ScanResult) -> list[str]:
    return sorted(info.key for info, _ in result.new)


def test_ten_new_keys_cost_at_most_three_list_calls(landing, big_bucket) -> None:
    storage, calls = landing
    _, newest = big_bucket
    cursor = caught_up(storage, newest)
    added = [
        storage.uri_of(k) and k
        for k in (
            object_key(STREAM, newest + (n + 1) * EVERY, object_id=f"new{n}") for n in range(10)
        )
    ]
    for key in added:
        storage.write(key, b"{}")

    calls.clear()
    tick = scan_new_objects(storage, STREAM, cursor)
    assert len(calls) <= 3, calls
    assert keys(tick) == sorted(added)
    assert tick.listed < 50  # the recent window and the late folder, not 100,000 keys
    assert len(tick.cursor.to_json()) < 20_000  # a bounded cursor

    calls.clear()
    idle = scan_new_objects(storage, STREAM, ScanCursor.from_json(tick.cursor.to_json()))
    assert idle.new == [] and len(calls) <= 3


def test_a_key_landing_late_three_hours_back_is_found_once(landing, big_bucket) -> None:
    storage, calls = landing
    _, newest = big_bucket
    cursor = caught_up(storage, newest)
    three_back = newest.replace(minute=59, second=59) - timedelta(hours=3)
    late = object_key(STREAM, three_back, object_id="zz-retry")  # a Firehose retry
    assert parse_key(late).arrival_hour == (newest - timedelta(hours=3)).replace(minute=0, second=0)
    storage.write(late, b"{}")

    found = []
    for _ in range(
        DEFAULTS.landing_late_hours + 1
    ):  # each late folder is listed once in DEFAULTS.landing_late_hours + 1 ticks
        calls.clear()
        tick = scan_new_objects(storage, STREAM, cursor)
        assert len(calls) <= 3
        found += keys(tick)
        cursor = ScanCursor.from_json(tick.cursor.to_json())
    assert found == [late]
