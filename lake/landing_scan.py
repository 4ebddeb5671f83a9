"""Finding new landing objects without listing the whole bucket.

Firehose keys sort by write time within a stream, so a scan lists from a `floor` key
(S3 `StartAfter`) to the end of the stream's prefix. The floor trails the newest
Firehose key seen by `lookback` (objects land slightly out of order), and the cursor
remembers which keys above the floor it has seen already (`recent`), so a key is reported
once. Two rules keep every scan moving however much lands at once:

- `recent` holds at most `max_recent` keys (as 8-byte hashes), fewer than a scan may
  read (`max_listed`): when it would hold more, the floor rises past the oldest ones.
  So a scan re-reads at most `max_recent` known keys and always has budget left for new
  ones; the cursor stays under ~64 KB however big the burst.
- A key at or below the floor is never listed again by this scan. Objects that land
  there later (named before keys already seen) are found by the late-folder check below
  or, failing that, by reconciliation (lake.reconcile), which compares whole hour folders,
  the current one included, with the cleaning ledger. Raising the floor loses nothing.

Objects can also land late into an older hour folder (a Firehose retry, an upload of
old files). The cursor keeps, for each of the last `late_hours` hour folders, the largest
key seen in it, and each scan lists one of those folders after that key, in turn.

A scan's cost is one list call per 1,000 keys after the floor plus one for the late
folder; `max_new` and `max_listed` bound it, and the next scan continues where it stopped.

A run of an hour the sensor started lists the hour the same way (`hour_listing`): from a
floor `lookback` before the newest Firehose key the hour's previous run processed (its
`mark`, lake.hour_totals.listing_mark), so its listing holds the objects of the last
minutes, not the whole hour. What the floor leaves out (an object overwritten under an
older key, one landing late with an older name, a key outside Firehose's naming that sorts
low) is found by the runs that list the hour whole: every run not started by a landing
sensor (reconciliation, backfills, the UI, full refreshes) and every hour's run after its
totals were compacted (lake.hour_totals: one run in COMPACT_AT).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lake.firehose import LandingKey, hour_prefix, listing_floor, parse_key
from lake.settings import DEFAULTS
from lake.storage import ObjectInfo, Storage

DEFAULT_LOOKBACK = timedelta(minutes=2)
MAX_LISTED = 20_000  # keys a scan reads at most (20 list calls): a sensor tick stays short
# Known keys above the floor the cursor remembers (LANDING_RECENT_KEYS): ~11 bytes of
# cursor each. Must stay well below MAX_LISTED so a scan always has budget for new keys.
MAX_REMEMBERED_STRAYS = 1000
_HOUR_FORMAT = "%Y-%m-%dT%H"
_DIGEST = 8


def key_digest(key: str) -> bytes:
    """8 bytes that stand for a key in the cursor. A collision would make the scan skip a
    new key as known: about 1 in 2**64/max_recent per key, and reconciliation finds it."""
    return hashlib.blake2b(key.encode(), digest_size=_DIGEST).digest()


def _pack(digests: set[bytes]) -> str:
    return base64.b64encode(b"".join(sorted(digests))).decode()


def _unpack(text: str) -> set[bytes]:
    raw = base64.b64decode(text)
    return {raw[i : i + _DIGEST] for i in range(0, len(raw), _DIGEST)}


@dataclass
class ScanCursor:
    last_key: str | None = None  # newest key with a Firehose write time seen
    floor: str | None = None  # the listing starts after it; never moves back
    recent: set[bytes] = field(default_factory=set)  # digests of keys seen above the floor
    strays: set[bytes] = field(default_factory=set)  # digests of non-layout keys reported
    hour_marks: dict[str, str] = field(default_factory=dict)  # hour -> largest key seen in it
    late_turn: int = 0  # which of the late window's folders the next scan lists

    def to_json(self) -> str:
        return json.dumps(
            {
                "last_key": self.last_key,
                "floor": self.floor,
                "recent": _pack(self.recent),
                "strays": _pack(self.strays),
                "hour_marks": self.hour_marks,
                "late_turn": self.late_turn,
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> ScanCursor:
        if not text:
            return cls()
        doc = json.loads(text)
        recent, strays = doc.get("recent", ""), doc.get("strays", "")
        if not isinstance(recent, str) or not isinstance(strays, str):
            # a cursor of the earlier layout (full keys, no floor): start over from its
            # newest key; the lookback window is listed again once (the ledger skips repeats)
            return cls(last_key=doc.get("last_key"), hour_marks=dict(doc.get("hour_marks", {})))
        return cls(
            doc.get("last_key"),
            doc.get("floor"),
            _unpack(recent),
            _unpack(strays),
            dict(doc.get("hour_marks", {})),
            int(doc.get("late_turn", 0)),
        )


@dataclass
class ScanResult:
    new: list[tuple[ObjectInfo, LandingKey]]
    unparsable: list[str]  # keys not in the Firehose layout, each reported once
    cursor: ScanCursor
    listed: int  # keys read from storage, the cost of the tick
    truncated: bool  # stopped at max_new or max_listed; call again for the rest

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
    late_hours: int = DEFAULTS.landing_late_hours,
    max_recent: int = DEFAULTS.landing_recent_keys,
) -> ScanResult:
    if max_recent >= max_listed:
        raise ValueError(f"max_recent ({max_recent}) must be below max_listed ({max_listed})")
    scan = _Scan(stream, cursor, max_new, max_listed)
    start = cursor.floor
    if start is None:
        start = _time_floor(stream, cursor.last_key, lookback)
    scan.read(storage.list(f"{stream}/", start_after=start))
    late_turn = cursor.late_turn
    if not scan.truncated and late_hours > 0 and scan.last_key is not None:
        newest = parse_key(scan.last_key)
        assert newest is not None
        late = [newest.arrival_hour - timedelta(hours=n) for n in range(late_hours, -1, -1)]
        hour = late[late_turn % len(late)]
        mark = scan.marks.get(f"{hour:{_HOUR_FORMAT}}")
        scan.read(storage.list(hour_prefix(stream, hour), start_after=mark), late=True)
        late_turn += 1
        oldest = f"{late[0]:{_HOUR_FORMAT}}"
        scan.marks = {h: k for h, k in scan.marks.items() if h >= oldest}
    floor = max(
        (f for f in (start, _time_floor(stream, scan.last_key, lookback)) if f is not None),
        default=None,
    )
    next_cursor = scan.next_cursor(floor, cursor.recent, max_recent)
    next_cursor.late_turn = late_turn
    return ScanResult(scan.new, scan.unparsable, next_cursor, scan.listed, scan.truncated)


class _Scan:
    """The keys one scan has read: what is new, what is stray, the marks per hour."""

    def __init__(self, stream: str, cursor: ScanCursor, max_new: int, max_listed: int) -> None:
        self.stream, self.max_new, self.max_listed = stream, max_new, max_listed
        self.known = set(cursor.recent)
        self.strays = set(cursor.strays)
        self.marks = dict(cursor.hour_marks)
        self.last_key = cursor.last_key
        self.read_keys: list[tuple[str, bytes]] = []  # layout keys read by this scan
        self.new: list[tuple[ObjectInfo, LandingKey]] = []
        self.unparsable: list[str] = []
        self.listed = 0
        self.truncated = False

    def read(self, listing: Iterator[ObjectInfo], late: bool = False) -> None:
        for info in listing:
            if self.listed >= self.max_listed or len(self.new) >= self.max_new:
                self.truncated = not late  # the late folder is listed again in its turn
                return
            self.listed += 1
            digest = key_digest(info.key)
            parsed = parse_key(info.key)
            if parsed is None or parsed.stream != self.stream:
                if digest not in self.strays:
                    self.unparsable.append(info.key)
                    self.strays.add(digest)
                continue
            self.read_keys.append((info.key, digest))
            if digest in self.known:
                continue
            self.known.add(digest)
            self.new.append((info, parsed))
            if parsed.written_at is not None:  # a stray key must not become the cursor
                self.last_key = max(self.last_key or "", info.key)
            hour = f"{parsed.arrival_hour:{_HOUR_FORMAT}}"
            self.marks[hour] = max(self.marks.get(hour, ""), info.key)

    def next_cursor(self, floor: str | None, before: set[bytes], max_recent: int) -> ScanCursor:
        """Remember the keys above the floor; past `max_recent`, raise the floor over the
        oldest ones. The floor may only rise to a key at or below the newest Firehose key:
        keys above it (hand-named files, sorting after Firehose names) are where new
        objects still land."""
        read = sorted({k: d for k, d in self.read_keys if floor is None or k > floor}.items())
        unread = set()
        if self.truncated:  # keys seen earlier beyond where this scan stopped
            unread = before - {d for _, d in self.read_keys}
        room = max_recent - len(unread)
        if len(read) > room:
            cut = len(read) - max(room, 0)
            eligible = [i for i in range(cut) if read[i][0] <= (self.last_key or "")]
            if eligible:
                floor = read[eligible[-1]][0]
                read = read[eligible[-1] + 1 :]
        recent = {d for _, d in read} | unread
        if len(recent) > max_recent:
            # only hand-named keys above the newest Firehose key are left to drop; one
            # dropped here is reported again (its hour's run skips it: it is in the ledger)
            recent = set(sorted(recent)[:max_recent])
        strays = set(sorted(self.strays)[:MAX_REMEMBERED_STRAYS])
        return ScanCursor(self.last_key, floor, recent, strays, dict(sorted(self.marks.items())))


def hour_listing(
    landing: Storage,
    stream: str,
    hour: datetime,
    mark: str | None,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> list[ObjectInfo]:
    """The objects of an arrival hour named from `lookback` before `mark` (a Firehose key
    of the hour) on; every object of the hour when `mark` is None."""
    return list(
        landing.list(hour_prefix(stream, hour), start_after=hour_floor(hour, mark, lookback))
    )


def hour_floor(hour: datetime, mark: str | None, lookback: timedelta) -> str | None:
    """A key of the hour's folder just before every key named `lookback` before `mark` (or
    `mark` itself, when that is lower); None (no floor) unless `mark` is a Firehose key."""
    parsed = parse_key(mark) if mark is not None else None
    if mark is None or parsed is None or parsed.written_at is None or parsed.version is None:
        return None
    at = parsed.written_at - lookback
    folder = hour_prefix(parsed.stream, hour)
    return min(mark, f"{folder}{parsed.stream}-{parsed.version}-{at:%Y-%m-%d-%H-%M-%S}")


def _time_floor(stream: str, last_key: str | None, lookback: timedelta) -> str | None:
    """A key just before every key written `lookback` before the newest one."""
    if last_key is None:
        return None
    parsed = parse_key(last_key)
    if parsed is None or parsed.written_at is None or parsed.version is None:
        return last_key
    return min(last_key, listing_floor(stream, parsed.version, parsed.written_at - lookback))
