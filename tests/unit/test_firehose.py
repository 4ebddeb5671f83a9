"""Firehose's default S3 key layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lake.firehose import (
    hour_prefix,
    hours_between,
    listing_floor,
    object_key,
    parse_key,
    parse_partition_key,
    partition_key,
)

OID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_object_key_layout() -> None:
    at = datetime(2026, 11, 21, 8, 5, 9, tzinfo=UTC)
    key = object_key("robot_telemetry", at, version=3, object_id=OID)
    assert key == f"robot_telemetry/2026/11/21/08/robot_telemetry-3-2026-11-21-08-05-09-{OID}.gz"
    plain = object_key("robot_telemetry", at, object_id=OID, gzip=False)
    assert plain == f"robot_telemetry/2026/11/21/08/robot_telemetry-1-2026-11-21-08-05-09-{OID}"


def test_object_key_converts_to_utc() -> None:
    # 01:30 at +02:00 is 23:30 UTC on the previous day
    at = datetime(2026, 11, 22, 1, 30, 0, tzinfo=timezone(timedelta(hours=2)))
    key = object_key("clickstream", at, object_id="x")
    assert key.startswith("clickstream/2026/11/21/23/clickstream-1-2026-11-21-23-30-00-")


@pytest.mark.parametrize("stream", ["robot_telemetry", "clickstream", "cloudtrail", "a"])
@pytest.mark.parametrize("gz", [True, False])
def test_object_key_parse_key_round_trip(stream: str, gz: bool) -> None:
    at = datetime(2026, 1, 2, 23, 59, 58, tzinfo=UTC)
    key = object_key(stream, at, version=7, gzip=gz)
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed.key == key
    assert parsed.stream == stream
    assert parsed.version == "7"
    assert parsed.written_at == at
    assert parsed.arrival_hour == datetime(2026, 1, 2, 23, tzinfo=UTC)


def test_arrival_hour_comes_from_the_folders_not_the_name() -> None:
    # a file named for 08:59:59 that sits in the 09 folder arrived in hour 09
    key = f"robot_telemetry/2026/11/21/09/robot_telemetry-1-2026-11-21-08-59-59-{OID}.gz"
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed.arrival_hour == datetime(2026, 11, 21, 9, tzinfo=UTC)
    assert parsed.written_at == datetime(2026, 11, 21, 8, 59, 59, tzinfo=UTC)


def test_hour_folder_with_non_firehose_name_has_no_write_time() -> None:
    parsed = parse_key("robot_telemetry/2026/11/21/08/manual-upload.json")
    assert parsed is not None
    assert parsed.arrival_hour == datetime(2026, 11, 21, 8, tzinfo=UTC)
    assert parsed.written_at is None
    assert parsed.version is None


@pytest.mark.parametrize(
    "key",
    [
        "robot_telemetry/readme.txt",
        "robot_telemetry/2026/11/21/robot_telemetry-1-2026-11-21-08-00-00-x.gz",
        "robot_telemetry/2026/11/21/08/sub/robot_telemetry-1-2026-11-21-08-00-00-x.gz",
        "robot_telemetry/2026/13/21/08/robot_telemetry-1-2026-13-21-08-00-00-x.gz",
        "robot_telemetry/2026/11/31/08/x.gz",
        "robot_telemetry/2026/11/21/24/x.gz",
        "robot_telemetry/26/11/21/08/x.gz",
        "2026/11/21/08/x.gz",
        "",
    ],
)
def test_keys_outside_the_layout_parse_to_none(key: str) -> None:
    assert parse_key(key) is None


def test_partition_key_format_and_inverse() -> None:
    hour = datetime(2026, 11, 21, 8, tzinfo=UTC)
    assert partition_key(hour) == "2026-11-21-08:00"
    assert parse_partition_key("2026-11-21-08:00") == hour
    # an aware non-UTC hour is converted
    cet = datetime(2026, 11, 21, 9, tzinfo=timezone(timedelta(hours=1)))
    assert partition_key(cet) == "2026-11-21-08:00"
    with pytest.raises(ValueError):
        parse_partition_key("2026-11-21T08:00")


def test_hour_prefix() -> None:
    assert hour_prefix("s", datetime(2026, 3, 4, 5, 6, tzinfo=UTC)) == "s/2026/03/04/05/"


def test_listing_floor_separates_before_and_after() -> None:
    stream = "robot_telemetry"
    at = datetime(2026, 11, 21, 8, 30, 15, tzinfo=UTC)
    floor = listing_floor(stream, "1", at)
    after = [
        at,
        at + timedelta(seconds=1),
        at + timedelta(minutes=29, seconds=44),  # 08:59:59, same folder
        at + timedelta(minutes=30),  # next hour folder
        at + timedelta(days=40),  # next month
    ]
    before = [
        at - timedelta(seconds=1),
        at - timedelta(minutes=30, seconds=15),  # 08:00:00
        at - timedelta(minutes=30, seconds=16),  # 07:59:59, previous folder
        at - timedelta(days=400),
    ]
    # object ids chosen to sort both low and high
    for oid in ("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"):
        for t in after:
            key = object_key(stream, t, object_id=oid)
            assert floor < key, (floor, key)
        for t in before:
            key = object_key(stream, t, object_id=oid)
            assert key < floor, (key, floor)


def test_hours_between() -> None:
    start = datetime(2026, 11, 21, 22, 40, tzinfo=UTC)
    end = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    assert hours_between(start, end) == [
        datetime(2026, 11, 21, 22, tzinfo=UTC),
        datetime(2026, 11, 21, 23, tzinfo=UTC),
        datetime(2026, 11, 22, 0, tzinfo=UTC),
    ]
    assert hours_between(end, end) == []
