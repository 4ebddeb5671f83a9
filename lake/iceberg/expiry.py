"""Snapshot expiry and orphan files: what a table no longer needs, removed after a retention.

Snapshots older than SNAPSHOT_RETENTION_HOURS are expired (pyiceberg's ExpireSnapshots;
the current snapshot and any branch or tag head are always kept), so time travel reaches
back that far and no further. Expiry itself deletes no file: this module then deletes

- the manifest lists of the expired snapshots and the manifests only they used (what
  expiry drops from `metadata/`; the rest of `metadata/` is left alone);
- data files in the table's folder that no remaining snapshot references and that are
  older than the retention: files compaction replaced, files a re-clean replaced, files
  of runs killed before their commit. The age rule keeps the files of a run still
  writing (it commits at its end).

Only keys under the table's own folder (`<layer>/<name>/`, which must be its location)
are listed and deleted. A file some remaining snapshot references is never deleted.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update.snapshot import ExpireSnapshots

from lake import layout
from lake.iceberg.catalog import LakeTables
from lake.iceberg.commit import with_retries
from lake.storage import ObjectNotFound, Storage

DATA_SUFFIX = ".parquet"


@dataclass
class Expiry:
    table: str
    snapshots_before: int = 0
    snapshots_expired: int = 0
    metadata_files_deleted: int = 0
    orphan_files_deleted: int = 0
    orphan_bytes_deleted: int = 0
    skipped: str = ""

    def as_metadata(self) -> dict[str, object]:
        return {
            "table": self.table,
            "snapshots_before": self.snapshots_before,
            "snapshots_expired": self.snapshots_expired,
            "snapshots_after": self.snapshots_before - self.snapshots_expired,
            "metadata_files_deleted": self.metadata_files_deleted,
            "orphan_files_deleted": self.orphan_files_deleted,
            "orphan_bytes_deleted": self.orphan_bytes_deleted,
            "skipped": self.skipped,
        }


def expire_table(
    tables: LakeTables,
    lake: Storage,
    layer: str,
    name: str,
    retention: timedelta,
    now: datetime | None = None,
) -> Expiry:
    """Expire the table's snapshots older than `retention`, then delete the files no
    remaining snapshot needs (orphan data files only when older than `retention`)."""
    result = Expiry(tables.table_id(layer, name))
    table = tables.load(layer, name)
    if table is None:
        result.skipped = "no table"
        return result
    folder = layout.table_folder(layer, name)
    if tables.key_of(table.location().rstrip("/")) != folder.rstrip("/"):
        result.skipped = f"location {table.location()} is not {folder}: nothing deleted"
        return result
    cutoff = (now or datetime.now(UTC)) - retention
    before = table.snapshots()
    result.snapshots_before = len(before)
    current = table.current_snapshot()
    if any(_older(s, cutoff) and s.snapshot_id != current.snapshot_id for s in before):
        table = with_retries(tables, result.table, lambda t: _expire(t, cutoff))
    remaining = table.snapshots()
    kept = {s.snapshot_id for s in remaining}
    expired = [s for s in before if s.snapshot_id not in kept]
    result.snapshots_expired = len(expired)
    live_manifests, live_data = _referenced(table, remaining, tables)
    for key in _dropped_metadata(table, expired, live_manifests, tables):
        if key.startswith(f"{folder}metadata/"):
            result.metadata_files_deleted += _delete(lake, key)
    for info in lake.list(folder):
        if (
            info.key.endswith(DATA_SUFFIX)
            and not info.key.startswith(f"{folder}metadata/")
            and info.key not in live_data
            and info.last_modified < cutoff
        ):
            deleted = _delete(lake, info.key)
            result.orphan_files_deleted += deleted
            result.orphan_bytes_deleted += info.size * deleted
    return result


def _older(snapshot: Snapshot, cutoff: datetime) -> bool:
    return snapshot.timestamp_ms < cutoff.timestamp() * 1000


def _expire(table: Table, cutoff: datetime) -> Transaction:
    tx = table.transaction()
    ExpireSnapshots(tx).older_than(cutoff).commit()  # skips branch and tag heads
    return tx


def _referenced(
    table: Table, snapshots: list[Snapshot], tables: LakeTables
) -> tuple[set[str], set[str]]:
    """Lake keys of the manifests (and manifest lists) and of the data and delete files the
    snapshots reference; each manifest read once."""
    manifests: set[str] = set()
    files: set[str] = set()
    for snapshot in snapshots:
        manifests.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in manifests:
                continue
            manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                files.add(entry.data_file.file_path)
    return _keys(manifests, tables), _keys(files, tables)


def _dropped_metadata(
    table: Table, expired: list[Snapshot], live: set[str], tables: LakeTables
) -> set[str]:
    """Manifest lists and manifests of the expired snapshots that no remaining one uses."""
    paths = set()
    for snapshot in expired:
        paths.add(snapshot.manifest_list)
        with contextlib.suppress(FileNotFoundError):  # dropped by an earlier, cut-off run
            paths |= {m.manifest_path for m in snapshot.manifests(table.io)}
    return _keys(paths, tables) - live


def _keys(uris: set[str], tables: LakeTables) -> set[str]:
    return {key for uri in uris if (key := tables.key_of(uri)) is not None}


def _delete(lake: Storage, key: str) -> int:
    """1 when the key was deleted, 0 when it was already gone."""
    try:
        lake.delete(key)
    except ObjectNotFound:
        return 0
    return 1
