"""Finding new landing objects without listing the whole bucket.

Firehose keys sort by write time within a stream, so a cursor remembers the newest key
seen and lists from just before it (S3 `StartAfter`). Objects can land slightly out of
order, so each listing starts `lookback` earlier than the newest write time and skips
the keys already seen in that window (kept in the cursor).

Objects can also land late into an older hour folder (a Firehose retry, an upload of
old files). The cursor keeps, for each of the last `late_hours` hour folders, the largest
key seen in it, and each scan lists one of those folders after that key, in turn: a late
object that sorts after its folder's mark is found within `late_hours` scans, at one
list call a scan. Anything else (an object named before its folder's mark, or older than
the window) is found by reconciliation (lake.reconcile), which compares whole hour
folders with the cleaning ledger now and then.

A scan's cost is one list call per 1,000 keys after the cursor plus one for the late
folder; `max_new` and `max_listed` bound it, and the next scan continues where it stopped.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lake.firehose import LandingKey, hour_prefix, listing_floor, parse_key
from lake.storage import ObjectInfo, Storage

DEFAULT_LOOKBACK = timedelta(minutes=2)
LATE_HOURS = int(os.environ.get("LANDING_LATE_HOURS", "6"))  # older folders checked in turn
MAX_LISTED = 20_000  # keys a scan reads at most (20 list calls): a sensor tick stays short
MAX_REMEMBERED_STRAYS = 1000
_HOUR_FORMAT = "%Y-%m-%dT%H"


@dataclass
class ScanCursor:
    last_key: str | None = None
    recent: list[str] = field(default_factory=list)  # keys seen inside the lookback window
    strays: list[str] = field(default_factory=list)  # non-Firehose keys already reported
    hour_marks: dict[str, str] = field(default_factory=dict)  # hour -> largest key seen in it
    late_turn: int = 0  # which of the late window's folders the next scan lists

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_key": self.last_key,
                "recent": self.recent,
                "strays": self.strays,
                "hour_marks": self.hour_marks,
                "late_turn": self.late_turn,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> ScanCursor:
        if not text:
            return cls()
        doc = json.loads(text)
        return cls(
            doc.get("last_key"),
            list(doc.get("recent", [])),
            list(doc.get("strays", [])),
            dict(doc.get("hour_marks", {})),
            int(doc.get("late_turn", 0)),
        )


@dataclass
class ScanResult:
    new: list[tuple[ObjectInfo, LandingKey]]
    unparsable: list[str]  # keys not in the Firehose layout, each reported once
    cursor: ScanCursor
    listed: int  # keys read from storage, the cost of the tick
    truncated: bool  # stopped at max_new; call again for the rest

    def by_hour(self) -> dict[datetime, list[ObjectInfo]]:
        hours: dict[datetime, list[ObjectInfo]] = defaultdict(list)
        for info, parsed in self.new:
            hours[parsed.arrival_hour].append(info)
        return dict(sorted(hours.items()))


def scan_new_objects(
    storage: Storage,
    stream: str,
    cursor: ScanCursor,
    *,
    lookback: timedelta = DEFAULT_LOOKBACK,
    max_new: int = 5000,
    max_listed: int = MAX_LISTED,
    late_hours: int = LATE_HOURS,
) -> ScanResult:
    scan = _Scan(stream, cursor, max_new, max_listed)
    scan.read(storage.list(f"{stream}/", start_after=_start_after(stream, cursor, lookback)))
    late_turn = cursor.late_turn
    if not scan.truncated and late_hours > 0 and scan.last_key is not None:
        newest = parse_key(scan.last_key)
        assert newest is not None
        late = [newest.arrival_hour - timedelta(hours=n) for n in range(late_hours, -1, -1)]
        hour = late[late_turn % len(late)]
        mark = scan.marks.get(f"{hour:{_HOUR_FORMAT}}")
        scan.read(storage.list(hour_prefix(stream, hour), start_after=mark))
        late_turn += 1
        oldest = f"{late[0]:{_HOUR_FORMAT}}"
        scan.marks = {h: k for h, k in scan.marks.items() if h >= oldest}
    next_cursor = _next_cursor(scan.last_key, scan.recent, lookback)
    next_cursor.strays = sorted(scan.strays | set(scan.unparsable))[-MAX_REMEMBERED_STRAYS:]
    next_cursor.hour_marks = dict(sorted(scan.marks.items()))
    next_cursor.late_turn = late_turn
    return ScanResult(scan.new, scan.unparsable, next_cursor, scan.listed, scan.truncated)


class _Scan:
    """The keys one scan has read: what is new, what is stray, the marks per hour."""

    def __init__(self, stream: str, cursor: ScanCursor, max_new: int, max_listed: int) -> None:
        self.stream, self.max_new, self.max_listed = stream, max_new, max_listed
        self.recent = set(cursor.recent)
        self.strays = set(cursor.strays)
        self.marks = dict(cursor.hour_marks)
        self.last_key = cursor.last_key
        self.new: list[tuple[ObjectInfo, LandingKey]] = []
        self.unparsable: list[str] = []
        self.listed = 0
        self.truncated = False

    def read(self, listing: Iterator[ObjectInfo]) -> None:
        for info in listing:
            if info.key in self.recent:
                self.listed += 1
                continue
            if len(self.new) >= self.max_new or self.listed >= self.max_listed:
                self.truncated = True
                return
            self.listed += 1
            parsed = parse_key(info.key)
            if parsed is None or parsed.stream != self.stream:
                if info.key not in self.strays:
                    self.unparsable.append(info.key)
            else:
                self.new.append((info, parsed))
                if parsed.written_at is not None:  # a stray key must not become the cursor
                    self.last_key = max(self.last_key or "", info.key)
                hour = f"{parsed.arrival_hour:{_HOUR_FORMAT}}"
                self.marks[hour] = max(self.marks.get(hour, ""), info.key)
            self.recent.add(info.key)


def _start_after(stream: str, cursor: ScanCursor, lookback: timedelta) -> str | None:
    if cursor.last_key is None:
        return None
    parsed = parse_key(cursor.last_key)
    if parsed is None or parsed.written_at is None or parsed.version is None:
        return cursor.last_key
    return min(cursor.last_key, listing_floor(stream, parsed.version, parsed.written_at - lookback))


def _next_cursor(last_key: str | None, seen: set[str], lookback: timedelta) -> ScanCursor:
    if last_key is None:
        return ScanCursor()
    newest = parse_key(last_key)
    if newest is None or newest.written_at is None:
        return ScanCursor(last_key, [])
    floor = newest.written_at - lookback
    floor_hour = floor.replace(minute=0, second=0, microsecond=0)
    keep = []
    for key in seen:
        parsed = parse_key(key)
        if parsed is None:
            continue
        if parsed.written_at is not None and parsed.written_at >= floor:
            keep.append(key)
        elif parsed.written_at is None and parsed.arrival_hour >= floor_hour:
            keep.append(key)  # no write time, but its folder is still listed: seen already
    return ScanCursor(last_key, sorted(keep))
