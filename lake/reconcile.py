"""Reconciliation: landed objects that no cleaning run has processed, hour folder by hour.

The landing scan finds new objects cheaply but can miss one that lands, named early,
below the key its listing starts from (lake.landing_scan). Reconciliation lists whole
hour folders, from the current hour back over the last days, and compares them with the
cleaning ledger (one manifest per processed object, lake.cleaning.hour), a few hours at a
time, so it is slow and thorough where the scan is fast and near. Objects that landed in
the last `grace` are left out: the landing scan's runs for them may still be queued.

With the lake's tables it also confirms that each object the ledger has processed has its
cleaned rows in the cleaned Iceberg table, and reports those that do not (their rows
are invisible to every reader; the opposite, files committed but no manifest, is a run
killed between its commit and its ledger, which the next run heals). One scan plan per
hour, pruned to the hour's objects by `_source_key`: a run commits all of an object's
files at once, so an object whose output name is among the planned files is whole. The
other planned files hold several objects' rows (a file shared by a pass's objects, a
compacted day, a copy-on-write or retyped copy of either): their `_source_key` column
alone is read, once per file per call. An object found in neither costs a read of its
manifest: it is missing unless the manifest records no cleaned row (all quarantined or
duplicates).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.expressions import In
from pyiceberg.table import Table

from lake import layout
from lake.cleaning.commit import SOURCE_KEY
from lake.firehose import hour_prefix
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.ledger import Ledger, output_name, output_name_of_file, read_ledger, read_manifest
from lake.storage import ObjectInfo, Storage


@dataclass
class ReconcileCursor:
    """The next hour to check, walking back from the newest; None starts a new round."""

    next_hour: datetime | None = None

    def to_json(self) -> str:
        return json.dumps({"next_hour": self.next_hour.isoformat() if self.next_hour else None})

    @classmethod
    def from_json(cls, text: str | None) -> ReconcileCursor:
        doc = json.loads(text) if text else {}
        hour = doc.get("next_hour")
        return cls(datetime.fromisoformat(hour) if hour else None)


@dataclass
class Reconciled:
    """What a call found, and where the next one starts."""

    unprocessed: dict[datetime, list[ObjectInfo]]  # by arrival hour: objects no run processed
    uncatalogued: dict[datetime, list[str]]  # by arrival hour: processed, not in the table
    cursor: ReconcileCursor


def unprocessed_objects(
    landing: Storage,
    lake: Storage,
    stream: str,
    hour: datetime,
    landed_before: datetime | None = None,
) -> list[ObjectInfo]:
    """The objects of one arrival hour the ledger has no manifest for (in their version)
    and, with `landed_before`, that landed before it."""
    ledger = read_ledger(lake, stream, hour)
    landed = list(landing.list(hour_prefix(stream, hour)))
    return _unprocessed(ledger, landed, landed_before)


def _unprocessed(
    ledger: Ledger, landed: list[ObjectInfo], landed_before: datetime | None
) -> list[ObjectInfo]:
    todo = [o for o in landed if not ledger.is_done(o)]
    return [o for o in todo if landed_before is None or o.last_modified < landed_before]


def uncatalogued_objects(
    lake: Storage,
    tables: LakeTables,
    ledger: Ledger,
    landed: list[ObjectInfo],
    read: dict[str, frozenset[str]] | None = None,
) -> list[str]:
    """Keys of the hour's objects the ledger has processed whose cleaned rows the cleaned
    table's current snapshot does not hold. `read` remembers the source keys of the
    files shared by several objects read so far (across the hours of one call)."""
    done = [o for o in landed if ledger.is_done(o)]
    if not done:
        return []
    held = _keys_held(tables, ledger, sorted({o.key for o in done}), {} if read is None else read)
    missing = []
    for info in done:
        if info.key not in held and _has_cleaned_rows(lake, ledger.current_manifest(info)):
            missing.append(info.key)
    return missing


def _keys_held(
    tables: LakeTables, ledger: Ledger, keys: list[str], read: dict[str, frozenset[str]]
) -> set[str]:
    """The `keys` the cleaned table's current files hold rows of: the owners of the planned
    files named after an object, then the keys found in the others' `_source_key`."""
    table = tables.load(CLEANED, ledger.stream)
    if table is None or table.current_snapshot() is None:
        return set()
    owner_of = {output_name(ledger.hour, k): k for k in keys}
    held: set[str] = set()
    others = []
    for task in table.scan(row_filter=In(SOURCE_KEY[CLEANED], keys)).plan_files():
        path = task.file.file_path
        lake_key = tables.key_of(path) or ""
        owner = owner_of.get(output_name_of_file(lake_key.rsplit("/", 1)[-1]))
        if owner is None:
            others.append(path)
        else:
            held.add(owner)
    wanted = set(keys) - held
    for path in others:
        if not wanted:
            break
        if path not in read:
            read[path] = _source_keys_in(table, path)
        held |= read[path] & wanted
        wanted -= read[path]
    return held


def _source_keys_in(table: Table, path: str) -> frozenset[str]:
    """The distinct `_source_key` values of one data file (that column alone read)."""
    with table.io.new_input(path).open() as stream:
        column = pq.ParquetFile(stream).read(columns=[SOURCE_KEY[CLEANED]]).column(0)
    return frozenset(k for k in pc.unique(column).to_pylist() if k is not None)


def _has_cleaned_rows(lake: Storage, manifest_key: str | None) -> bool:
    """Whether the manifest records cleaned rows (one gone meanwhile was replaced by a
    newer run's, which the next call checks: no)."""
    doc = read_manifest(lake, manifest_key) if manifest_key else None
    if not isinstance(doc, dict):
        return False
    cleaned = doc.get("records_cleaned")
    if type(cleaned) is int:
        return cleaned > 0
    files = doc.get("files") or []  # a manifest without counts: does it name cleaned rows
    return bool(doc.get("shared")) or any(
        isinstance(f, str) and layout.is_cleaned_file(f) for f in files
    )


def reconcile_some_hours(
    landing: Storage,
    lake: Storage,
    stream: str,
    cursor: ReconcileCursor,
    newest: datetime,
    oldest: datetime,
    hours_per_call: int = 24,
    landed_before: datetime | None = None,
    tables: LakeTables | None = None,
) -> Reconciled:
    """Check up to `hours_per_call` hours, from the cursor back to `oldest` (then start
    again at `newest`): the hours with unprocessed objects (landed before `landed_before`)
    and, with `tables`, with processed objects missing from the cleaned table."""
    found = Reconciled({}, {}, ReconcileCursor(None))
    read: dict[str, frozenset[str]] = {}  # shared files' source keys, read once a call
    hour = cursor.next_hour if cursor.next_hour and cursor.next_hour <= newest else newest
    for _ in range(hours_per_call):
        if hour < oldest:
            return found
        ledger = read_ledger(lake, stream, hour)
        landed = list(landing.list(hour_prefix(stream, hour)))
        if missing := _unprocessed(ledger, landed, landed_before):
            found.unprocessed[hour] = missing
        if tables is not None and (
            lost := uncatalogued_objects(lake, tables, ledger, landed, read)
        ):
            found.uncatalogued[hour] = lost
        hour -= timedelta(hours=1)
    found.cursor = ReconcileCursor(hour)
    return found
