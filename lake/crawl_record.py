"""A partition's crawl record: the objects its stats count, key -> [ETag, size, records].

Stored as two JSON lines (`layout.crawl_record`):

1. a header: the entries' sums (objects, bytes, records) and their digest index
   (lake.digest_index: which keys, in which version);
2. the entries themselves.

A bounded crawl (a landing sensor's run: a few new objects) needs to know which of its
listed objects the record holds in their version, and the sums of all the others: the
header answers both without parsing the entries, and a crawl that only adds objects
appends its entries to the second line's text instead of parsing and writing it again.
The entries are parsed only by a crawl of the whole hour, or when a crawled object
replaces an entry (an object overwritten under its key: its old counts leave the sums).

A record of the first format (one JSON object, no header) is read whole, and written back
in this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from lake.digest_index import DigestIndex
from lake.storage import ObjectNotFound, Storage

Entry = list  # [ETag, size, records]


@dataclass
class Record:
    sums: list[int]  # objects, bytes, records over every entry
    index: DigestIndex
    raw: bytes  # the entries' JSON text
    _entries: dict[str, Entry] | None = field(default=None, repr=False)

    def holds(self, key: str, etag: str, size: int) -> bool:
        """Whether the record holds `key` in this version."""
        return self.index.holds(key, etag, size)

    def may_hold_key(self, key: str) -> bool:
        return self.index.may_hold_key(key)

    def entries(self) -> dict[str, Entry]:
        """Every entry (parsed once, on demand)."""
        if self._entries is None:
            self._entries = _valid(json.loads(self.raw))
        return self._entries


def read_record(lake: Storage, key: str) -> Record:
    """The record at `key`; empty when there is none or it is not a record (its objects
    are then sampled again)."""
    try:
        data = lake.read(key)
    except ObjectNotFound:
        return of_entries({})
    try:
        head, newline, raw = data.partition(b"\n")
        if not newline:  # the first format: the entries alone
            return of_entries(_valid(json.loads(head)))
        header = json.loads(head)
        return Record([int(n) for n in header["sums"]], DigestIndex.unpacked(header), raw)
    except (ValueError, KeyError, TypeError):
        return of_entries({})


def of_entries(entries: dict[str, Entry]) -> Record:
    """A record of exactly `entries`."""
    index = DigestIndex.of((k, v[0], v[1]) for k, v in entries.items())
    return Record(_sums(entries.values()), index, _dumps(entries), dict(entries))


def with_added(record: Record, added: dict[str, Entry]) -> Record:
    """`record` with `added`'s entries, replacing its entries of the same keys. Only new
    keys: the entries' text is appended to, not parsed."""
    if any(record.may_hold_key(k) for k in added):
        return of_entries(record.entries() | added)
    if not added:
        return record
    raw = _dumps(added)
    joined = raw if record.raw.strip() == b"{}" else record.raw.rstrip()[:-1] + b"," + raw[1:]
    index = record.index.added((k, v[0], v[1]) for k, v in added.items())
    sums = [a + b for a, b in zip(record.sums, _sums(added.values()), strict=True)]
    entries = None if record._entries is None else record._entries | added
    return Record(sums, index, joined, entries)


def without(record: Record, keys: Iterable[str]) -> list[int]:
    """The record's sums without the entries of `keys` (those it holds)."""
    gone = [k for k in keys if record.may_hold_key(k)]
    if not gone:
        return list(record.sums)
    entries = record.entries()
    dropped = _sums(entries[k] for k in gone if k in entries)
    return [a - b for a, b in zip(record.sums, dropped, strict=True)]


def record_bytes(record: Record) -> bytes:
    header = {"sums": record.sums, **record.index.packed()}
    return json.dumps(header, separators=(",", ":")).encode() + b"\n" + record.raw


def _valid(entries: object) -> dict[str, Entry]:
    if not isinstance(entries, dict):
        raise ValueError("a crawl record is a JSON object")
    return {k: v for k, v in entries.items() if isinstance(v, list) and len(v) == 3}


def _sums(entries: Iterable[Entry]) -> list[int]:
    sums = [0, 0, 0]
    for _, size, records in entries:
        sums[0] += 1
        sums[1] += int(size)
        sums[2] += int(records)
    return sums


def _dumps(entries: dict[str, Entry]) -> bytes:
    return json.dumps(entries, separators=(",", ":")).encode()
