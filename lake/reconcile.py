"""Reconciliation: landed objects that no cleaning run has processed, hour folder by hour.

The landing scan finds new objects cheaply but can miss one that lands, named early,
below the key its listing starts from (lake.landing_scan). Reconciliation lists whole
hour folders, from the current hour back over the last days, and compares them with the
cleaning ledger (one manifest per processed object, lake.cleaning.hour), a few hours at a
time, so it is slow and thorough where the scan is fast and near. Objects that landed in
the last `grace` are left out: the landing scan's runs for them may still be queued.

With the lake's tables it also confirms that each object the ledger has processed has its
cleaned files in the cleaned Iceberg table, and reports those that do not (their files
are invisible to every reader; the opposite, files committed but no manifest, is a run
killed between its commit and its ledger, which the next run heals). One scan plan per
hour, pruned to the hour's objects by `_source_key`: a run commits all of an object's
files at once, so an object whose output name is among the planned files is whole; only
the others (no cleaned file seen: all quarantined or duplicates, or missing) cost a read
of their manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyiceberg.expressions import In

from lake import layout
from lake.cleaning.commit import SOURCE_KEY
from lake.firehose import hour_prefix
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.ledger import Ledger, files_of, output_name, read_ledger
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
    lake: Storage, tables: LakeTables, ledger: Ledger, landed: list[ObjectInfo]
) -> list[str]:
    """Keys of the hour's objects the ledger has processed whose cleaned files the cleaned
    table's current snapshot does not hold."""
    done = [o for o in landed if ledger.is_done(o)]
    if not done:
        return []
    planned: set[str] = set()
    table = tables.load(CLEANED, ledger.stream)
    if table is not None and table.current_snapshot() is not None:
        scan = table.scan(row_filter=In(SOURCE_KEY[CLEANED], sorted({o.key for o in done})))
        planned = {k for t in scan.plan_files() if (k := tables.key_of(t.file.file_path))}
    names = {k.rsplit("/", 1)[-1] for k in planned}
    missing = []
    for info in done:
        if output_name(ledger.hour, info.key) in names:
            continue
        manifest = ledger.current_manifest(info)
        cleaned = [
            f for f in files_of(lake, [manifest] if manifest else []) if layout.is_cleaned_file(f)
        ]
        if any(f not in planned for f in cleaned):
            missing.append(info.key)
    return missing


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
    hour = cursor.next_hour if cursor.next_hour and cursor.next_hour <= newest else newest
    for _ in range(hours_per_call):
        if hour < oldest:
            return found
        ledger = read_ledger(lake, stream, hour)
        landed = list(landing.list(hour_prefix(stream, hour)))
        if missing := _unprocessed(ledger, landed, landed_before):
            found.unprocessed[hour] = missing
        if tables is not None and (lost := uncatalogued_objects(lake, tables, ledger, landed)):
            found.uncatalogued[hour] = lost
        hour -= timedelta(hours=1)
    found.cursor = ReconcileCursor(hour)
    return found
