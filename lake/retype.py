"""One type per column across a stream's cleaned files, after the catalog widens a column.

Every manifest records the catalog version and the DuckDB type of each column its files
were written with (lake.ledger.TypedAs; manifests older than that are judged by their
files' Parquet schemas). When the catalog's column types are not those a committed
object was cleaned with, the object is brought to the current types:

- re-cleaned from landing (lake.cleaning.hour.clean_hour with full_refresh, that object
  only) when landing still holds its key: the rows are exactly what a re-clean gives
  (text as the producer sent it, records quarantined as `cannot_cast` before the
  widening now cleaned), and the ledger's replace-then-commit order keeps it crash-safe;
- else its cleaned files are cast in place (lake.column_cast), then re-registered in the
  Iceberg table `cleaned.<stream>` (same paths: the ledger keeps naming them; the commit
  replaces the object's files by source key, so also a copy lake.iceberg.rewrite made),
  the manifest updated last. Its rows in a file shared with other objects (the
  manifest's `shared` ranges, lake.ledger) are never cast or registered whole (that would
  add the other sharers' rows twice): the object's range is cast into a new file of its
  own, which the same commit registers; the replace by key takes the object's rows out of
  the shared file in the table (copy-on-write), and the manifest then names the new file
  in `files` and no longer the range. A shared file gone from disk (snapshot expiry after
  a copy-on-write or compaction) is skipped as a missing file of the object's own is: the
  object's rows stay in the table as the table holds them, its manifest names the range.

A stream is scanned once per change of its catalog column types: `_state/retyped/<stream>.json`
remembers the types the last complete scan brought every file to.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import In

from lake import layout
from lake.cleaning.columns import columns_from_table
from lake.cleaning.commit import SOURCE_KEY
from lake.cleaning.hour import clean_hour
from lake.column_cast import arrow_types, cast_columns
from lake.firehose import hour_prefix
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.commit import TableShape, commit_files
from lake.ledger import (
    SharedPart,
    manifest_hour,
    manifest_keys,
    output_name,
    read_manifest,
    run_file_name,
    shared_parts,
    write_manifest,
)
from lake.parquet_writing import parquet_bytes
from lake.pii import PIIKey
from lake.settings import DEFAULTS, Settings
from lake.storage import ObjectNotFound, Storage
from lake.streams import StreamSpec


@dataclass
class RetypeReport:
    scanned: bool = False  # False: the catalog's types had not changed since the last scan
    manifests_checked: int = 0
    objects_recleaned: list[str] = field(default_factory=list)  # landing keys
    objects_cast: list[str] = field(default_factory=list)  # landing keys no longer in landing
    files_retyped: list[str] = field(default_factory=list)
    remaining: int = 0  # stale objects left for the next run (past RETYPE_MAX_OBJECTS)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "retype_scanned": self.scanned,
            "retype_manifests_checked": self.manifests_checked,
            "objects_recleaned": len(self.objects_recleaned),
            "objects_cast": len(self.objects_cast),
            "files_retyped": len(self.files_retyped),
            "retype_remaining": self.remaining,
        }


def catalog_types(table: dict[str, Any], spec: StreamSpec) -> dict[str, str]:
    """Column name -> the DuckDB type cleaning writes it with under this catalog table."""
    return {c.name: c.duck_type for c in columns_from_table(table, spec)}


def retype_stream(
    spec: StreamSpec,
    table: dict[str, Any] | None,
    landing: Storage,
    lake: Storage,
    pii_key: PIIKey,
    settings: Settings = DEFAULTS,
    tables: LakeTables | None = None,
) -> RetypeReport:
    """Bring every committed cleaned file of the stream to the catalog's column types, at
    most RETYPE_MAX_OBJECTS objects of it in this call (`settings`)."""
    report = RetypeReport()
    if not table:
        return report
    target = catalog_types(table, spec)
    version = int(table.get("VersionId", 0))
    if _marker(lake, spec.name) == target:
        return report
    report.scanned = True
    arrow_target = arrow_types(target)
    stale: dict[datetime, list[dict[str, Any]]] = {}
    for key in list(manifest_keys(lake, spec.name)):
        with contextlib.suppress(ObjectNotFound, ValueError):
            manifest = read_manifest(lake, key)
            if manifest is None:
                continue  # replaced meanwhile
            report.manifests_checked += 1
            if isinstance(manifest, dict) and _is_stale(lake, manifest, target, arrow_target):
                manifest["_key"] = key
                hour = manifest_hour(spec.name, key)
                stale.setdefault(hour.replace(tzinfo=UTC), []).append(manifest)
    budget = settings.retype_max_objects
    for hour in sorted(stale):
        manifests = stale[hour][:budget]
        report.remaining += len(stale[hour]) - len(manifests)
        budget -= len(manifests)
        if not manifests:
            continue
        listed = {o.key: o for o in landing.list(hour_prefix(spec.name, hour))}
        again = [listed[m["source_key"]] for m in manifests if m.get("source_key") in listed]
        if again:
            cleaned = clean_hour(
                spec,
                table,
                landing,
                lake,
                hour,
                again,
                full_refresh=True,
                pii_key=pii_key,
                settings=settings,
                tables=tables,
            )
            report.objects_recleaned += [o.key for o in again]
            report.files_retyped += [f for f in cleaned.files_written if layout.is_cleaned_file(f)]
        for manifest in manifests:
            if manifest.get("source_key") not in listed:
                report.files_retyped += cast_object(
                    lake, manifest, version, target, _Registrar(tables, spec.name)
                )
                report.objects_cast.append(str(manifest.get("source_key")))
    if not report.remaining:
        doc = {"catalog_version": version, "column_types": target}
        lake.write(layout.retype_marker(spec.name), json.dumps(doc, indent=1).encode())
    return report


def _marker(lake: Storage, stream: str) -> dict[str, str] | None:
    try:
        return json.loads(lake.read(layout.retype_marker(stream))).get("column_types")
    except (ObjectNotFound, ValueError, AttributeError):
        return None


def _is_stale(
    lake: Storage,
    manifest: dict[str, Any],
    target: dict[str, str],
    arrow_target: dict[str, pa.DataType],
) -> bool:
    recorded = manifest.get("column_types")
    if isinstance(recorded, dict):
        return any(name in target and target[name] != t for name, t in recorded.items())
    # a manifest from before types were recorded: ask the files themselves
    for key in _cleaned_files(manifest) + [p.file for p in shared_parts(manifest)]:
        with contextlib.suppress(ObjectNotFound):
            schema = pq.read_schema(io.BytesIO(lake.read(key)))
            if any(f.name in arrow_target and f.type != arrow_target[f.name] for f in schema):
                return True
    return False


def _cleaned_files(manifest: dict[str, Any]) -> list[str]:
    files = manifest.get("files") or []
    return [f for f in files if isinstance(f, str) and layout.is_cleaned_file(f)]


def cast_object(
    lake: Storage,
    manifest: dict[str, Any],
    version: int,
    target: dict[str, str],
    registrar: _Registrar | None = None,
) -> list[str]:
    """Cast an object's cleaned files to the catalog's types (each file replaced whole;
    its ranges of shared files into new files of its own), register them again in the
    Iceberg table (`registrar`), then record the new types, and the new files in place of
    the ranges, in its manifest. Returns the files rewritten or written."""
    rewritten, kept = [], []
    written_as = dict(manifest.get("column_types") or {})
    for key in _cleaned_files(manifest):
        try:
            data = lake.read(key)
        except ObjectNotFound:
            continue
        kept.append(key)
        rows = pq.read_table(io.BytesIO(data))
        cast = cast_columns(rows, target)
        written_as |= {n: target[n] for n in rows.column_names if n in target}
        if cast is not None:
            lake.write(key, parquet_bytes(cast, no_dictionary={"_position"}))
            rewritten.append(key)
    source_key = str(manifest.get("source_key"))
    ranges = _shared_rows(lake, manifest, source_key)
    casts = {part: cast_columns(rows, target) for part, rows in ranges.items()}
    for rows in ranges.values():  # cast below, or already of the catalog's types
        written_as |= {n: target[n] for n in rows.column_names if n in target}
    doc = {k: v for k, v in manifest.items() if k != "_key"}
    if ranges and (rewritten or any(c is not None for c in casts.values())):
        # every range moves, cast or not: the replace by key then takes out no row of the
        # object that the registered files do not hold
        own_rows = {p: ranges[p] if casts[p] is None else casts[p] for p in ranges}
        moved = _own_files(lake, source_key, own_rows)
        rewritten += list(moved.values())
        kept += list(moved.values())
        doc["files"] = list(doc.get("files") or []) + list(moved.values())
        entries = zip(manifest["shared"], shared_parts(manifest), strict=True)
        left = [entry for entry, part in entries if part not in moved]  # kept as written
        doc.pop("shared", None)
        if left:
            doc["shared"] = left
    if rewritten and registrar is not None:
        registrar.register(source_key, kept)
    doc |= {"catalog_version": version, "column_types": written_as}
    write_manifest(lake, manifest["_key"], doc)
    return rewritten


def _shared_rows(
    lake: Storage, manifest: dict[str, Any], source_key: str
) -> dict[SharedPart, pa.Table]:
    """The object's rows of each shared file of its manifest still on disk. A range that
    does not hold them (a manifest not as written) is left as a missing file is."""
    found = {}
    parts: list[SharedPart] = []
    with contextlib.suppress(ValueError):
        parts = shared_parts(manifest)
    for part in parts:
        try:
            data = lake.read(part.file)
        except ObjectNotFound:
            continue
        rows = pq.read_table(io.BytesIO(data)).slice(part.first, part.rows)
        ours = set(rows["_source_key"].to_pylist()) == {source_key}
        if ours and rows.num_rows == part.rows:
            found[part] = rows
    return found


def _own_files(
    lake: Storage, source_key: str, ranges: dict[SharedPart, pa.Table]
) -> dict[SharedPart, str]:
    """Each range's rows written beside its shared file, under a name of the object's own
    that no earlier file has (run_file_name: a table's files are never overwritten)."""
    token = uuid.uuid4().hex[:12]
    written = {}
    for part, rows in ranges.items():
        hour = rows["_arrival_hour"][0].as_py()
        key = f"{part.file.rsplit('/', 1)[0]}/{run_file_name(output_name(hour, source_key), token)}"
        lake.write(key, parquet_bytes(rows, no_dictionary={"_position"}))
        written[part] = key
    return written


@dataclass
class _Registrar:
    """Re-registers an object's cast files in `cleaned.<stream>` (no table: nothing to do)."""

    tables: LakeTables | None
    stream: str

    def register(self, source_key: str, keys: list[str]) -> None:
        """One commit: the object's rows in the table (by source key, within the days of
        `keys`: its files of before, lake.iceberg.rewrite's copies of them, its rows in a
        shared file) replaced by `keys` (its own files cast in place, its new files)."""
        if self.tables is None or self.tables.load(CLEANED, self.stream) is None:
            return  # files from before the tables: nothing registered to replace
        days = sorted({d for k in keys if (d := layout.file_day(k)) is not None})
        commit_files(
            self.tables,
            CLEANED,
            self.stream,
            keys,
            TableShape(whole_stats=(SOURCE_KEY[CLEANED],)),
            replace=In(SOURCE_KEY[CLEANED], [source_key]),
            replace_days=days,
            summary={"lake.stream": self.stream, "lake.retyped": source_key[:200]},
        )
