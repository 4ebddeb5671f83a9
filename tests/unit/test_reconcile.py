"""Reconciliation: hour folders compared with the cleaning ledger, a few hours at a time."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix, object_key
from lake.reconcile import ReconcileCursor, reconcile_some_hours, unprocessed_objects
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


def put(landing: LocalStorage, at: datetime, oid: str) -> str:
    key = object_key(SPEC.name, at, object_id=oid)
    record = {"event_id": oid, "ts": at.isoformat(), "robot_id": "R1"}
    landing.write(key, gzip.compress(json.dumps(record).encode()))
    return key


def test_an_object_no_run_processed_is_found_in_its_hour(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    put(landing, HOUR + timedelta(minutes=5), "a")
    put(landing, HOUR + timedelta(minutes=6), "b")
    clean_hour(SPEC, None, landing, lake, HOUR, list(landing.list(hour_prefix(SPEC.name, HOUR))))
    assert unprocessed_objects(landing, lake, SPEC.name, HOUR) == []

    # an upload of an old file, named before everything the landing scan has seen
    missed = put(landing, HOUR + timedelta(minutes=1), "0-old-upload")
    assert [o.key for o in unprocessed_objects(landing, lake, SPEC.name, HOUR)] == [missed]


def test_hours_are_checked_a_few_per_call_walking_back_then_again(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    newest, oldest = HOUR, HOUR - timedelta(hours=9)
    missed = put(landing, HOUR - timedelta(hours=7, minutes=-3), "missed")  # 01:03
    cursor, seen_hours, calls = ReconcileCursor(), [], 0
    while True:
        checked = reconcile_some_hours(
            landing,
            lake,
            SPEC.name,
            ReconcileCursor.from_json(cursor.to_json()),
            newest,
            oldest,
            hours_per_call=4,
        )
        found, cursor = checked.unprocessed, checked.cursor
        calls += 1
        seen_hours += [(h, [o.key for o in objs]) for h, objs in found.items()]
        if cursor.next_hour is None:
            break
    assert calls == 3  # 10 hours, 4 a call
    assert seen_hours == [(HOUR - timedelta(hours=7), [missed])]
    # the next call starts the round again from the newest hour
    again = reconcile_some_hours(
        landing, lake, SPEC.name, cursor, newest, oldest, hours_per_call=1
    ).cursor
    assert again.next_hour == newest - timedelta(hours=1)
