"""An arrival hour's running totals: every object of the hour the ledger records as
processed, whichever runs processed them (read from the per-object manifests)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from lake.firehose import is_folder_marker
from lake.ledger import read_ledger, read_manifest
from lake.storage import ObjectInfo, Storage

# manifests read at once: on S3 each read is a round trip, so an hour of hundreds of
# objects would otherwise add seconds to every micro-batch
READERS = 16
_COUNTS = ("records_in", "records_cleaned", "records_quarantined", "duplicates_dropped")


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


def hour_totals(
    lake: Storage, stream: str, hour: datetime, objects: list[ObjectInfo]
) -> HourTotals:
    """Totals over the hour's landed `objects` that are processed in their current version
    (an object overwritten since its run counts as pending). One listing of the hour's
    manifests, then one read per processed object (READERS at a time)."""
    ledger = read_ledger(lake, stream, hour)
    landed = sorted(
        (o for o in objects if not is_folder_marker(o.key, o.size)), key=lambda o: o.key
    )
    keys = [ledger.current_manifest(info) for info in landed]
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        manifests = list(pool.map(lambda key: _read(lake, key), keys))
    totals = HourTotals()
    for info, manifest in zip(landed, manifests, strict=True):
        if manifest is None:
            totals.objects_pending += 1
            continue
        totals.objects += 1
        totals.bytes_in += info.size
        for name in _COUNTS:
            setattr(totals, name, getattr(totals, name) + manifest.get(name, 0))
        totals.files += manifest.get("files", [])
        totals.column_types |= manifest.get("column_types", {})
    return totals


def _read(lake: Storage, key: str | None) -> dict | None:
    # None also when replaced by a concurrent run meanwhile
    return None if key is None else read_manifest(lake, key)
