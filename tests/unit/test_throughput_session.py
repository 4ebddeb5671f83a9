"""One CleaningSession (one DuckDB connection) for every hour of a run: each hour's output
is what it would be on a connection of its own, nothing of an hour stays on the shared
connection, and a later hour drops the duplicates of an earlier one."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from lake.cleaning.hour import CleaningSession, clean_hour
from lake.firehose import hour_prefix, object_key
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.unit.test_cleaning import TABLE

SPEC = load_streams()["robot_telemetry"]
FIRST = datetime(2026, 11, 21, 8, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def land(landing: LocalStorage, hour: datetime, ids: list[str]) -> None:
    records = [
        {"event_id": i, "ts": f"{hour:%Y-%m-%dT%H}:{n:02d}:00Z", "robot_id": "R1"}
        for n, i in enumerate(ids)
    ]
    text = "".join(json.dumps(r) for r in records)
    key = object_key(SPEC.name, hour + timedelta(minutes=5), object_id=f"{hour:%H}")
    landing.write(key, gzip.compress(text.encode()))


def clean(landing: LocalStorage, lake: LocalStorage, hour: datetime, session=None):
    objects = list(landing.list(hour_prefix(SPEC.name, hour)))
    return clean_hour(SPEC, TABLE, landing, lake, hour, objects, session=session)


def event_ids(lake_root: Path) -> list[str]:
    files = sorted(str(p) for p in (lake_root / "cleaned").rglob("*.parquet"))
    rows = duckdb.sql("SELECT event_id FROM read_parquet(?) ORDER BY 1", params=[files])
    return [r[0] for r in rows.fetchall()]


def test_hours_of_one_session_clean_as_hours_on_their_own(tmp_path: Path) -> None:
    landing = LocalStorage(tmp_path / "landing")
    land(landing, FIRST, ["a", "b", "c"])
    land(landing, FIRST + timedelta(hours=1), ["c", "d"])  # c: a duplicate of hour 1's
    land(landing, FIRST + timedelta(hours=2), ["e"])
    hours = [FIRST + timedelta(hours=n) for n in range(3)]

    alone = LocalStorage(tmp_path / "alone")
    reports_alone = [clean(landing, alone, h) for h in hours]
    shared = LocalStorage(tmp_path / "shared")
    with CleaningSession(DEFAULTS) as session:
        reports_shared = []
        for h in hours:
            reports_shared.append(clean(landing, shared, h, session))
            left = (
                session.con.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE temporary"
                ).fetchall()[0][0]
                + session.con.execute(
                    "SELECT count(*) FROM duckdb_views() WHERE temporary AND NOT internal"
                ).fetchall()[0][0]
            )
            assert left == 0
            assert [p.name for p in session.scratch.iterdir()] == []

    assert event_ids(tmp_path / "shared") == ["a", "b", "c", "d", "e"]
    assert event_ids(tmp_path / "shared") == event_ids(tmp_path / "alone")
    counts = [(r.records_in, r.records_cleaned, r.duplicates_dropped) for r in reports_shared]
    assert counts == [(3, 3, 0), (2, 1, 1), (1, 1, 0)]
    assert counts == [
        (r.records_in, r.records_cleaned, r.duplicates_dropped) for r in reports_alone
    ]
    # each hour's dedup keys state holds its own keys only (NEW_KEYS is not carried over)
    state = sorted((tmp_path / "shared" / "_state" / "keys").rglob("*.parquet"))
    per_hour = [duckdb.sql(f"SELECT count(*) FROM '{p}'").fetchall()[0][0] for p in state]
    assert per_hour == [3, 1, 1]


def test_a_session_with_nothing_to_clean_opens_no_connection(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    with CleaningSession(DEFAULTS) as session:
        report = clean(landing, lake, FIRST, session)
        assert session._con is None and session._tmp is None
    assert report.records_in == 0
