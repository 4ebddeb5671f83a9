"""What cleaning an hour did: counts per source object and for the whole run, and the
run's quarantined records by reason code (lake.cleaning.reasons)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lake.storage import ObjectInfo

if TYPE_CHECKING:  # lake.ledger imports this module
    from lake.ledger import SharedPart


@dataclass
class ObjectCounts:
    records_in: int = 0
    records_cleaned: int = 0
    records_quarantined: int = 0
    duplicates_dropped: int = 0
    files: list[str] = field(default_factory=list)  # files holding its rows alone
    shared: list[SharedPart] = field(default_factory=list)  # its rows in shared files

    @property
    def balanced(self) -> bool:
        accounted = self.records_cleaned + self.records_quarantined + self.duplicates_dropped
        return self.records_in == accounted


@dataclass
class HourReport:
    objects: int = 0
    objects_skipped: int = 0  # already in the ledger (processed by an earlier run)
    bytes_in: int = 0
    records_in: int = 0
    records_cleaned: int = 0
    records_quarantined: int = 0
    duplicates_dropped: int = 0
    late_beyond_allowed: int = 0  # cleaned, but older than the lateness the dedup covers
    objects_split_in_python: int = 0  # refused by DuckDB's reader (a bad record, a wrapper...)
    event_dates: set[str] = field(default_factory=set)
    files_written: list[str] = field(default_factory=list)
    unbalanced_objects: list[str] = field(default_factory=list)
    columns_not_in_catalog: dict[str, list[str]] = field(default_factory=dict)
    quarantined_by_reason: Counter = field(default_factory=Counter)  # reason_code -> records
    folder_markers: list[str] = field(default_factory=list)  # S3 console folders, ignored
    commits: dict[str, Any] = field(default_factory=dict)  # layer -> lake.iceberg Committed

    def add(self, info: ObjectInfo, counts: ObjectCounts) -> None:
        self.objects += 1
        self.bytes_in += info.size
        self.records_in += counts.records_in
        self.records_cleaned += counts.records_cleaned
        self.records_quarantined += counts.records_quarantined
        self.duplicates_dropped += counts.duplicates_dropped
        self.files_written += counts.files
        shared = dict.fromkeys(p.file for p in counts.shared)  # the hour's sharers name it again
        self.files_written += [f for f in shared if f not in self.files_written]
        if not counts.balanced:
            self.unbalanced_objects.append(info.key)

    def absorb(self, other: HourReport) -> None:
        """Add another hour's counts to this one (a backfill run covers many hours)."""
        for name in ("objects", "objects_skipped", "bytes_in", "records_in", "records_cleaned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.records_quarantined += other.records_quarantined
        self.duplicates_dropped += other.duplicates_dropped
        self.late_beyond_allowed += other.late_beyond_allowed
        self.objects_split_in_python += other.objects_split_in_python
        self.event_dates |= other.event_dates
        self.files_written += other.files_written
        self.unbalanced_objects += other.unbalanced_objects
        self.quarantined_by_reason.update(other.quarantined_by_reason)
        self.folder_markers += other.folder_markers
        for kind, names in other.columns_not_in_catalog.items():
            known = self.columns_not_in_catalog.setdefault(kind, [])
            known += [n for n in names if n not in known]

    @property
    def quarantine_ratio(self) -> float:
        return self.records_quarantined / self.records_in if self.records_in else 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "bytes_in": self.bytes_in,
            "records_in": self.records_in,
            "records_cleaned": self.records_cleaned,
            "records_quarantined": self.records_quarantined,
            "duplicates_dropped": self.duplicates_dropped,
            "objects_skipped": self.objects_skipped,
            "late_beyond_allowed": self.late_beyond_allowed,
            "objects_split_in_python": self.objects_split_in_python,
            "event_dates": sorted(self.event_dates),
            "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items())),
            "folder_markers_ignored": len(self.folder_markers),
            "folder_marker_keys": self.folder_markers[:50],
        }
