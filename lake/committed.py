"""What readers may see of the cleaned layers: files named by a committed ledger entry.

A cleaning run writes an object's files first and its manifest (lake.ledger) last, so
files of a run killed mid-way sit in the dt= folders with no manifest naming them until a
re-run commits them. A reader lists the day's folder and keeps a file only if a manifest
of the object it came from lists it. A file's name is its object's output name, which
starts with the arrival hour, so the ledger is one listing per arrival hour and one GET
per object (both cached across days), never a glob.

A cleaned file shared by several objects (layout.shared_file, with tables only) has no
output name: its sharers are the distinct `_source_key` and `_arrival_hour` of its rows
(read from the file), and a row is committed when a manifest of its sharer names the
file with a range holding it. All rows committed: the file is committed whole. Some
(a sharer cleaned again since: the table's copy-on-write took its rows out, its new
manifest no longer names the file): the file is only partly committed, never to be read
or registered whole (`partly_of_days` gives its committed ranges).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import layout
from lake.ledger import (
    Ledger,
    SharedPart,
    manifests_listed_as,
    name_hour,
    output_name,
    output_name_of_file,
    read_ledger,
    read_manifest,
    shared_parts,
)
from lake.storage import ObjectNotFound, Storage

SHARER_COLUMNS = ["_source_key", "_arrival_hour"]


@dataclass(frozen=True)
class SharedRows:
    """The committed rows of a shared file: `(first, rows)` ranges in file order, merged;
    `whole` when they are every row of the file."""

    file: str
    ranges: tuple[tuple[int, int], ...]
    whole: bool


@dataclass(frozen=True)
class _Entry:
    """What a manifest says of where its object's rows are."""

    source_key: object
    files: frozenset[str]
    shared: tuple[SharedPart, ...]

    @classmethod
    def of(cls, doc: Any) -> _Entry | None:
        if not isinstance(doc, dict):
            return None  # not a manifest, or gone meanwhile (replaced by a newer one)
        files = frozenset(f for f in doc.get("files") or [] if isinstance(f, str))
        shared: list[SharedPart] = []
        with contextlib.suppress(ValueError):  # entries not as written: they name no rows
            shared = shared_parts(doc)
        return cls(doc.get("source_key"), files, tuple(shared))


class CommittedFiles:
    """Committed files of one stream; ledgers and manifests read once per instance."""

    def __init__(self, lake: Storage, stream: str) -> None:
        self.lake, self.stream = lake, stream
        self._ledgers: dict[datetime, Ledger] = {}
        self._entries: dict[str, list[_Entry]] = {}  # output name -> its manifests
        self._shared: dict[str, SharedRows] = {}  # shared file -> its committed rows
        # (layer, days) -> the Parquet keys listed: of_days and partly_of_days list once
        self._listings: dict[tuple[str, tuple[date, ...] | None], list[str]] = {}

    def of_days(self, layer: str, days: list[date] | None) -> list[str]:
        """Keys of `<layer>/<stream>/dt=<day>/` (every day when None) that a committed
        manifest lists, or whose rows are all committed (a shared file), in key order."""
        return [k for k in self._listed(layer, days) if self.is_committed(k)]

    def partly_of_days(self, layer: str, days: list[date] | None) -> list[SharedRows]:
        """The shared files of those days with some rows committed but not all."""
        found = [self.shared_rows(k) for k in self._listed(layer, days) if layout.is_shared_file(k)]
        return [s for s in found if s.ranges and not s.whole]

    def is_committed(self, key: str) -> bool:
        if layout.is_shared_file(key):
            return self.shared_rows(key).whole
        name = output_name_of_file(key.rsplit("/", 1)[-1])
        return any(key in e.files for e in self._entries_of(name))

    def shared_rows(self, key: str) -> SharedRows:
        """The rows of shared file `key` its sharers' manifests name (none when it is gone)."""
        if key not in self._shared:
            self._shared[key] = self._read_shared(key)
        return self._shared[key]

    def _listed(self, layer: str, days: list[date] | None) -> list[str]:
        asked = (layer, None if days is None else tuple(days))
        if asked not in self._listings:
            if days is None:
                prefixes = [layout.layer_folder(layer, self.stream)]
            else:
                prefixes = [layout.layer_day_folder(layer, self.stream, d) for d in days]
            listed = (o.key for p in prefixes for o in self.lake.list(p))
            self._listings[asked] = [k for k in listed if k.endswith(".parquet")]
        return self._listings[asked]

    def _read_shared(self, key: str) -> SharedRows:
        try:
            rows = pq.read_table(io.BytesIO(self.lake.read(key)), columns=SHARER_COLUMNS)
        except (ObjectNotFound, pa.ArrowException):  # gone, or not a cleaned Parquet file
            return SharedRows(key, (), False)
        sources = rows.column("_source_key")
        ranges = set()
        for source, hour in _sharers(rows):
            for entry in self._entries_of(output_name(hour, source)):
                ranges |= _ranges_of(entry, key, source, sources)
        merged = _merged(sorted(ranges))
        return SharedRows(key, merged, merged == ((0, rows.num_rows),))

    def _entries_of(self, name: str) -> list[_Entry]:
        """The manifests of output `name` (cached)."""
        if name not in self._entries:
            entries = (_Entry.of(self._read(k)) for k in self._manifests_named(name))
            self._entries[name] = [e for e in entries if e is not None]
        return self._entries[name]

    def _manifests_named(self, name: str) -> list[str]:
        """From the arrival hour's ledger (one listing, cached), or for a name that does
        not start with an hour, from a listing of the name's own manifests."""
        try:
            hour = name_hour(name)
        except ValueError:
            return manifests_listed_as(self.lake, self.stream, name)
        if hour not in self._ledgers:
            self._ledgers[hour] = read_ledger(self.lake, self.stream, hour)
        return self._ledgers[hour].manifests_named(name)

    def _read(self, manifest_key: str) -> Any:
        try:
            return read_manifest(self.lake, manifest_key)
        except ValueError:
            return None


def _sharers(rows: pa.Table) -> list[tuple[str, datetime]]:
    """The distinct (source key, arrival hour) of a shared file's rows."""
    pairs = rows.group_by(SHARER_COLUMNS, use_threads=False).aggregate([])
    found = zip(pairs["_source_key"].to_pylist(), pairs["_arrival_hour"].to_pylist(), strict=True)
    return [(s, h) for s, h in found if isinstance(s, str) and isinstance(h, datetime)]


def _ranges_of(
    entry: _Entry, key: str, source: str, sources: pa.ChunkedArray
) -> set[tuple[int, int]]:
    """The ranges of shared file `key` the manifest names whose rows are all `source`'s
    (a range that holds another object's rows counts none)."""
    if entry.source_key != source:
        return set()
    parts = [p for p in entry.shared if p.file == key and p.rows]
    return {
        (p.first, p.rows)
        for p in parts
        if p.first + p.rows <= len(sources)
        and pc.all(pc.equal(sources.slice(p.first, p.rows), source)).as_py()
    }


def _merged(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted ranges with the ones that touch or overlap joined."""
    merged: list[tuple[int, int]] = []
    for first, rows in ranges:
        if merged and first <= merged[-1][0] + merged[-1][1]:
            start, count = merged[-1]
            merged[-1] = (start, max(count, first + rows - start))
        else:
            merged.append((first, rows))
    return tuple(merged)
