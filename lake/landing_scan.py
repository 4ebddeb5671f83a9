"""Finding new landing objects without listing the whole bucket.

Firehose keys sort by write time within a stream, so a cursor remembers the newest key
seen and lists from just before it (S3 `StartAfter`). Objects can land slightly out of
order, so each listing starts `lookback` earlier than the newest write time and skips
the keys already seen in that window (kept in the cursor).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lake.firehose import LandingKey, listing_floor, parse_key
from lake.storage import ObjectInfo, Storage

DEFAULT_LOOKBACK = timedelta(minutes=2)


MAX_REMEMBERED_STRAYS = 1000


@dataclass
class ScanCursor:
    last_key: str | None = None
    recent: list[str] = field(default_factory=list)  # keys seen inside the lookback window
    strays: list[str] = field(default_factory=list)  # non-Firehose keys already reported

    def to_json(self) -> str:
        return json.dumps({"last_key": self.last_key, "recent": self.recent, "strays": self.strays})

    @classmethod
    def from_json(cls, text: str | None) -> ScanCursor:
        if not text:
            return cls()
        doc = json.loads(text)
        return cls(doc.get("last_key"), list(doc.get("recent", [])), list(doc.get("strays", [])))


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
) -> ScanResult:
    start_after = _start_after(stream, cursor, lookback)
    recent = set(cursor.recent)
    strays = set(cursor.strays)
    new: list[tuple[ObjectInfo, LandingKey]] = []
    unparsable: list[str] = []
    listed = 0
    truncated = False
    last_key = cursor.last_key
    for info in storage.list(f"{stream}/", start_after=start_after):
        listed += 1
        if info.key in recent:
            continue
        if len(new) >= max_new:
            truncated = True
            break
        parsed = parse_key(info.key)
        if parsed is None or parsed.stream != stream:
            if info.key not in strays:
                unparsable.append(info.key)
        else:
            new.append((info, parsed))
            if parsed.written_at is not None:  # a stray key must not become the cursor
                last_key = max(last_key or "", info.key)
        recent.add(info.key)
    next_cursor = _next_cursor(last_key, recent, lookback)
    next_cursor.strays = sorted(strays | set(unparsable))[-MAX_REMEMBERED_STRAYS:]
    return ScanResult(new, unparsable, next_cursor, listed, truncated)


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
