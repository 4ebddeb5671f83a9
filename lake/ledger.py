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

Manifests written before versions existed (`<hour>-<stem>.parquet.json`, the old naming)
still count: an object whose old name has such a manifest is processed (as it was, its
version unknown). A full refresh of the hour re-cleans it under the new name and removes
the old files, manifest and dedup keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from lake.cleaning.report import ObjectCounts
from lake.storage import ObjectInfo, ObjectNotFound, Storage

STEM_CHARS = 80  # readable part of a name; the whole manifest name stays under 140 bytes
_HASH_CHARS = 16  # 64 bits of SHA-256: names of one hour never collide in practice
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")  # also every glob character: * ? [ ] { }
_VERSIONED = re.compile(r"(?P<name>.+\.parquet)\.v(?P<version>[0-9a-f]{16})")


def _digest(text: str) -> str:
    # surrogateescape: a local file name that is not UTF-8 still hashes to its own bytes
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:_HASH_CHARS]


def output_name(hour: datetime, source_key: str) -> str:
    """`<YYYYMMDDTHH>-<safe stem>-<hash of the full key>.parquet`: deterministic, unique per
    full key, at most 11 + 1 + 80 + 1 + 16 + 8 = 117 characters of [A-Za-z0-9._-]."""
    stem = source_key.rsplit("/", 1)[-1].removesuffix(".gz")
    readable = _UNSAFE.sub("_", stem).lstrip(".")[:STEM_CHARS] or "object"
    return f"{hour:%Y%m%dT%H}-{readable}-{_digest(source_key)}.parquet"


def legacy_output_name(hour: datetime, source_key: str) -> str:
    """The name before full-key names (last key part only): read, never written."""
    stem = source_key.rsplit("/", 1)[-1].removesuffix(".gz")
    return f"{hour:%Y%m%dT%H}-{stem}.parquet"


def object_version(info: ObjectInfo) -> str:
    return _digest(f"{info.etag}\n{info.size}")


def manifests_folder(stream: str) -> str:
    return f"_state/cleaned/{stream}/"


def manifest_key(stream: str, name: str, version: str) -> str:
    return f"{manifests_folder(stream)}{name}.v{version}.json"


def manifest_of(stream: str, hour: datetime, info: ObjectInfo) -> str:
    """Where the ledger records `info` (in its current version) as processed."""
    return manifest_key(stream, output_name(hour, info.key), object_version(info))


@dataclass(frozen=True)
class TypedAs:
    """The catalog version a run cleaned with and the DuckDB type of each column it wrote."""

    catalog_version: int
    column_types: dict[str, str]

    def as_manifest(self) -> dict[str, object]:
        return {"catalog_version": self.catalog_version, "column_types": self.column_types}


def _hour_prefix(stream: str, hour: datetime) -> str:
    return f"{manifests_folder(stream)}{hour:%Y%m%dT%H}-"


@dataclass
class Ledger:
    """The manifests of one stream and arrival hour, from one listing."""

    stream: str
    hour: datetime
    versions: dict[str, set[str]] = field(default_factory=dict)  # output name -> versions
    legacy: set[str] = field(default_factory=set)  # old-naming output names

    def is_done(self, info: ObjectInfo) -> bool:
        """Processed in this version (or, under the old naming, in some version)."""
        name = output_name(self.hour, info.key)
        if name in self.versions:
            return object_version(info) in self.versions[name]
        return legacy_output_name(self.hour, info.key) in self.legacy

    def current_manifest(self, info: ObjectInfo) -> str | None:
        """The manifest recording `info` as processed (as `is_done` decides), or None."""
        name = output_name(self.hour, info.key)
        if name in self.versions:
            version = object_version(info)
            return (
                manifest_key(self.stream, name, version) if version in self.versions[name] else None
            )
        legacy = legacy_output_name(self.hour, info.key)
        return f"{manifests_folder(self.stream)}{legacy}.json" if legacy in self.legacy else None

    def earlier_manifests(self, info: ObjectInfo) -> list[str]:
        """Manifest keys an earlier run wrote for this key (any version, old naming too)."""
        keys = self.manifests_named(output_name(self.hour, info.key))
        return keys + self.manifests_named(legacy_output_name(self.hour, info.key))

    def manifests_named(self, name: str) -> list[str]:
        """The manifest keys of an output name (each version, or the old naming's one)."""
        keys = [manifest_key(self.stream, name, v) for v in sorted(self.versions.get(name, ()))]
        if name in self.legacy:
            keys.append(f"{manifests_folder(self.stream)}{name}.json")
        return keys

    def earlier_names(self, info: ObjectInfo) -> set[str]:
        """Output names this key's earlier dedup keys may be stored under."""
        names = {output_name(self.hour, info.key)}
        legacy = legacy_output_name(self.hour, info.key)
        if legacy in self.legacy:
            names.add(legacy)
        return names


def is_manifest_of(entry: str, name: str) -> bool:
    """Whether `entry` (a key under the manifests folder) is a manifest of output `name`."""
    stem = entry.removesuffix(".json")
    match = _VERSIONED.fullmatch(stem)
    return stem == name if match is None else match["name"] == name


def read_ledger(lake: Storage, stream: str, hour: datetime) -> Ledger:
    ledger = Ledger(stream, hour)
    folder = manifests_folder(stream)
    for info in lake.list(_hour_prefix(stream, hour)):
        entry = info.key.removeprefix(folder).removesuffix(".json")
        if match := _VERSIONED.fullmatch(entry):
            ledger.versions.setdefault(match["name"], set()).add(match["version"])
        elif entry.endswith(".parquet"):
            ledger.legacy.add(entry)
    return ledger


def unprocessed(
    lake: Storage, stream: str, hour: datetime, objects: list[ObjectInfo]
) -> list[ObjectInfo]:
    """The objects of `hour` that no run has processed in their current version."""
    ledger = read_ledger(lake, stream, hour)
    return [o for o in objects if not ledger.is_done(o)]


def files_of(lake: Storage, manifests: list[str]) -> list[str]:
    """The lake files the given manifests list (a manifest gone meanwhile lists none)."""
    files: list[str] = []
    for key in manifests:
        with contextlib.suppress(ObjectNotFound):
            files += json.loads(lake.read(key))["files"]
    return files


def replace_manifest(
    lake: Storage,
    stream: str,
    info: ObjectInfo,
    name: str,
    counts: ObjectCounts,
    earlier: list[str],
    earlier_files: list[str],
    typed_as: TypedAs | None = None,
) -> str:
    """Remove the files earlier runs wrote for the key and this run did not, record the
    object as processed in its current version, then drop the earlier manifests. (In this
    order a crash anywhere leaves the object unprocessed, or processed with nothing stale.)
    `typed_as` records the catalog version and column types the files were written with
    (lake.retype rewrites the files when the catalog's types move on)."""
    for stale in set(earlier_files) - set(counts.files):
        with contextlib.suppress(ObjectNotFound):
            lake.delete(stale)
    key = manifest_key(stream, name, object_version(info))
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
    if typed_as is not None:
        manifest |= typed_as.as_manifest()
    lake.write(key, json.dumps(manifest, indent=1).encode())
    for old in earlier:
        if old != key:
            with contextlib.suppress(ObjectNotFound):
                lake.delete(old)
    return key
