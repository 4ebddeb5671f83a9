"""What readers may see of the cleaned layers: files named by a committed ledger entry.

A cleaning run writes an object's files first and its manifest (lake.ledger) last, so
files of a run killed mid-way sit in the dt= folders with no manifest naming them until a
re-run commits them. A reader lists the day's folder and keeps a file only if a manifest
of the object it came from lists it. A file's name is its object's output name, which
starts with the arrival hour, so the ledger is one listing per arrival hour and one GET
per object (both cached across days), never a glob.
"""

from __future__ import annotations

from datetime import date, datetime

from lake import layout
from lake.ledger import (
    Ledger,
    manifests_listed_as,
    name_hour,
    output_name_of_file,
    read_ledger,
    read_manifest,
)
from lake.storage import Storage


class CommittedFiles:
    """Committed files of one stream; ledgers and manifests read once per instance."""

    def __init__(self, lake: Storage, stream: str) -> None:
        self.lake, self.stream = lake, stream
        self._ledgers: dict[datetime, Ledger] = {}
        self._files: dict[str, frozenset[str]] = {}  # output name -> files its manifests list

    def of_days(self, layer: str, days: list[date] | None) -> list[str]:
        """Keys of `<layer>/<stream>/dt=<day>/` (every day when None) that a committed
        manifest lists, in key order."""
        if days is None:
            prefixes = [layout.layer_folder(layer, self.stream)]
        else:
            prefixes = [layout.layer_day_folder(layer, self.stream, d) for d in days]
        keys = [o.key for p in prefixes for o in self.lake.list(p) if o.key.endswith(".parquet")]
        return [k for k in keys if self.is_committed(k)]

    def is_committed(self, key: str) -> bool:
        name = output_name_of_file(key.rsplit("/", 1)[-1])
        if name not in self._files:
            self._files[name] = self._files_named(name)
        return key in self._files[name]

    def _files_named(self, name: str) -> frozenset[str]:
        files: set[str] = set()
        for manifest in self._manifests_named(name):
            files |= self._listed_by(manifest)
        return frozenset(files)

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

    def _listed_by(self, manifest_key: str) -> set[str]:
        try:
            doc = read_manifest(self.lake, manifest_key)
        except ValueError:
            return set()  # not a manifest (None: gone meanwhile, replaced by a newer one)
        files = doc.get("files") if isinstance(doc, dict) else None
        return {f for f in files or [] if isinstance(f, str)}
