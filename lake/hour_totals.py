"""An arrival hour's running totals: every object of the hour the ledger records as
processed, whichever runs processed them.

They are kept in one document per hour (`layout.hour_totals_doc`): an entry per object
(the ETag and size it was processed in, its counts and files), keyed by its source key,
so recording a manifest again (a re-run, a full refresh, an object re-cleaned in a new
version, two runs racing on one object) replaces the object's entry instead of adding to
the sums. A cleaning run records its manifests right after writing them
(`record_manifests`, compare-and-swap); the totals count a landed object only when its
entry is of its current version (ETag and size, compared as they are: no hashing). Reading the totals is one read
of the document; an hour without one (processed before the document existed) is seeded
from its manifests once, and an object the ledger holds but the document misses (a run
killed between its manifests and the document) is found by one `exists` a landed object
the document does not know, then added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

from lake import layout
from lake.firehose import is_folder_marker
from lake.ledger import manifest_hour, manifest_of, read_ledger, read_manifest
from lake.storage import ObjectInfo, Storage, compare_and_swap

# manifests read at once when an hour is seeded: on S3 each read is a round trip
READERS = 16
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
    files: list[str] = field(default_factory=list)  # cleaned and quarantine files, lake keys
    column_types: dict[str, str] = field(default_factory=dict)  # cleaned column -> DuckDB type

    @property
    def quarantine_ratio(self) -> float:
        return self.records_quarantined / self.records_in if self.records_in else 0.0


def record_manifests(lake: Storage, stream: str, written: Iterable[tuple[str, dict]]) -> None:
    """Add the (manifest key, manifest) a run wrote to its hours' totals documents."""
    by_hour = sorted(written, key=lambda w: w[0])
    for hour, group in groupby(by_hour, key=lambda w: manifest_hour(stream, w[0])):
        _merge(lake, stream, hour, list(group))


def hour_totals(
    lake: Storage, stream: str, hour: datetime, objects: list[ObjectInfo]
) -> HourTotals:
    """Totals over the hour's landed `objects` that are processed in their current version
    (an object overwritten since its run counts as pending), from the hour's document."""
    doc = _read(lake, stream, hour)
    if doc is None:
        doc = _merge(lake, stream, hour, [])  # seeded from the hour's manifests
    landed = sorted(
        (o for o in objects if not is_folder_marker(o.key, o.size)), key=lambda o: o.key
    )
    entries = doc["objects"]
    missed = [
        key
        for info in landed
        if _current_entry(entries, info) is None
        and lake.exists(key := manifest_of(stream, hour, info))
    ]
    if missed:
        found = [(key, m) for key in missed if (m := read_manifest(lake, key)) is not None]
        doc = _merge(lake, stream, hour, found)
        entries = doc["objects"]
    totals = HourTotals(column_types=dict(doc.get("column_types", {})))
    for info in landed:
        entry = _current_entry(entries, info)
        if entry is None:
            totals.objects_pending += 1
            continue
        totals.objects += 1
        totals.bytes_in += info.size
        for name in _COUNTS:
            setattr(totals, name, getattr(totals, name) + entry.get(name, 0))
        totals.files += entry.get("files", [])
    return totals


def _current_entry(entries: dict[str, dict], info: ObjectInfo) -> dict | None:
    """The object's entry when it is of its current version (an entry from a manifest of
    the old naming, which has no version, counts as current, as in lake.ledger)."""
    entry = entries.get(info.key)
    if entry is None or entry.get("legacy"):
        return entry
    return entry if (entry["etag"], entry["size"]) == (info.etag, info.size) else None


def _merge(lake: Storage, stream: str, hour: datetime, written: list[tuple[str, dict]]) -> dict:
    """Put `written`'s entries into the hour's document (seeded from the hour's manifests
    when there is none yet); return the document as written."""
    seeded: list[tuple[str, dict]] | None = None

    def change(current: bytes | None) -> bytes:
        nonlocal seeded
        if current is None and seeded is None:
            seeded = _manifests_of_hour(lake, stream, hour)
        doc = json.loads(current) if current else {"objects": {}, "column_types": {}}
        for key, manifest in (seeded or []) if current is None else []:
            _put(doc, key, manifest)
        for key, manifest in written:
            _put(doc, key, manifest)
        return json.dumps(doc, separators=(",", ":")).encode()

    return json.loads(compare_and_swap(lake, layout.hour_totals_doc(stream, hour), change))


def _put(doc: dict[str, Any], key: str, manifest: dict) -> None:
    source = manifest.get("source_key")
    if not isinstance(source, str):
        return  # not a manifest this module can place
    legacy = key.endswith(_LEGACY_SUFFIX)
    if legacy and not doc["objects"].get(source, {"legacy": True}).get("legacy"):
        return  # the object's versioned manifest wins over its old-naming one
    entry = {name: manifest.get(name, 0) for name in _COUNTS}
    entry |= {"legacy": True} if legacy else {"etag": manifest["etag"], "size": manifest["size"]}
    doc["objects"][source] = entry | {"files": manifest.get("files", [])}
    doc["column_types"] |= manifest.get("column_types", {})


def _manifests_of_hour(lake: Storage, stream: str, hour: datetime) -> list[tuple[str, dict]]:
    ledger = read_ledger(lake, stream, hour)
    names = sorted({*ledger.versions, *ledger.legacy})
    keys = list(dict.fromkeys(k for name in names for k in ledger.manifests_named(name)))
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        manifests = list(pool.map(lambda key: read_manifest(lake, key), keys))
    return [(k, m) for k, m in zip(keys, manifests, strict=True) if m is not None]


def _read(lake: Storage, stream: str, hour: datetime) -> dict | None:
    found = lake.read_versioned(layout.hour_totals_doc(stream, hour))
    return json.loads(found[0]) if found else None
