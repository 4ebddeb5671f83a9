"""Reconciliation's table check over several arrival hours in one call: one scan plan a
call, whatever the hours, and the same answer for objects in their own files, in a
compacted file, in a file shared with objects whose keys sort oddly (UTF-8 bytes), and
in a copy-on-write file whose bounds still admit a key it no longer holds."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo
from pyiceberg.table import DataScan, Table, Transaction

from lake.cleaning import writing
from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix, object_key
from lake.held_keys import plan_files
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.commit import with_retries
from lake.iceberg.compaction import compact_day
from lake.ledger import output_name
from lake.reconcile import ReconcileCursor, reconcile_some_hours
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.unit.shared_lake import share

SPEC = load_streams()["robot_telemetry"]
H0 = datetime(2026, 11, 20, 23, tzinfo=UTC)  # the day before H1 and H2: compacted alone
H1 = H0 + timedelta(hours=1)
H2 = H0 + timedelta(hours=2)


class Lake:
    def __init__(self, root: Path) -> None:
        self.landing, self.lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
        self.tables = LakeTables(replace(DEFAULTS, lake_uri=self.lake.uri))

    def clean(self, hour: datetime, object_ids: list[str], second: int | None = None) -> list[str]:
        """Objects of two records each landed in `hour` (all at `second` when given, so
        their keys differ by the id alone) and cleaned with tables; their keys."""
        keys = []
        for n, oid in enumerate(object_ids):
            at = hour + timedelta(seconds=n if second is None else second)
            key = object_key(SPEC.name, at, object_id=oid)
            rows = (
                json.dumps({"event_id": f"{at:%H}{oid}{i}", "ts": at.isoformat(), "robot_id": "R1"})
                for i in "ab"
            )
            self.landing.write(key, gzip.compress("".join(rows).encode()))
            keys.append(key)
        landed = list(self.landing.list(hour_prefix(SPEC.name, hour)))
        clean_hour(SPEC, None, self.landing, self.lake, hour, landed, tables=self.tables)
        return keys

    def drop(self, key: str) -> None:
        """The object's rows out of the table behind the ledger's back."""

        def drop(table: Table) -> Transaction:
            tx = table.transaction()
            tx.delete(EqualTo("_source_key", key))
            return tx

        with_retries(self.tables, self.tables.table_id(CLEANED, SPEC.name), drop)

    def uncatalogued(self) -> dict[datetime, list[str]]:
        return reconcile_some_hours(
            self.landing, self.lake, SPEC.name, ReconcileCursor(), H2, H0, 3, tables=self.tables
        ).uncatalogued


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per scan plan made (the real DataScan.plan_files, counted)."""
    made: list[int] = []
    real = DataScan.plan_files

    def counted(self: DataScan):
        made.append(1)
        return real(self)

    monkeypatch.setattr(DataScan, "plan_files", counted)
    return made


def test_one_scan_plan_a_call_whatever_its_hours(tmp_path: Path, plans: list[int]) -> None:
    lake = Lake(tmp_path)
    for hour in (H0, H1, H2):
        lake.clean(hour, ["a", "b"])
    plans.clear()
    assert lake.uncatalogued() == {}
    assert len(plans) == 1


def test_own_compacted_shared_and_odd_keys_in_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plans: list[int]
) -> None:
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)  # own files first
    lake = Lake(tmp_path)
    compacted = lake.clean(H0, ["c0", "c1", "c2", "c3"])
    done = compact_day(lake.tables, CLEANED, SPEC.name, H0.date(), 1 << 30, min_files=2)
    assert done.files_after == 1
    # one second, so the ids alone order the keys: as UTF-8 bytes Z < ~ < é < 😀 (a
    # comparison of signed bytes would put é and 😀 first, outside the file's bounds)
    odd = lake.clean(H1, ["Zed", "~tilde", "é-acute", "😀-emoji"], second=7)
    share(lake.lake, lake.tables, SPEC.name, odd, H1)
    own = lake.clean(H2, ["o0", "o1", "o2"])
    plans.clear()
    assert lake.uncatalogued() == {}
    assert len(plans) == 1
    lake.drop(compacted[1])
    lake.drop(odd[2])  # é: inside the bounds the shared file's copy keeps (Zed .. 😀)
    lake.drop(own[0])
    plans.clear()  # the deletes plan too
    assert lake.uncatalogued() == {H0: [compacted[1]], H1: [odd[2]], H2: [own[0]]}
    assert len(plans) == 1


def test_the_plan_keeps_the_files_of_the_hours_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)  # a file an object, named after it
    lake = Lake(tmp_path)
    keys = {hour: lake.clean(hour, ["a", "b"]) for hour in (H0, H1, H2)}
    for asked, kept in (([H1], {H1}), ([H2], {H2}), ([H0, H2], {H0, H1, H2})):
        files = plan_files(lake.tables, SPEC.name, asked)
        assert files is not None
        assert files.named == {output_name(h, k) for h in kept for k in keys[h]}
        assert len(files.single) + len(files.ranges) == 2 * len(kept)
