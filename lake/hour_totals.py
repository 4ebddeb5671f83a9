"""An arrival hour's running totals: every object of the hour the ledger records as
processed, whichever runs processed them.

Each object has an entry (the ETag and size it was processed in, its counts, its files and
the shared files it has rows in: the hour's totals count a shared file once), keyed by its
source key, so recording a manifest again (a re-run, a full refresh, an object
re-cleaned in a new version, two runs racing on one object) replaces the object's entry
instead of adding to the sums. The entries are kept in one document per hour
(`layout.hour_totals_doc`) plus small delta documents beside it (`<hour>/<time>-<id>.json`):

- a cleaning run appends one delta with its manifests' entries right after writing them
  (a plain write of a new key: O(batch), whatever the hour holds); the hour's first run
  writes the document itself instead (seeded, then its entries: O(batch) too);
- reading folds the deltas the document has not folded yet onto it, in name (write) order;
- once an hour holds COMPACT_AT deltas, the run that wrote the last one folds them into the
  document (compare-and-swap: the document names the deltas it has folded, so a delta is
  applied once however runs race or die) and then deletes them.

The totals count a landed object only when its entry is of its current version (ETag and
size). An hour without a document (processed before the document existed, or its first
run) is seeded from its manifests once. An object the ledger holds but the entries miss (a
run killed between its manifests and its delta) is found by one `exists` a landed object
the entries do not know, and added in a delta of its own.

`listing_mark` gives a run a bound for its listing of the hour (lake.landing_scan): the
newest Firehose key the newest delta recorded. With no delta left (the hour's first run, or
right after a compaction: every COMPACT_AT runs) there is no mark and the hour is listed
whole.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from lake import layout
from lake.digest_index import DigestIndex
from lake.firehose import is_folder_marker, parse_key
from lake.ledger import manifest_hour, manifest_of, read_ledger, read_manifest, shared_parts
from lake.storage import (
    ConcurrentUpdateError,
    ObjectInfo,
    ObjectNotFound,
    Storage,
    compare_and_swap,
)

# manifests read at once when an hour is seeded: on S3 each read is a round trip
READERS = 16
# deltas an hour keeps before a run folds them into the document: a read reads at most
# this many small documents; the document (an entry per object) is rewritten once per
# COMPACT_AT runs instead of every run
COMPACT_AT = 32
FILES_KEPT = 50  # files named in the document's header (the asset shows as many)
# bytes of the document first read for its header (~22 bytes an object: its digests)
HEADER_READ = 256 << 10
RACES = 5  # compactions a fold may lose to racing ones before it gives up
_COUNTS = ("records_in", "records_cleaned", "records_quarantined", "duplicates_dropped")
_LEGACY_SUFFIX = ".parquet.json"  # a manifest of the old naming (no version)


@dataclass
class HourTotals:
    objects: int = 0  # processed in their current version
    objects_pending: int = 0  # landed in the hour, not processed yet
    bytes_in: int = 0
    records_in: int = 0
    records_cleaned: int = 0
    records_quarantined: int = 0
    duplicates_dropped: int = 0
    # cleaned and quarantine files, lake keys (a shared file once): all of them, or the
    # first FILES_KEPT when the totals come from the document's header (a bounded listing);
    # files_count counts all
    files: list[str] = field(default_factory=list)
    files_count: int = 0
    column_types: dict[str, str] = field(default_factory=dict)  # cleaned column -> DuckDB type

    @property
    def quarantine_ratio(self) -> float:
        return self.records_quarantined / self.records_in if self.records_in else 0.0

    def add_all(self, entries: list[dict], size: int | None = None) -> None:
        """Count `entries` as processed objects: of `size` bytes, or the size each records."""
        self.objects += len(entries)
        self.bytes_in += sum(e.get("size", 0) for e in entries) if size is None else size
        self.records_in += sum(e.get("records_in", 0) for e in entries)
        self.records_cleaned += sum(e.get("records_cleaned", 0) for e in entries)
        self.records_quarantined += sum(e.get("records_quarantined", 0) for e in entries)
        self.duplicates_dropped += sum(e.get("duplicates_dropped", 0) for e in entries)
        files = [f for e in entries for f in e.get("files", [])]
        # a shared file once, however many of the entries have rows in it
        files += dict.fromkeys(f for e in entries for f in e.get("shared", []))
        self.files += files
        self.files_count += len(files)


@dataclass
class DeltaMemo:
    """What one run knows of its hours' deltas, so it reads each at most once: their
    content by key, and each hour's listing taken right after the run wrote its own delta.

    Safe to keep for the run: a delta is written once under a unique name and never
    changed (a compaction folds it into the document, which names it, then deletes it), so
    its content is the same whenever it is read; and a listing taken after the run's own
    write is what a listing a moment later would give but for a delta another run writes
    in between, which is then as if written after this run's read (the stream's pool runs
    one of its steps at a time, so there is none but for a run that bypasses the pool).
    Which listed deltas the document has folded is always read afresh (its header)."""

    contents: dict[str, dict] = field(default_factory=dict)
    listed: dict[str, list[str]] = field(default_factory=dict)  # by deltas folder


def record_manifests(
    lake: Storage,
    stream: str,
    written: Iterable[tuple[str, dict]],
    memo: DeltaMemo | None = None,
) -> None:
    """Append the (manifest key, manifest) a run wrote to its hours' totals."""
    by_hour = sorted(written, key=lambda w: w[0])
    for hour, group in groupby(by_hour, key=lambda w: manifest_hour(stream, w[0])):
        _append(lake, stream, hour, list(group), memo)


def hour_totals(
    lake: Storage,
    stream: str,
    hour: datetime,
    objects: list[ObjectInfo],
    complete: bool = True,
    memo: DeltaMemo | None = None,
) -> HourTotals:
    """Totals over the hour's processed objects, from its document and deltas.

    With `complete` (`objects` is the whole listing of the hour) only the landed objects
    processed in their current version count: an object overwritten since its run is
    pending, one gone from the landing folder drops out. Otherwise `objects` is a bounded
    listing (lake.landing_scan.hour_listing): those are checked the same way and every
    other entry counts as processed as recorded. `memo`: the run's deltas read so far."""
    landed = sorted(
        (o for o in objects if not is_folder_marker(o.key, o.size)), key=lambda o: o.key
    )
    if not complete and (totals := _from_header(lake, stream, hour, landed, memo)) is not None:
        return totals
    doc = _folded(lake, stream, hour)
    entries = doc["objects"]
    missed = [
        key
        for info in landed
        if _current_entry(entries, info) is None
        and lake.exists(key := manifest_of(stream, hour, info))
    ]
    if missed:
        found = [(key, m) for key in missed if (m := read_manifest(lake, key)) is not None]
        _append(lake, stream, hour, found)
        for key, manifest in found:
            _put(doc, key, manifest)
    totals = HourTotals(column_types=dict(doc.get("column_types", {})))
    current = [(i, e) for i in landed if (e := _current_entry(entries, i)) is not None]
    totals.objects_pending = len(landed) - len(current)
    totals.add_all([e for _, e in current], sum(i.size for i, _ in current))
    if not complete:
        listed = {o.key for o in landed}
        totals.add_all([entry for key, entry in entries.items() if key not in listed])
    return totals


def listing_mark(
    lake: Storage, stream: str, hour: datetime, memo: DeltaMemo | None = None
) -> str | None:
    """The newest Firehose-named key the hour's newest delta recorded: a run lists the
    hour from a little before it (lake.landing_scan.hour_listing). None when the hour has
    no delta (its first run, or just compacted): that run lists the hour whole."""
    for info in sorted(lake.list(_deltas_folder(stream, hour)), key=lambda i: i.key, reverse=True):
        delta = _read_delta(lake, info.key, memo)
        if delta is None:
            continue  # folded and deleted meanwhile
        named = [k for k in delta["objects"] if (p := parse_key(k)) and p.written_at]
        return max(named, default=None)
    return None


def _current_entry(entries: dict[str, dict], info: ObjectInfo) -> dict | None:
    """The object's entry when it is of its current version (an entry from a manifest of
    the old naming, which has no version, counts as current, as in lake.ledger)."""
    entry = entries.get(info.key)
    if entry is None or entry.get("legacy"):
        return entry
    return entry if (entry["etag"], entry["size"]) == (info.etag, info.size) else None


def _append(
    lake: Storage,
    stream: str,
    hour: datetime,
    written: list[tuple[str, dict]],
    memo: DeltaMemo | None = None,
) -> None:
    """Write `written`'s entries as a new delta of the hour; fold the deltas into the
    document when there are COMPACT_AT of them. An hour with no document yet gets it
    seeded with the entries instead, folding any deltas left before them: the same
    document, without a delta written, listed, read back and deleted (a range run of
    new hours paid those four per hour)."""
    delta = _empty()
    for key, manifest in written:
        _put(delta, key, manifest)
    folder = _deltas_folder(stream, hour)
    if not lake.exists(layout.hour_totals_doc(stream, hour)):
        handed = {key for key, _ in written}
        _compact(lake, stream, hour, _deltas(lake, stream, hour), handed, last=delta)
        if memo is not None:
            memo.listed[folder] = []  # folded and deleted: none left
        return
    # names sort by write time, so deltas fold in the order runs wrote them
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}.json"
    lake.write(folder + name, _dumps(delta))
    deltas = _deltas(lake, stream, hour)
    if memo is not None:
        memo.contents[folder + name] = delta
        memo.listed[folder] = deltas
    if len(deltas) >= COMPACT_AT:
        _compact(lake, stream, hour, deltas, handed={key for key, _ in written})


def _folded(lake: Storage, stream: str, hour: datetime) -> dict:
    """The hour's document with every delta it has not folded yet applied (not written)."""
    for _ in range(3):
        deltas = _deltas(lake, stream, hour)
        found = lake.read_versioned(layout.hour_totals_doc(stream, hour))
        if found is None:
            return _compact(lake, stream, hour, deltas)
        doc = _parsed(found[0])
        if (applied := _apply_deltas(lake, doc, deltas)) is not None:
            return applied
    # deltas kept vanishing under compactions racing this read: fold them by CAS instead
    return _compact(lake, stream, hour, _deltas(lake, stream, hour))


def _apply_deltas(lake: Storage, doc: dict, deltas: list[str]) -> dict | None:
    """`doc` with the `deltas` it has not folded applied in order; None when one is gone
    (a compaction folded and deleted it after `doc` was read: read again)."""
    folded = set(doc.get("folded", []))
    for key in sorted(deltas):
        if _name(key) in folded:
            continue
        delta = _read_delta(lake, key)
        if delta is None:
            return None
        _fold(doc, delta, _name(key))
    return doc


def _compact(
    lake: Storage,
    stream: str,
    hour: datetime,
    deltas: list[str],
    handed: Collection[str] = (),
    last: dict | None = None,
) -> dict:
    """Fold `deltas`, then the unwritten delta `last`, into the hour's document (seeded
    from the hour's manifests when it has none, but for those `handed` over: a delta
    among `deltas` or `last` holds them) by compare-and-swap, then delete them; return
    the document as written."""
    seeded: list[tuple[str, dict]] | None = None

    def change(current: bytes | None) -> bytes:
        nonlocal seeded
        if current is None and seeded is None:
            seeded = _manifests_of_hour(lake, stream, hour, handed)
        doc = _parsed(current) if current else _empty()
        for key, manifest in (seeded or []) if current is None else []:
            _put(doc, key, manifest)
        listed = {_name(k) for k in deltas}
        # a folded delta not listed any more is deleted: its name need not be kept
        doc["folded"] = [n for n in doc.get("folded", []) if n in listed]
        applied = _apply_deltas(lake, doc, deltas)
        if applied is None:  # a racing compaction folded it: retry on its document
            raise _Raced
        if last is not None:  # newer than every listed delta: applied after them
            applied["objects"].update(last["objects"])
            applied["column_types"] |= last["column_types"]
        return _doc_bytes(applied)

    doc_key = layout.hour_totals_doc(stream, hour)
    for _ in range(RACES):
        try:
            written = _parsed(compare_and_swap(lake, doc_key, change))
            break
        except _Raced:
            continue
    else:
        raise ConcurrentUpdateError(f"{lake.uri_of(doc_key)}: deltas kept vanishing")
    for key in deltas:
        lake.discard(key)
    return written


class _Raced(Exception):
    """A delta vanished while being folded: a racing compaction folded and deleted it."""


def _fold(doc: dict, delta: dict, name: str) -> None:
    doc["objects"].update(delta["objects"])
    doc["column_types"] |= delta.get("column_types", {})
    doc.setdefault("folded", []).append(name)


def _put(doc: dict[str, Any], key: str, manifest: dict) -> None:
    source = manifest.get("source_key")
    if not isinstance(source, str):
        return  # not a manifest this module can place
    legacy = key.endswith(_LEGACY_SUFFIX)
    if legacy and not doc["objects"].get(source, {"legacy": True}).get("legacy"):
        return  # the object's versioned manifest wins over its old-naming one
    entry = {name: manifest.get(name, 0) for name in _COUNTS}
    entry |= {"legacy": True} if legacy else {"etag": manifest["etag"], "size": manifest["size"]}
    entry["files"] = manifest.get("files", [])
    if shared := [p.file for p in shared_parts(manifest)]:
        entry["shared"] = shared  # the shared files it has rows in (lake.ledger)
    doc["objects"][source] = entry
    doc["column_types"] |= manifest.get("column_types", {})


def _manifests_of_hour(
    lake: Storage, stream: str, hour: datetime, handed: Collection[str]
) -> list[tuple[str, dict]]:
    """The hour's manifests (key, content) but for the keys `handed`."""
    ledger = read_ledger(lake, stream, hour)
    names = sorted({*ledger.versions, *ledger.legacy})
    listed = (k for name in names for k in ledger.manifests_named(name))
    keys = list(dict.fromkeys(k for k in listed if k not in handed))
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        manifests = list(pool.map(lambda key: read_manifest(lake, key), keys))
    return [(k, m) for k, m in zip(keys, manifests, strict=True) if m is not None]


def _deltas_folder(stream: str, hour: datetime) -> str:
    """`_state/totals/<stream>/<hour>/`, beside the hour's document."""
    return layout.hour_totals_doc(stream, hour).removesuffix(".json") + "/"


def _deltas(lake: Storage, stream: str, hour: datetime) -> list[str]:
    return [info.key for info in lake.list(_deltas_folder(stream, hour))]


def _name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _read_delta(lake: Storage, key: str, memo: DeltaMemo | None = None) -> dict | None:
    if memo is not None and key in memo.contents:
        return memo.contents[key]
    try:
        delta = json.loads(lake.read(key))
    except ObjectNotFound:
        return None
    if memo is not None:
        memo.contents[key] = delta
    return delta


def _empty() -> dict:
    return {"objects": {}, "column_types": {}}


def _dumps(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _from_header(
    lake: Storage,
    stream: str,
    hour: datetime,
    landed: list[ObjectInfo],
    memo: DeltaMemo | None = None,
) -> HourTotals | None:
    """The totals of a bounded listing from the document's header and the deltas, without
    parsing the document's entries; None when the entries are needed: the document has
    none of this format or an entry of the old naming, a delta replaces one of its
    entries, or a listed object's entry in it is of another version (overwritten)."""
    head = _header_line(lake, layout.hour_totals_doc(stream, hour))
    if head is None:
        return None
    header = json.loads(head)
    index = DigestIndex.unpacked(header)
    folded = set(header["folded"])
    news = _empty()
    listed = memo.listed.get(_deltas_folder(stream, hour)) if memo is not None else None
    for key in sorted(_deltas(lake, stream, hour) if listed is None else listed):
        if _name(key) in folded:
            continue
        delta = _read_delta(lake, key, memo)
        if delta is None:
            return None  # folded and deleted meanwhile: read the document again
        _fold(news, delta, _name(key))
    replaced = any(index.may_hold_key(k) for k in news["objects"])
    if header["legacy"] or replaced or any(e.get("legacy") for e in news["objects"].values()):
        return None
    entries = news["objects"]
    in_doc = [i for i in landed if i.key not in entries and index.holds(i.key, i.etag, i.size)]
    unknown = [i for i in landed if i.key not in entries and not index.holds(i.key, i.etag, i.size)]
    if any(index.may_hold_key(i.key) for i in unknown):
        return None  # overwritten since its entry in the document
    missed = [k for i in unknown if lake.exists(k := manifest_of(stream, hour, i))]
    if missed:
        found_now = [(k, m) for k in missed if (m := read_manifest(lake, k)) is not None]
        _append(lake, stream, hour, found_now, memo)
        for key, manifest in found_now:
            _put(news, key, manifest)
    # a listed object whose delta entry is of another version is pending, not counted
    stale = {i.key for i in landed if i.key in entries and _current_entry(entries, i) is None}
    totals = HourTotals(column_types=dict(header["column_types"]) | news["column_types"])
    sums = header["sums"]
    totals.objects, totals.bytes_in = sums["objects"], sums["bytes_in"]
    for name in _COUNTS:
        setattr(totals, name, sums[name])
    totals.files, totals.files_count = list(header["files_head"]), sums["files"]
    totals.add_all([e for key, e in entries.items() if key not in stale])
    counted = sum(1 for i in landed if i.key in entries and i.key not in stale) + len(in_doc)
    totals.objects_pending = len(landed) - counted
    return totals


def _header_line(lake: Storage, key: str) -> bytes | None:
    """The document's header line, read by ranges from its start (the entries after it
    are most of its bytes); None when there is no document or it has no header."""
    size = HEADER_READ
    while True:
        try:
            data = lake.read_range(key, 0, size)
        except ObjectNotFound:
            return None
        head, newline, _ = data.partition(b"\n")
        if newline:
            return head
        if len(data) < size:
            return None  # the whole document, one line: the first format
        size *= 4


def _parsed(data: bytes) -> dict:
    """The document's content (after its header line; a document of the first format has
    none)."""
    head, newline, body = data.partition(b"\n")
    return json.loads(body if newline else head)


def _doc_bytes(doc: dict) -> bytes:
    """The document with a header line: what a bounded listing's totals need (sums, the
    first files, column types, the folded deltas, which objects in which version)."""
    entries = doc["objects"]
    totals = HourTotals()
    totals.add_all(list(entries.values()))
    header = {
        "sums": {
            "objects": totals.objects,
            "bytes_in": totals.bytes_in,
            **{name: getattr(totals, name) for name in _COUNTS},
            "files": totals.files_count,
        },
        "files_head": totals.files[:FILES_KEPT],
        "column_types": doc.get("column_types", {}),
        "folded": doc.get("folded", []),
        "legacy": sum(1 for e in entries.values() if e.get("legacy")),
        **DigestIndex.of(
            (k, e["etag"], e["size"]) for k, e in entries.items() if not e.get("legacy")
        ).packed(),
    }
    return _dumps(header) + b"\n" + _dumps(doc)
