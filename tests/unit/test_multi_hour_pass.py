"""clean_hours: a range run's hours cleaned in shared passes give what cleaning them hour
by hour gives (rows, files, quarantine, ledger, dedup keys, per-hour reports), on real
Parquet in local folders."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.cleaning.hour import CleaningSession, _hour_groups, clean_hour, clean_hours
from lake.cleaning.key_files import day_keys
from lake.cleaning.tables import RUN_KEYS
from lake.firehose import hour_prefix, object_key
from lake.settings import DEFAULTS, Settings
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.incremental_lake import ROBOT_COLUMNS, catalog_table

SPEC = load_streams()["robot_telemetry"]  # lateness 48 h, event times up to 168 h ahead
TABLE = catalog_table("robot_telemetry", [*ROBOT_COLUMNS, ("count", "int")])
FIRST = datetime(2026, 11, 21, 8, tzinfo=UTC)
HOURS = [FIRST + timedelta(hours=n) for n in range(4)]  # 08:00 .. 11:00
INGESTED = datetime(2026, 11, 21, 12, 30, tzinfo=UTC)
# past 08:00's hour + 168 h (09:00 on 11-28): too far ahead for an 08:00 object, not for 11:00's
AHEAD = "2026-11-28T10:30:00Z"


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def rec(eid: str, ts: str, **extra: Any) -> str:
    return json.dumps({"event_id": eid, "ts": ts, "robot_id": "R1", **extra})


def land(landing: LocalStorage) -> None:
    """Objects over the hour 07:00 (cleaned first, by an earlier run) and 08:00 .. 11:00."""
    objects = {
        (7, 5, "early"): rec("e11", "2026-11-21T07:10:00Z"),
        (8, 1, "a"): rec("e1", "2026-11-21T08:01:00Z")
        + rec("e2", "2026-11-21T08:02:00Z")
        + rec("e2", "2026-11-21T08:02:00Z")  # a duplicate in its own object
        + rec("e3", "2026-11-21T08:03:00Z", count="many"),  # does not cast
        (8, 30, "b"): rec("e4", AHEAD) + rec("e5", "2026-11-21T08:40:00Z"),
        (9, 2, "c"): rec("e1", "2026-11-21T08:01:00Z")  # kept in hour 08
        + rec("e11", "2026-11-21T07:10:00Z")  # kept by the earlier run
        + rec("e6", "2026-11-20T23:00:00Z"),  # late, within the lateness
        (10, 7, "d"): rec("e7", "2026-11-21T10:07:00Z")
        + '{"event_id": "broken", "ts": '  # malformed: the Python splitter's way
        + rec("e6", "2026-11-20T23:00:00Z"),
        (11, 0, "e"): rec("e8", AHEAD) + rec("e9", "2026-11-21T11:15:00Z"),
    }
    for (hour, minute, oid), text in objects.items():
        written = FIRST.replace(hour=hour, minute=minute)
        landing.write(
            object_key(SPEC.name, written, object_id=oid), gzip.compress(text.encode(), mtime=0)
        )


def batches(landing: LocalStorage) -> dict[datetime, list]:
    return {h: list(landing.list(hour_prefix(SPEC.name, h))) for h in HOURS}


def cleaned_lake(
    landing: LocalStorage, root: Path, how: str, settings: Settings = DEFAULTS
) -> tuple[LocalStorage, dict]:
    """The landed objects cleaned into a lake at `root`: the earlier hour first, then HOURS
    hour by hour (`how` = "hourly") or in one clean_hours run; the lake and the reports."""
    lake = LocalStorage(root)
    early = FIRST - timedelta(hours=1)
    objects = list(landing.list(hour_prefix(SPEC.name, early)))
    clean_hour(SPEC, TABLE, landing, lake, early, objects, ingested_at=INGESTED)
    if how == "hourly":
        reports = {
            h: clean_hour(
                SPEC, TABLE, landing, lake, h, objs, ingested_at=INGESTED, settings=settings
            )
            for h, objs in batches(landing).items()
        }
    else:
        reports = clean_hours(
            SPEC, TABLE, landing, lake, batches(landing), INGESTED, settings=settings
        )
    return lake, reports


def lake_contents(lake: LocalStorage) -> dict[str, Any]:
    """Every Parquet file's rows and every ledger manifest, by key (dedup key files as
    sorted rows; their compacted copies left out, being a cache of them)."""
    out: dict[str, Any] = {}
    for info in lake.list(""):
        if info.key.endswith("compacted.parquet"):
            continue
        if info.key.endswith(".parquet"):
            rows = pq.read_table(lake.path(info.key)).to_pylist()
            out[info.key] = sorted(rows, key=repr) if "/keys/" in info.key else rows
        elif info.key.startswith("_state/cleaned/"):
            out[info.key] = json.loads(lake.read(info.key))
    return out


def cleaned_ids(lake: LocalStorage) -> list[str]:
    return sorted(
        r["event_id"]
        for k, rows in lake_contents(lake).items()
        if k.startswith("cleaned/")
        for r in rows
    )


def test_one_run_over_four_hours_matches_hour_by_hour(
    landing: LocalStorage, tmp_path: Path
) -> None:
    land(landing)
    hourly_lake, hourly = cleaned_lake(landing, tmp_path / "hourly", "hourly")
    one_pass_lake, one_pass = cleaned_lake(landing, tmp_path / "one", "run")
    one_each = replace(DEFAULTS, clean_chunk_bytes=1)  # a pass per object, across hours
    many_lake, many = cleaned_lake(landing, tmp_path / "many", "run", one_each)
    sizes = [sum(o.size for o in objs) for objs in batches(landing).values()]
    two_hours = replace(DEFAULTS, clean_chunk_bytes=sizes[0] + sizes[1])  # groups of 2 hours
    paired_lake, paired = cleaned_lake(landing, tmp_path / "paired", "run", two_hours)

    expected = lake_contents(hourly_lake)
    assert lake_contents(one_pass_lake) == expected
    assert lake_contents(many_lake) == expected
    assert lake_contents(paired_lake) == expected
    for reports in (one_pass, many, paired):
        assert {h: r.as_metadata() for h, r in reports.items()} == {
            h: r.as_metadata() for h, r in hourly.items()
        }
        assert [r.late_beyond_allowed for r in reports.values()] == [0, 0, 0, 0]
        assert {h: sorted(r.files_written) for h, r in reports.items()} == {
            h: sorted(r.files_written) for h, r in hourly.items()
        }
    # what the records say, not what the code made of them
    assert cleaned_ids(one_pass_lake) == ["e1", "e11", "e2", "e5", "e6", "e7", "e8", "e9"]
    counts = {
        h.hour: (r.records_in, r.records_cleaned, r.records_quarantined, r.duplicates_dropped)
        for h, r in one_pass.items()
    }
    assert counts == {8: (6, 3, 2, 1), 9: (3, 1, 0, 2), 10: (3, 1, 1, 1), 11: (2, 2, 0, 0)}
    assert one_pass[FIRST].event_dates == {"2026-11-21"}
    assert one_pass[HOURS[1]].event_dates == {"2026-11-20"}
    assert one_pass[HOURS[3]].event_dates == {"2026-11-21", "2026-11-28"}


def test_each_objects_arrival_hour_bounds_its_event_times(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    """One pass over 08:00 and 11:00: the same event time is too far ahead for the
    08:00 object (quarantined, naming 08:00's bound) and fine for the 11:00 one."""
    land(landing)
    lake, reports = cleaned_lake(landing, lake.root, "run")
    rows = {k: v for k, v in lake_contents(lake).items() if k.startswith("quarantine/")}
    reasons = {r["raw_text"]: r for file_rows in rows.values() for r in file_rows}
    e4 = reasons[rec("e4", AHEAD)]
    assert e4["reason_code"] == "event_time_out_of_range"
    assert e4["reason"].endswith("is not within 1970-01-01T00:00:00Z .. 2026-11-28T09:00:00Z")
    assert e4["arrival_hour"] == FIRST
    assert dict(reports[FIRST].quarantined_by_reason) == {
        "event_time_out_of_range": 1,
        "cannot_cast": 1,
    }
    eleven = [
        r
        for k, file_rows in lake_contents(lake).items()
        if k.startswith("cleaned/robot_telemetry/dt=2026-11-28/")
        for r in file_rows
    ]
    assert [(r["event_id"], r["_arrival_hour"]) for r in eleven] == [("e8", HOURS[3])]


def test_a_long_run_is_cleaned_in_groups_of_hours_bounded_by_stored_bytes(
    landing: LocalStorage,
) -> None:
    """A group's kept keys stay in DuckDB until its end: groups hold about
    clean_chunk_bytes of stored objects (an hour at least), in hour order."""
    land(landing)
    todo = batches(landing)
    sizes = [sum(o.size for o in objs) for objs in todo.values()]
    groups = list(_hour_groups(todo, sizes[0] + sizes[1]))
    assert [list(g) for g in groups][0] == HOURS[:2]
    assert [h for g in groups for h in g] == HOURS
    assert all(
        sum(o.size for objs in g.values() for o in objs) <= sizes[0] + sizes[1] or len(g) == 1
        for g in groups
    )
    assert [list(g) for g in _hour_groups(todo, 1)] == [[h] for h in HOURS]


def test_each_hour_counts_its_own_records_older_than_its_lateness(
    landing: LocalStorage, tmp_path: Path
) -> None:
    """late_beyond_allowed of a range run is per hour (counted for all hours at once):
    records cleaned but older than their own hour's dedup window (48 h)."""
    texts = {
        8: rec("a1", "2026-11-21T08:05:00Z"),
        9: rec("b1", "2026-11-10T01:00:00Z") + rec("b2", "2026-11-21T09:05:00Z"),
        10: rec("c1", "2026-11-19T09:00:00Z"),  # within 10:00's window (from 11-19)
        11: rec("d1", "2026-11-01T00:00:00Z") + rec("d2", "2026-11-18T23:59:00Z"),
    }
    for hour, text in texts.items():
        landing.write(
            object_key(SPEC.name, FIRST.replace(hour=hour), object_id=f"o{hour}"),
            gzip.compress(text.encode(), mtime=0),
        )
    todo = batches(landing)
    run = clean_hours(SPEC, TABLE, landing, LocalStorage(tmp_path / "run"), todo, INGESTED)
    hourly = LocalStorage(tmp_path / "hourly")
    by_hour = {
        h: clean_hour(SPEC, TABLE, landing, hourly, h, objs, ingested_at=INGESTED)
        for h, objs in todo.items()
    }
    assert [r.late_beyond_allowed for r in run.values()] == [0, 1, 0, 2]
    assert [r.late_beyond_allowed for r in by_hour.values()] == [0, 1, 0, 2]
    assert [r.records_cleaned for r in run.values()] == [1, 2, 1, 2]


def test_a_range_run_reads_its_hours_keys_in_one_scan(
    landing: LocalStorage, tmp_path: Path
) -> None:
    """The hours' kept keys are saved from one scan of the run's keys, not two DuckDB
    queries an hour (the dates, then each date's keys), and give the key files hour by
    hour cleaning gives: an object overwritten with records of another date takes its
    earlier keys out of their dates (which get no new keys) and saves its new ones."""
    land(landing)
    hourly_lake, _ = cleaned_lake(landing, tmp_path / "hourly", "hourly")
    run_lake, _ = cleaned_lake(landing, tmp_path / "run", "run")
    moved = rec("e20", "2026-11-19T23:00:00Z") + rec("e21", "2026-11-21T11:59:00Z")
    landing.write(
        object_key(SPEC.name, FIRST.replace(hour=9, minute=2), object_id="c"),
        gzip.compress(moved.encode(), mtime=0),
    )
    landing.write(  # and one of the next hour: the run cleans two hours
        object_key(SPEC.name, FIRST.replace(hour=10, minute=7), object_id="d"),
        gzip.compress(rec("e22", "2026-11-21T10:30:00Z").encode(), mtime=0),
    )
    for h, objs in batches(landing).items():
        clean_hour(SPEC, TABLE, landing, hourly_lake, h, objs, ingested_at=INGESTED)
    with CleaningSession() as session:
        session.con.execute("CALL enable_logging('QueryLog')")
        reports = clean_hours(
            SPEC, TABLE, landing, run_lake, batches(landing), INGESTED, session=session
        )
        logged = session.con.execute("SELECT message FROM duckdb_logs WHERE type = 'QueryLog'")
        reads = [m for (m,) in logged.fetchall() if f"FROM {RUN_KEYS}" in m]

    assert [r.objects for r in reports.values()] == [0, 1, 1, 0]
    assert effective_keys(run_lake) == effective_keys(hourly_lake)
    assert {k: v for k, v in lake_contents(run_lake).items() if "/keys/" not in k} == {
        k: v for k, v in lake_contents(hourly_lake).items() if "/keys/" not in k
    }
    c_keys = {
        day: sum("-09-02-00-c-" in r["obj"] for r in rows)
        for day, rows in effective_keys(run_lake).items()
    }
    # e6 (kept from c on 11-20) gone; e20 and e21 kept; e1 and e11 were never c's
    assert c_keys == {"2026-11-19": 1, "2026-11-20": 0, "2026-11-21": 1, "2026-11-28": 0}
    assert len(reads) == 2  # the hours' dates counted (late records), then the one scan


def effective_keys(lake: LocalStorage) -> dict[str, list[dict]]:
    """Each event date's dedup keys as a run reads them (hour files, then run files, each
    taking out the earlier keys of the objects it replaces), as sorted rows."""
    folder = f"_state/keys/{SPEC.name}/"
    days = sorted({i.key[len(folder) :].split("/")[0] for i in lake.list(folder)})
    out = {}
    with duckdb.connect() as con:
        for name in days:
            day = date.fromisoformat(name.removeprefix("dt="))
            files = [i.key for i in lake.list(f"{folder}{name}/") if i.key.endswith(".parquet")]
            probe = pa.concat_arrays(
                [pq.read_table(lake.path(f))["hi"].combine_chunks() for f in files]
            )
            rows = pa.concat_tables(day_keys(lake, SPEC.name, day, probe, con)).to_pylist()
            out[day.isoformat()] = sorted(({**r, "obj": str(r["obj"])} for r in rows), key=repr)
    return out
