"""Simulated time: integer milliseconds since the Unix epoch, and the formats records use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


def as_utc(dt: datetime) -> datetime:
    """`dt` in UTC; a naive datetime is taken to be UTC already."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def to_ms(dt: datetime) -> int:
    return (as_utc(dt) - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def iso_ms(ms: int) -> str:
    """`2026-11-21T08:01:02.123Z`"""
    return f"{from_ms(ms):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def iso_s(ms: int) -> str:
    """`2026-11-21T08:01:02Z` (CloudTrail's precision)."""
    return f"{from_ms(ms):%Y-%m-%dT%H:%M:%S}Z"


def hour_of_day(ms: int) -> float:
    return (ms % DAY_MS) / HOUR_MS
