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
killed between its commit and its ledger, which the next run heals). The table's files
are planned once a call, for all its hours, and the hours' objects matched to them by
name, by `_source_key` bounds and, for files several objects share, by that column read
once a file (lake.held_keys). An object found in none costs a read of its manifest: it
is missing unless the manifest records no cleaned row (all quarantined or
duplicates).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from lake import layout
from lake.firehose import hour_prefix
from lake.held_keys import keys_held, plan_files
from lake.iceberg.catalog import LakeTables
from lake.ledger import Ledger, output_name, read_ledger, read_manifest
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
    """Keys of the hour's objects the ledger has processed whose cleaned rows the cleaned
    table's current snapshot does not hold."""
    return _uncatalogued(lake, tables, ledger.stream, [(ledger, landed)]).get(ledger.hour, [])


def _uncatalogued(
    lake: Storage, tables: LakeTables, stream: str, walked: list[tuple[Ledger, list[ObjectInfo]]]
) -> dict[datetime, list[str]]:
    """By arrival hour, the walked hours' processed objects the cleaned table does not
    hold: one scan plan for all the hours."""
    done = {ledger.hour: [o for o in landed if ledger.is_done(o)] for ledger, landed in walked}
    names = {output_name(hour, o.key): o.key for hour, objects in done.items() for o in objects}
    if not names:
        return {}
    files = plan_files(tables, stream, [hour for hour, objects in done.items() if objects])
    held = set() if files is None else keys_held(files, names)
    found = {}
    for ledger, _ in walked:
        missing = [
            o.key
            for o in done[ledger.hour]
            if o.key not in held and _has_cleaned_rows(lake, ledger.current_manifest(o))
        ]
        if missing:
            found[ledger.hour] = missing
    return found


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
    start = cursor.next_hour if cursor.next_hour and cursor.next_hour <= newest else newest
    hours = [start - timedelta(hours=n) for n in range(hours_per_call)]
    hours = [h for h in hours if h >= oldest]
    walked = []
    for hour in hours:
        ledger = read_ledger(lake, stream, hour)
        landed = list(landing.list(hour_prefix(stream, hour)))
        if missing := _unprocessed(ledger, landed, landed_before):
            found.unprocessed[hour] = missing
        walked.append((ledger, landed))
    if tables is not None:
        found.uncatalogued = _uncatalogued(lake, tables, stream, walked)
    if len(hours) == hours_per_call:  # else the round reached `oldest`: a new one next
        found.cursor = ReconcileCursor(start - timedelta(hours=hours_per_call))
    return found
