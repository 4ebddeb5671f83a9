"""A folder of symlinks that mirrors an Iceberg table's current data files, kept in step by
the snapshots committed since the last sync, so a warehouse view can read the folder by a
glob and never needs the table's file list again.

Layout: `<folder>/dt=YYYY-MM-DD/<link name>` -> the file in the lake, the day from the
file's `dt=` folder. The link is named as the file when its name is of the lake's own
kind (`[A-Za-z0-9_-][A-Za-z0-9._-]*.parquet`), else by a hash of its key: a glob over the
folder matches exactly the links, whatever the files are called (a hostile name adopted
from an old lake is never read as a pattern). A file outside any `dt=` folder cannot be
linked and is reported. `<folder>/.synced.json` records the snapshot the links show,
how many there are and the files that could not be linked.

A sync walks the snapshots from the recorded one to the current one and applies each
one's added and deleted files (adds first, then deletes: a reader at that moment may see
a replaced file's rows twice, never none). When the recorded snapshot is no longer an
ancestor of the current one (expired, or the table was replaced), or nothing is recorded,
the folder is made to match a full scan of the current snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table

from lake import layout
from lake.iceberg.catalog import LakeTables
from lake.iceberg.scan import files_of
from lake.storage import LocalStorage

STATE = ".synced.json"
GLOB = "*/*.parquet"  # what a view reads under the folder
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\.parquet")


@dataclass
class LinkState:
    snapshot: int | None = None
    files: int = 0  # links in the folder
    unsafe: list[str] = field(default_factory=list)  # lake keys not linkable
    full: bool = False  # this sync scanned the whole table

    @classmethod
    def read(cls, folder: Path) -> LinkState:
        try:
            doc = json.loads((folder / STATE).read_text())
        except (FileNotFoundError, ValueError):
            return cls()
        return cls(doc.get("snapshot"), int(doc.get("files", 0)), list(doc.get("unsafe", [])))

    def write(self, folder: Path) -> None:
        doc = {"snapshot": self.snapshot, "files": self.files, "unsafe": sorted(self.unsafe)}
        _replace(folder / STATE, lambda tmp: tmp.write_text(json.dumps(doc)))


def sync_links(folder: Path, table: Table, tables: LakeTables, lake: LocalStorage) -> LinkState:
    """Bring the links in `folder` to the table's current snapshot; the state after."""
    folder.mkdir(parents=True, exist_ok=True)
    state = LinkState.read(folder)
    current = table.current_snapshot()
    current_id = current.snapshot_id if current else None
    if current_id == state.snapshot and (folder / STATE).exists():
        return state
    changes = _changes_since(table, tables, state.snapshot)
    if changes is None:
        state = _resync(folder, table, tables, lake)
    else:
        added, deleted = changes
        for key in added:
            state.files += _link(folder, key, lake, state)
        for key in deleted:
            state.files -= _unlink(folder, key, state)
    state.snapshot = current_id
    state.write(folder)
    return state


def _changes_since(
    table: Table, tables: LakeTables, since: int | None
) -> tuple[list[str], list[str]] | None:
    """Lake keys added and deleted by the snapshots after `since` up to the current one,
    oldest first; None when `since` is not an ancestor of the current snapshot."""
    if since is None:
        return None
    chain = []
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != since:
        chain.append(snapshot)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    if snapshot is None:
        return None
    added: list[str] = []
    deleted: list[str] = []
    for snapshot in reversed(chain):
        for manifest in snapshot.manifests(table.io):
            if manifest.added_snapshot_id != snapshot.snapshot_id:
                continue  # carried over unchanged from an earlier snapshot
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                if entry.snapshot_id != snapshot.snapshot_id:
                    continue  # an existing file listed again in a rewritten manifest
                key = tables.key_of(entry.data_file.file_path)
                if key is None:
                    continue
                if entry.status == ManifestEntryStatus.ADDED:
                    added.append(key)
                elif entry.status == ManifestEntryStatus.DELETED:
                    deleted.append(key)
    return added, deleted


def _resync(folder: Path, table: Table, tables: LakeTables, lake: LocalStorage) -> LinkState:
    state = LinkState(full=True)
    wanted = {}
    for key in files_of(table, tables):
        link = _link_path(folder, key)
        if link is None:
            state.unsafe.append(key)
        else:
            wanted[link] = key
    for day in folder.iterdir():
        if day.is_dir() and not day.is_symlink():
            for link in day.iterdir():
                if link not in wanted:
                    link.unlink()
    for key in wanted.values():
        state.files += _link(folder, key, lake, state)
    return state


def _link_path(folder: Path, key: str) -> Path | None:
    """Where the link to lake `key` goes; None when the key is in no `dt=` folder."""
    try:
        day = layout.file_day(key)
    except ValueError:  # dt= and digits, but no date
        return None
    if day is None:
        return None
    name = key.rsplit("/", 1)[-1]
    if not _NAME.fullmatch(name):
        name = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        name += ".parquet"
    return folder / f"dt={day.isoformat()}" / name


def _link(folder: Path, key: str, lake: LocalStorage, state: LinkState) -> int:
    """Link `key` (1 when a new link was made)."""
    link = _link_path(folder, key)
    if link is None:
        if key not in state.unsafe:
            state.unsafe.append(key)
        return 0
    existed = link.is_symlink()
    link.parent.mkdir(exist_ok=True)
    target = lake.path(key)  # refuses a key that leads outside the lake
    _replace(link, lambda tmp: tmp.symlink_to(target))
    return 0 if existed else 1


def _unlink(folder: Path, key: str, state: LinkState) -> int:
    """Remove the link to `key` (1 when there was one)."""
    if key in state.unsafe:
        state.unsafe.remove(key)
    link = _link_path(folder, key)
    if link is None or not link.is_symlink():
        return 0
    link.unlink()
    return 1


def _replace(path: Path, make) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    make(tmp)
    os.replace(tmp, path)
