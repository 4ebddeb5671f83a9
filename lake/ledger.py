"""The cleaning ledger: which landed objects, by full key and version, a run has processed.

An object's output name (its cleaned and quarantine files, its manifest, the `obj` of its
dedup keys) is derived from the arrival hour and the object's FULL key: a readable, safe,
truncated stem plus a hash of the key, so `HH/x.gz`, `HH/retry/x.gz` and `HH/x` never
share a name, and no name holds glob characters or exceeds a file system's 255 bytes.

Each processed object has a manifest `_state/cleaned/<stream>/<output name>.v<version>.json`
where the version is a hash of the object's ETag and size (a local folder's ETag is its
mtime and size): an object overwritten under the same key has a new version, so it is
not in the ledger and is cleaned again, its earlier rows replaced. Telling processed
objects apart takes one listing of the hour's manifests, no reads.

A manifest's `files` lists the files that hold the object's rows alone (its quarantine
file; its cleaned files, one per event date). With the lake's tables, the small objects of
one cleaning pass and arrival hour share a cleaned file per event date (layout.shared_file):
such a file is never in `files`, so no reader of `files` deletes, casts or registers it as
the object's own. The manifest names it under `shared`, a list of
`{"file": <lake key>, "first": <row>, "rows": <count>}` sorted by file: the object's rows
are the file's rows `first` .. `first + rows - 1` (0-based, in file order), every one
with `_source_key` = the object's key. No `shared` (manifests before it, lakes without
tables) means none. A shared file's sharers are found from the file itself (its
`_source_key` and `_arrival_hour` give each sharer's output name). An object cleaned again
leaves the shared file on disk: the run's Iceberg replace by key rewrites it without that
object's rows (copy-on-write), and the other sharers' entries still describe their rows in
it.

Manifests written before versions existed (`<hour>-<stem>.parquet.json`, the old naming)
still count: an object whose old name has such a manifest is processed (as it was, its
version unknown). A full refresh of the hour re-cleans it under the new name and removes
the old files, manifest and dedup keys.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lake import layout
from lake.cleaning.report import ObjectCounts
from lake.storage import ObjectInfo, ObjectNotFound, Storage

STEM_CHARS = 80  # readable part of a name; the whole manifest name stays under 140 bytes
_HASH_CHARS = 16  # 64 bits of SHA-256: names of one hour never collide in practice
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # also every glob character: * ? [ ] { }
_VERSIONED = re.compile(r"(?P<name>.+\.parquet)\.v(?P<version>[0-9a-f]{16})")
_HOUR_FORMAT = "%Y%m%dT%H"  # how an output name, and so a manifest's name, starts
# names a ledger looks up one by one (before its listed range) before it lists the hour
NAME_LOOKUPS = 16


def _digest(text: str) -> str:
    # surrogateescape: a local file name that is not UTF-8 still hashes to its own bytes
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_CHARS]


def output_name(hour: datetime, source_key: str) -> str:
    """`<YYYYMMDDTHH>-<safe stem>-<hash of the full key>.parquet`: deterministic, unique per
    full key, at most 11 + 1 + 80 + 1 + 16 + 8 = 117 characters of [A-Za-z0-9._-]."""
    return f"{hour:%Y%m%dT%H}-{_named_key(source_key)}.parquet"


@functools.lru_cache(maxsize=1 << 14)  # a run asks for each object's name several times
def _named_key(source_key: str) -> str:
    stem = source_key.rsplit("/", 1)[-1].removesuffix(".gz")
    readable = _UNSAFE.sub("_", stem).lstrip(".")[:STEM_CHARS] or "object"
    return f"{readable}-{_digest(source_key)}"


_RUN_FILE = re.compile(r"(?P<name>.+-[0-9a-f]{16})-[0-9a-f]{12}\.parquet")


def output_name_of_file(file_name: str) -> str:
    """The output name a file's name was made from (run_file_name undone)."""
    match = _RUN_FILE.fullmatch(file_name)
    return f"{match['name']}.parquet" if match else file_name


def run_file_name(name: str, token: str) -> str:
    """A file name of output `name` unique to one run (`<name stem>-<token>.parquet`): files
    an Iceberg table references are never overwritten, so a run killed before its commit
    leaves the table's files as they were."""
    return f"{name.removesuffix('.parquet')}-{token}.parquet"


def legacy_output_name(hour: datetime, source_key: str) -> str:
    """The name before full-key names (last key part only): read, never written."""
    stem = source_key.rsplit("/", 1)[-1].removesuffix(".gz")
    return f"{hour:%Y%m%dT%H}-{stem}.parquet"


def object_version(info: ObjectInfo) -> str:
    return _digest(f"{info.etag}\n{info.size}")


def manifest_of(stream: str, hour: datetime, info: ObjectInfo) -> str:
    """Where the ledger records `info` (in its current version) as processed."""
    return layout.ledger_manifest(stream, output_name(hour, info.key), object_version(info))


@dataclass(frozen=True)
class TypedAs:
    """The catalog version a run cleaned with and the DuckDB type of each column it wrote."""

    catalog_version: int
    column_types: dict[str, str]

    def as_manifest(self) -> dict[str, object]:
        return {"catalog_version": self.catalog_version, "column_types": self.column_types}


class Ledger:
    """The manifests of one stream and arrival hour, listed as far as the questions asked
    need: from the first object asked about on (`is_done`, `earlier_manifests`, ...).

    A run asks about its objects in key order, and Firehose names sort by write time, so a
    run given a bounded listing of its hour (lake.landing_scan.hour_listing) lists only the
    manifests of the objects from there on, not every manifest of the hour. A name before
    the listed range is looked up by itself (one listing of its own manifests); past
    NAME_LOOKUPS of those, the rest of the hour is listed once. `versions` and `legacy`
    list the whole hour."""

    def __init__(self, lake: Storage, stream: str, hour: datetime) -> None:
        self.lake, self.stream, self.hour = lake, stream, hour
        self._versions: dict[str, set[str]] = {}  # output name -> versions
        self._legacy: set[str] = set()  # old-naming output names
        self._after: str | None = None  # names from this one on are listed (None: none)
        self._looked_up: set[str] = set()  # names before it, listed one by one

    @property
    def versions(self) -> dict[str, set[str]]:
        """Every output name of the hour with its versions."""
        self._list_from("")
        return self._versions

    @property
    def legacy(self) -> set[str]:
        """Every old-naming output name of the hour."""
        self._list_from("")
        return self._legacy

    def is_done(self, info: ObjectInfo) -> bool:
        """Processed in this version (or, under the old naming, in some version)."""
        name, legacy = self._names_of(info)
        if name in self._versions:
            return object_version(info) in self._versions[name]
        return legacy in self._legacy

    def current_manifest(self, info: ObjectInfo) -> str | None:
        """The manifest recording `info` as processed (as `is_done` decides), or None."""
        name, legacy = self._names_of(info)
        if name in self._versions:
            version = object_version(info)
            known = version in self._versions[name]
            return layout.ledger_manifest(self.stream, name, version) if known else None
        return (
            layout.legacy_ledger_manifest(self.stream, legacy) if legacy in self._legacy else None
        )

    def earlier_manifests(self, info: ObjectInfo) -> list[str]:
        """Manifest keys an earlier run wrote for this key (any version, old naming too)."""
        name, legacy = self._names_of(info)
        return self.manifests_named(name) + self.manifests_named(legacy)

    def manifests_named(self, name: str) -> list[str]:
        """The manifest keys of an output name (each version, or the old naming's one)."""
        self._know([name])
        versions = sorted(self._versions.get(name, ()))
        keys = [layout.ledger_manifest(self.stream, name, v) for v in versions]
        if name in self._legacy:
            keys.append(layout.legacy_ledger_manifest(self.stream, name))
        return keys

    def earlier_names(self, info: ObjectInfo) -> set[str]:
        """Output names this key's earlier dedup keys may be stored under."""
        name, legacy = self._names_of(info)
        return {name, legacy} if legacy in self._legacy else {name}

    def _names_of(self, info: ObjectInfo) -> tuple[str, str]:
        names = output_name(self.hour, info.key), legacy_output_name(self.hour, info.key)
        self._know(list(names))
        return names

    def _know(self, names: list[str]) -> None:
        """Make sure every manifest of `names` is known."""
        if self._after is None:
            self._list_from(min(names))
            return
        missing = [n for n in names if n < self._after and n not in self._looked_up]
        if len(self._looked_up) + len(missing) > NAME_LOOKUPS:
            self._list_from("")
            return
        for name in missing:
            self._add(self.lake.list(layout.ledger_folder(self.stream) + name), name)
            self._looked_up.add(name)

    def _list_from(self, name: str) -> None:
        """List the hour's manifests of names from `name` on (all of them for "")."""
        if self._after is not None and self._after <= name:
            return
        folder = layout.ledger_folder(self.stream)
        prefix = layout.ledger_hour_prefix(self.stream, self.hour)
        start = folder + name if name > prefix.removeprefix(folder) else None
        for info in self.lake.list(prefix, start_after=start):
            if self._after is not None and info.key >= folder + self._after:
                break  # listed already
            self._add_entry(info.key.removeprefix(folder))
        self._after = name

    def _add(self, listing: Iterator[ObjectInfo], name: str) -> None:
        folder = layout.ledger_folder(self.stream)
        for info in listing:
            entry = info.key.removeprefix(folder)
            if is_manifest_of(entry, name):
                self._add_entry(entry)

    def _add_entry(self, entry: str) -> None:
        entry = entry.removesuffix(".json")
        if match := _VERSIONED.fullmatch(entry):
            self._versions.setdefault(match["name"], set()).add(match["version"])
        elif entry.endswith(".parquet"):
            self._legacy.add(entry)


def is_manifest_of(entry: str, name: str) -> bool:
    """Whether `entry` (a key under the manifests folder) is a manifest of output `name`."""
    stem = entry.removesuffix(".json")
    match = _VERSIONED.fullmatch(stem)
    return stem == name if match is None else match["name"] == name


def read_ledger(lake: Storage, stream: str, hour: datetime) -> Ledger:
    """The hour's ledger; it lists the manifests as its questions need them (see Ledger)."""
    return Ledger(lake, stream, hour)


@dataclass(frozen=True)
class SharedPart:
    """An object's rows in a shared cleaned file: rows `first` .. `first + rows - 1`."""

    file: str
    first: int
    rows: int

    def as_manifest(self) -> dict[str, object]:
        return {"file": self.file, "first": self.first, "rows": self.rows}


def shared_parts(manifest: Any) -> list[SharedPart]:
    """The `shared` entries of a manifest as written (none for an older manifest or one
    without tables). Raises ValueError for an entry that is not a shared file's range."""
    entries = manifest.get("shared") if isinstance(manifest, dict) else None
    parts = []
    for entry in entries or []:
        if not isinstance(entry, dict):
            raise ValueError(f"not a shared file entry: {entry!r}")
        file, first, rows = entry.get("file"), entry.get("first"), entry.get("rows")
        if not (isinstance(file, str) and layout.is_shared_file(file)):
            raise ValueError(f"not a shared file: {file!r}")
        if not all(type(n) is int and n >= 0 for n in (first, rows)):
            raise ValueError(f"not a row range: {first!r}, {rows!r}")
        parts.append(SharedPart(file, first, rows))
    return parts


def rows_files_of(lake: Storage, manifests: list[str]) -> list[str]:
    """Every lake file holding rows the given manifests record: the files they list and
    the shared files they have parts in (a re-cleaned object's replace must cover the
    days of all of them, else its old rows in a shared file survive it)."""
    files: list[str] = []
    for key in manifests:
        manifest = read_manifest(lake, key)
        if manifest is not None:
            files += manifest["files"] + [p.file for p in shared_parts(manifest)]
    return files


def read_manifest(lake: Storage, key: str) -> Any:
    """A manifest as written (a dict), None when it is gone (replaced meanwhile).
    Raises ValueError when the object is not JSON."""
    try:
        return json.loads(lake.read(key))
    except ObjectNotFound:
        return None


def write_manifest(lake: Storage, key: str, manifest: dict[str, Any]) -> None:
    # compact: `indent` switches json to its pure-Python encoder (~3x slower), and
    # manifests are read by json.loads, not by people
    lake.write(key, json.dumps(manifest, separators=(",", ":")).encode())


def manifest_keys(lake: Storage, stream: str) -> Iterator[str]:
    """Every manifest of the stream, in key order (so by arrival hour)."""
    return (info.key for info in lake.list(layout.ledger_folder(stream)))


def name_hour(name: str) -> datetime:
    """The arrival hour an output or manifest name starts with (ValueError when it does
    not)."""
    return datetime.strptime(name[:11], _HOUR_FORMAT)


def manifest_hour(stream: str, key: str) -> datetime:
    """The arrival hour a manifest key's name starts with (ValueError when it does not)."""
    return name_hour(key.removeprefix(layout.ledger_folder(stream)))


def manifests_listed_as(lake: Storage, stream: str, name: str) -> list[str]:
    """The manifests of output `name` found by listing the keys starting with it (for a
    name that does not start with an arrival hour, so has no hour's ledger)."""
    folder = layout.ledger_folder(stream)
    found = (info.key for info in lake.list(folder + name))
    return [key for key in found if is_manifest_of(key.removeprefix(folder), name)]


def has_manifest_from(lake: Storage, stream: str, hour: datetime) -> bool:
    """Whether the ledger holds an object of `stream` that arrived in `hour` or later (one
    listing, started after the hour's name)."""
    folder = layout.ledger_folder(stream)
    first = next(iter(lake.list(folder, start_after=f"{folder}{hour:{_HOUR_FORMAT}}")), None)
    if first is None:
        return False
    try:  # names sort by arrival hour; a name not starting with one is no evidence
        name_hour(first.key.removeprefix(folder))
    except ValueError:
        return False
    return True


def replace_manifest(
    lake: Storage,
    stream: str,
    info: ObjectInfo,
    name: str,
    counts: ObjectCounts,
    earlier: list[str],
    earlier_files: list[str],
    typed_as: TypedAs | None = None,
    delete_stale: bool = True,
) -> tuple[str, dict[str, Any]]:
    """Remove the files earlier runs wrote for the key and this run did not, record the
    object as processed in its current version, then drop the earlier manifests. (In this
    order a crash anywhere leaves the object unprocessed, or processed with nothing stale.)
    With `delete_stale` False the earlier files stay: an Iceberg table's older snapshots
    still read them until snapshot expiry removes them (lake.iceberg.expiry).
    `typed_as` records the catalog version and column types the files were written with
    (lake.retype rewrites the files when the catalog's types move on). Returns the
    manifest's key and what it holds. A shared file is never deleted: it holds other
    objects' rows."""
    for stale in set(earlier_files) - set(counts.files) if delete_stale else ():
        if not layout.is_shared_file(stale):
            lake.discard(stale)
    key = layout.ledger_manifest(stream, name, object_version(info))
    manifest = {
        "source_key": info.key,
        "etag": info.etag,
        "size": info.size,
        "files": counts.files,
        "records_in": counts.records_in,
        "records_cleaned": counts.records_cleaned,
        "records_quarantined": counts.records_quarantined,
        "duplicates_dropped": counts.duplicates_dropped,
    }
    if counts.shared:
        manifest["shared"] = [p.as_manifest() for p in counts.shared]
    if typed_as is not None:
        manifest |= typed_as.as_manifest()
    write_manifest(lake, key, manifest)
    for old in earlier:
        if old != key:
            lake.discard(old)
    return key, manifest
