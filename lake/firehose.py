"""Kinesis Firehose's default S3 key layout, and the hourly partitions derived from it.

    <stream>/YYYY/MM/DD/HH/<stream>-<version>-YYYY-MM-DD-HH-MM-SS-<uuid>[.gz]

The folder hour is the UTC arrival hour; Dagster's hourly partition keys look like
`2026-11-21-08:00`.
"""

from __future__ import annotations

import re
import uuid as uuid_lib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"
_NAME_RE = re.compile(
    r"^(?P<stream>.+)-(?P<version>[^-/]+)-"
    r"(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-(?P<suffix>[^/]+)$"
)
# S3 keys are not paths: `HH//name` (an empty folder name, as some writers make) is a
# name in the hour folder like any other.
_HOUR_DIR_RE = re.compile(r"^(?P<stream>[^/]+)/(\d{4})/(\d{2})/(\d{2})/(\d{2})/+[^/]+$")


@dataclass(frozen=True)
class LandingKey:
    key: str
    stream: str
    arrival_hour: datetime  # UTC, truncated to the hour (from the folders)
    written_at: datetime | None  # UTC, from the file name, when it follows Firehose's pattern
    version: str | None


def hour_prefix(stream: str, hour: datetime) -> str:
    """The folder of one arrival hour, e.g. `robot_telemetry/2026/11/21/08/`."""
    return f"{stream}/{hour:%Y/%m/%d/%H}/"


def object_key(
    stream: str,
    written_at: datetime,
    *,
    version: int | str = 1,
    object_id: str | None = None,
    gzip: bool = True,
) -> str:
    """The key Firehose would write for a delivery at `written_at` (UTC)."""
    written_at = written_at.astimezone(UTC)
    oid = object_id or str(uuid_lib.uuid4())
    name = f"{stream}-{version}-{written_at:%Y-%m-%d-%H-%M-%S}-{oid}"
    return hour_prefix(stream, written_at) + name + (".gz" if gzip else "")


def parse_key(key: str) -> LandingKey | None:
    """Split a landing key into stream, arrival hour and write time; None if it is not one."""
    m = _HOUR_DIR_RE.match(key)
    if not m:
        return None
    stream = m.group("stream")
    try:
        hour = datetime(*(int(g) for g in m.groups()[1:5]), tzinfo=UTC)
    except ValueError:
        return None
    name = key.rsplit("/", 1)[1]
    n = _NAME_RE.match(name)
    written_at = version = None
    if n:
        try:
            written_at = datetime.strptime(n.group("ts"), "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
            version = n.group("version")
        except ValueError:
            written_at = None
    return LandingKey(key, stream, hour, written_at, version)


def is_folder_marker(key: str, size: int) -> bool:
    """An S3 console "folder": a 0-byte object whose key ends in '/'. Not data."""
    return size == 0 and key.endswith("/")


def partition_key(hour: datetime) -> str:
    return hour.astimezone(UTC).strftime(PARTITION_FORMAT)


def parse_partition_key(key: str) -> datetime:
    """`2026-11-21-08:00` -> 2026-11-21 08:00 UTC. Raises ValueError on anything else."""
    return datetime.strptime(key, PARTITION_FORMAT).replace(tzinfo=UTC)


def listing_floor(stream: str, version: str, at: datetime) -> str:
    """A key that sorts just before every key of `stream`/`version` written at or after `at`.

    Used as S3 `StartAfter` so a sensor lists only the recent window, not the bucket.
    """
    at = at.astimezone(UTC)
    return f"{hour_prefix(stream, at)}{stream}-{version}-{at:%Y-%m-%d-%H-%M-%S}"


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Every UTC hour from `start`'s hour up to (not including) `end`."""
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    out = []
    while hour < end:
        out.append(hour)
        hour += timedelta(hours=1)
    return out
