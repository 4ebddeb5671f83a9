"""Reconciliation: landed objects that no cleaning run has processed, hour folder by hour.

The landing scan finds new objects cheaply but can miss one that lands, named early,
below the key its listing starts from (lake.landing_scan). Reconciliation lists whole
hour folders, from the current hour back over the last days, and compares them with the
cleaning ledger (one manifest per processed object, lake.cleaning.hour), a few hours at a
time, so it is slow and thorough where the scan is fast and near. Objects that landed in
the last `grace` are left out: the landing scan's runs for them may still be queued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from lake.firehose import hour_prefix
from lake.ledger import unprocessed
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


def unprocessed_objects(
    landing: Storage,
    lake: Storage,
    stream: str,
    hour: datetime,
    landed_before: datetime | None = None,
) -> list[ObjectInfo]:
    """The objects of one arrival hour the ledger has no manifest for (in their version)
    and, with `landed_before`, that landed before it."""
    todo = unprocessed(lake, stream, hour, list(landing.list(hour_prefix(stream, hour))))
    return [o for o in todo if landed_before is None or o.last_modified < landed_before]


def reconcile_some_hours(
    landing: Storage,
    lake: Storage,
    stream: str,
    cursor: ReconcileCursor,
    newest: datetime,
    oldest: datetime,
    hours_per_call: int = 24,
    landed_before: datetime | None = None,
) -> tuple[dict[datetime, list[ObjectInfo]], ReconcileCursor]:
    """Check up to `hours_per_call` hours, from the cursor back to `oldest` (then start
    again at `newest`); return the hours with unprocessed objects (landed before
    `landed_before`) and the next cursor."""
    found: dict[datetime, list[ObjectInfo]] = {}
    hour = cursor.next_hour if cursor.next_hour and cursor.next_hour <= newest else newest
    for _ in range(hours_per_call):
        if hour < oldest:
            return found, ReconcileCursor(None)
        missing = unprocessed_objects(landing, lake, stream, hour, landed_before)
        if missing:
            found[hour] = missing
        hour -= timedelta(hours=1)
    return found, ReconcileCursor(hour)
