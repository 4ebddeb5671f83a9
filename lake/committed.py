"""What readers may see of the cleaned layers: files named by a committed ledger entry.

A cleaning run writes an object's files first and its manifest
(`_state/cleaned/<stream>/<name>.json`, lake.cleaned_io) last, so files of a run killed
mid-way sit in the dt= folders with no manifest naming them until a re-run commits them.
A reader lists the day's folder and keeps a file only if the manifest of the object it
came from lists it: the file's name is its object's ledger name, so that is one GET per
object (cached across days), never a glob.
"""

from __future__ import annotations

import json
from datetime import date

from lake.storage import ObjectNotFound, Storage

LEDGER_LAYERS = ("cleaned", "quarantine")  # written by cleaning runs, committed by manifests


class CommittedFiles:
    """Committed files of one stream; manifests read once per instance."""

    def __init__(self, lake: Storage, stream: str) -> None:
        self.lake, self.stream = lake, stream
        self._manifests: dict[str, frozenset[str]] = {}

    def of_days(self, layer: str, days: list[date] | None) -> list[str]:
        """Keys of `<layer>/<stream>/dt=<day>/` (every day when None) that a committed
        manifest lists, in key order."""
        folder = f"{layer}/{self.stream}/"
        prefixes = [folder] if days is None else [f"{folder}dt={d}/" for d in days]
        keys = [o.key for p in prefixes for o in self.lake.list(p) if o.key.endswith(".parquet")]
        return [k for k in keys if self.is_committed(k)]

    def is_committed(self, key: str) -> bool:
        name = key.rsplit("/", 1)[-1]
        if name not in self._manifests:
            self._manifests[name] = self._files_of(f"_state/cleaned/{self.stream}/{name}.json")
        return key in self._manifests[name]

    def _files_of(self, manifest_key: str) -> frozenset[str]:
        try:
            doc = json.loads(self.lake.read(manifest_key))
        except (ObjectNotFound, ValueError):
            return frozenset()  # no entry (not committed yet), or not a manifest
        files = doc.get("files") if isinstance(doc, dict) else None
        return frozenset(f for f in files or [] if isinstance(f, str))
