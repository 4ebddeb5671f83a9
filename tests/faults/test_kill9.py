"""kill -9 of a cleaning run at each phase, and of a mart run, then a re-run: every record
accounted for, marts never see a half-written run, and the next hour is cleaned.

The run is a real subprocess over a real lake folder (tests/faults/killed_run.py); a
storage wrapper sends SIGKILL to its own process right after the N-th write, so the kill
lands between two writes of the chosen phase (cleaned files, quarantine, dedup keys,
ledger; mart file, Redshift files).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from fault_kit import HOUR, STREAM, assert_all_accounted, expected_ids, land, records_for

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix
from lake.marts import parse_mart
from lake.storage import LocalStorage
from lake.streams import load_streams
from lake.warehouse import Warehouse
from tests.faults import killed_run
from tests.mart_days import build_and_write

SPEC = load_streams()[STREAM]
DAY = HOUR.date()
COUNT_SQL = """-- partitioned_by: day
SELECT dt, count(*) AS records, count(DISTINCT event_id) AS distinct_ids
FROM cleaned.robot_telemetry WHERE dt = getvariable('mart_day') GROUP BY dt
"""
CHUNK = "3000"  # stored bytes a cleaning pass: two objects a pass, so three passes


def _run(mode: str, kill_after: int, **paths: str) -> subprocess.CompletedProcess:
    return killed_run.run(mode, kill_after, {"CLEAN_CHUNK_BYTES": CHUNK}, stream=STREAM, **paths)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[list[dict]]]:
    root = tmp_path_factory.mktemp("landing")
    objects = records_for(n_objects=6, per_object=20)
    keys = land(LocalStorage(root), objects)
    return root, keys, objects


@pytest.fixture(scope="module")
def clean_writes(landed, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The writes of a whole cleaning run, in order (a run that is never killed)."""
    root, _, _ = landed
    done = _run(
        "clean",
        0,
        landing=str(root),
        lake=str(tmp_path_factory.mktemp("dry")),
        hour=HOUR.isoformat(),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _phase(key: str) -> str:
    return key.split("/")[0] if not key.startswith("_state/") else "/".join(key.split("/")[:2])


def _kill_points(writes: list[str]) -> list[int]:
    """Right after the first and the last write of each phase, and mid-way through."""
    points = set()
    for phase in {_phase(k) for k in writes}:
        at = [i + 1 for i, k in enumerate(writes) if _phase(k) == phase]
        points.update({at[0], at[len(at) // 2], at[-1]})
    return sorted(p for p in points if p < len(writes))


def _mart_counts(lake: LocalStorage, tmp: Path) -> tuple[int, int]:
    sql = tmp / "sql" / "record_count.sql"
    sql.parent.mkdir(parents=True, exist_ok=True)
    sql.write_text(COUNT_SQL)
    spec = parse_mart(sql, {STREAM}, {"record_count"})
    build, _ = build_and_write(spec, DAY, lake, Warehouse(tmp / "wh" / "w.duckdb"))
    if build.result is None:  # no committed file at all: the input does not exist yet
        return (0, 0)
    rows = build.result.to_pylist()
    return (rows[0]["records"], rows[0]["distinct_ids"]) if rows else (0, 0)


def _committed_cleaned(lake: LocalStorage) -> int:
    return sum(
        json.loads(lake.read(i.key))["records_cleaned"]
        for i in lake.list(f"_state/cleaned/{STREAM}/")
    )


def test_the_run_under_test_writes_every_phase(clean_writes: list[str]) -> None:
    assert {_phase(k) for k in clean_writes} == {
        "cleaned",
        "quarantine",
        "_state/keys",
        "_state/cleaned",
        "_state/totals",  # the hour's running totals, after the manifests
    }
    assert len(_kill_points(clean_writes)) >= 8


def test_kill_9_at_each_phase_of_cleaning_then_a_rerun_accounts_for_everything(
    landed, clean_writes: list[str], tmp_path: Path
) -> None:
    root, keys, objects = landed
    landing = LocalStorage(root)
    for point in _kill_points(clean_writes):
        lake_dir = tmp_path / f"lake-{point}"
        killed = _run("clean", point, landing=str(root), lake=str(lake_dir), hour=HOUR.isoformat())
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        lake = LocalStorage(lake_dir)

        # readers see whole objects only: what the ledger has committed, each record once
        records, distinct = _mart_counts(lake, tmp_path / f"mart-{point}")
        assert records == distinct == _committed_cleaned(lake), point

        committed = len(list(lake.list(f"_state/cleaned/{STREAM}/")))
        infos = list(landing.list(hour_prefix(STREAM, HOUR)))
        rerun = clean_hour(SPEC, None, landing, lake, HOUR, infos)
        assert rerun.objects == len(keys) - committed  # committed objects are not redone
        assert_all_accounted(lake, keys, objects)
        assert _mart_counts(lake, tmp_path / f"mart-{point}") == (len(expected_ids(objects)),) * 2


def test_the_next_hour_is_cleaned_after_a_killed_run(landed, tmp_path: Path) -> None:
    root, _, _ = landed
    lake_dir = tmp_path / "lake"
    killed = _run("clean", 3, landing=str(root), lake=str(lake_dir), hour=HOUR.isoformat())
    assert killed.returncode == -signal.SIGKILL
    nxt_root = tmp_path / "landing-next"
    more = records_for(n_objects=2, per_object=5)
    land(LocalStorage(nxt_root), more, HOUR + timedelta(hours=1))
    nxt = LocalStorage(nxt_root)
    hour = HOUR + timedelta(hours=1)
    report = clean_hour(
        SPEC, None, nxt, LocalStorage(lake_dir), hour, list(nxt.list(hour_prefix(STREAM, hour)))
    )
    assert report.objects == 2 and report.records_in == sum(len(r) for r in more)


def test_kill_9_of_a_mart_run_then_a_rerun_leaves_lake_and_warehouse_in_step(
    landed, tmp_path: Path
) -> None:
    root, _, objects = landed
    landing = LocalStorage(root)
    lake_dir = tmp_path / "lake"
    lake = LocalStorage(lake_dir)
    clean_hour(SPEC, None, landing, lake, HOUR, list(landing.list(hour_prefix(STREAM, HOUR))))
    sql = tmp_path / "sql" / "record_count.sql"
    sql.parent.mkdir()
    sql.write_text(COUNT_SQL)
    warehouse = tmp_path / "wh" / "w.duckdb"
    paths = {"lake": str(lake_dir), "sql": str(sql), "day": str(DAY), "warehouse": str(warehouse)}
    shutil.copytree(lake_dir, tmp_path / "dry")
    dry_paths = {**paths, "lake": str(tmp_path / "dry"), "warehouse": str(tmp_path / "dry.duckdb")}
    dry = _run("mart", 0, **dry_paths)
    mart_writes = len(json.loads(dry.stdout)) if dry.returncode == 0 else 0
    assert mart_writes >= 4, dry.stderr
    spec = parse_mart(sql, {STREAM}, {"record_count"})
    want = len(expected_ids(objects))
    for point in range(1, mart_writes + 1):  # the last: killed before the warehouse copy
        killed = _run("mart", point, **paths)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        build, written = build_and_write(
            spec, date.fromisoformat(str(DAY)), lake, Warehouse(warehouse)
        )
        assert build.rows == 1 and written["warehouse_pending"] == ""
        with duckdb.connect(str(warehouse), read_only=True) as con:
            rows = con.execute("SELECT records, distinct_ids FROM marts.record_count").fetchall()
        assert rows == [(want, want)], point
