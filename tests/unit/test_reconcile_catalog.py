"""Reconciliation against the cleaned Iceberg table: processed objects whose cleaned rows
the table does not hold are reported; committed ones (in their own files, a compacted
file or a file shared with other objects), and ones with no cleaned row, are not."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table, Transaction

from lake.cleaning import writing
from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix, object_key
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.commit import with_retries
from lake.iceberg.compaction import compact_day
from lake.iceberg.scan import committed_keys
from lake.reconcile import ReconcileCursor, reconcile_some_hours
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.unit.shared_lake import share

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)


def _put(landing: LocalStorage, minute: int, oid: str, body: bytes) -> str:
    key = object_key(SPEC.name, HOUR + timedelta(minutes=minute), object_id=oid)
    landing.write(key, gzip.compress(body))
    return key


def _record(event_id: str) -> bytes:
    return json.dumps({"event_id": event_id, "ts": HOUR.isoformat(), "robot_id": "R1"}).encode()


def test_processed_objects_missing_from_the_cleaned_table_are_reported(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    tables = LakeTables(replace(DEFAULTS, lake_uri=lake.uri))
    kept = _put(landing, 1, "kept", _record("a"))
    lost = _put(landing, 2, "lost", _record("b") + _record("c"))
    _put(landing, 3, "bad", b"not json at all")  # all quarantined: no cleaned file
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    clean_hour(SPEC, None, landing, lake, HOUR, objects, tables=tables)

    def check():
        return reconcile_some_hours(
            landing, lake, SPEC.name, ReconcileCursor(), HOUR, HOUR, 1, tables=tables
        )

    assert check().uncatalogued == {} and check().unprocessed == {}
    # the lost object's rows leave the table behind the ledger's back
    table_id = tables.table_id("cleaned", SPEC.name)

    def drop_lost(table: Table) -> Transaction:
        tx = table.transaction()
        tx.delete(EqualTo("_source_key", lost))
        return tx

    with_retries(tables, table_id, drop_lost)
    assert tables.catalog.load_table(table_id).scan().to_arrow()["_source_key"].to_pylist() == [
        kept
    ]
    checked = check()
    assert checked.uncatalogued == {HOUR: [lost]}
    assert checked.unprocessed == {}  # the ledger still has it: no run is requested for it
    # without tables, only the ledger is compared
    assert (
        reconcile_some_hours(
            landing, lake, SPEC.name, ReconcileCursor(), HOUR, HOUR, 1
        ).uncatalogued
        == {}
    )


def _hour_of(landing: LocalStorage, lake: LocalStorage, tables: LakeTables, n: int) -> list[str]:
    """n objects of two records each cleaned into the table, and one all-quarantined."""
    keys = [_put(landing, i, f"o{i}", _record(f"{i}a") + _record(f"{i}b")) for i in range(n)]
    _put(landing, n, "bad", b"not json at all")
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    clean_hour(SPEC, None, landing, lake, HOUR, objects, tables=tables)
    return keys


def _uncatalogued(landing: LocalStorage, lake: LocalStorage, tables: LakeTables) -> dict:
    return reconcile_some_hours(
        landing, lake, SPEC.name, ReconcileCursor(), HOUR, HOUR, 1, tables=tables
    ).uncatalogued


def _drop(tables: LakeTables, key: str) -> None:
    """The object's rows out of the table behind the ledger's back."""

    def drop(table: Table) -> Transaction:
        tx = table.transaction()
        tx.delete(EqualTo("_source_key", key))
        return tx

    with_retries(tables, tables.table_id("cleaned", SPEC.name), drop)


def test_objects_of_a_compacted_day_are_catalogued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)  # small files to compact
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    tables = LakeTables(replace(DEFAULTS, lake_uri=lake.uri))
    keys = _hour_of(landing, lake, tables, 4)
    done = compact_day(tables, CLEANED, SPEC.name, HOUR.date(), 1 << 30, min_files=2)
    assert done.files_after == 1 and done.rows_written == 8
    assert _uncatalogued(landing, lake, tables) == {}
    _drop(tables, keys[2])  # copy-on-write of the compacted file without its rows
    assert _uncatalogued(landing, lake, tables) == {HOUR: [keys[2]]}


def test_objects_sharing_a_cleaned_file_are_catalogued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)  # own files first: shared_lake shares them
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    tables = LakeTables(replace(DEFAULTS, lake_uri=lake.uri))
    keys = _hour_of(landing, lake, tables, 4)
    [shared] = share(lake, tables, SPEC.name, keys[:3], HOUR)  # the fourth keeps its file
    assert sorted(committed_keys(tables, CLEANED, SPEC.name) or [])[0] == shared
    assert _uncatalogued(landing, lake, tables) == {}
    _drop(tables, keys[1])
    _drop(tables, keys[3])
    assert _uncatalogued(landing, lake, tables) == {HOUR: [keys[1], keys[3]]}
