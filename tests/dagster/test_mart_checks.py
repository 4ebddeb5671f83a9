"""Mart asset checks, lineage and UI settings, materialized through Dagster on real files."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, AssetKey, FreshnessPolicy, materialize

from assets.marts import build_mart_asset
from lake.marts import MARTS_DIR, load_marts
from lake.simulator import Simulator, SimulatorConfig
from lake.streams import load_streams
from orchestration.definitions import daily, defs, ingest_assets, mart_assets

HOUR = "2026-11-21-08:00"
DAY = "2026-11-21"
STREAMS = load_streams()


def _record(i: int, robot: str | None, cow: str | None) -> dict:
    return {
        "event_id": f"e-{i}",
        "ts": f"2026-11-21T08:{i:02d}:00Z",
        "robot_id": robot,
        "cow_id": cow,
        "event_type": "milking_end",
        "milking": {"yield_kg": 10.0, "duration_s": 400},
    }


# (robot, cow): R01 three times, no robot twice (NULL keys are one key), C? missing once
RECORDS = [
    _record(i, robot, cow)
    for i, (robot, cow) in enumerate(
        [("R01", "C1"), ("R01", "C2"), ("R01", "C3"), (None, "C1"), (None, None), ("R02", "C4")]
    )
]


def _ingest(local_lake, write_concatenated, records: list[dict]) -> None:
    written = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
    write_concatenated(local_lake["landing"], "robot_telemetry", written, records, "o1")
    assert materialize(
        ingest_assets("robot_telemetry"), partition_key=HOUR, resources=local_lake["resources"]
    ).success


def _custom_marts(tmp_path: Path, files: dict[str, str]) -> list:
    folder = tmp_path / "marts_sql"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.sql").write_text(text)
    marts = load_marts(set(STREAMS.streams), folder).values()
    return [build_mart_asset(s, STREAMS, daily) for s in marts]


def _checks(result) -> dict:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def test_a_duplicate_key_fails_its_blocking_check_nulls_comparing_equal(
    local_lake, write_concatenated, tmp_path: Path
) -> None:
    _ingest(local_lake, write_concatenated, RECORDS)
    assets = _custom_marts(
        tmp_path,
        {
            "by_robot": "-- unique_key: dt, robot_id\nSELECT dt, robot_id, cow_id "
            "FROM cleaned.robot_telemetry\n",
            "after_by_robot": "-- unique_key: dt\nSELECT dt, count(*) AS n FROM marts.by_robot "
            "GROUP BY dt\n",
        },
    )
    result = materialize(
        assets, partition_key=DAY, resources=local_lake["resources"], raise_on_error=False
    )
    check = _checks(result)[("by_robot", "unique_key")]
    repeated = {k: n for k, n in Counter(r["robot_id"] for r in RECORDS).items() if n > 1}
    assert repeated == {"R01": 3, None: 2}
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert check.metadata["duplicate_keys"].value == len(repeated)
    assert check.metadata["rows_checked"].value == len(RECORDS)
    samples = check.metadata["sample_keys"].value
    assert [(s["robot_id"], s["_rows"]) for s in samples] == [("R01", 3), (None, 2)]
    # blocking: the mart reading it did not run on the bad rows
    built = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert built == {"by_robot"}


def test_a_null_in_a_not_null_column_fails_its_check(
    local_lake, write_concatenated, tmp_path: Path
) -> None:
    _ingest(local_lake, write_concatenated, RECORDS)
    assets = _custom_marts(
        tmp_path,
        {
            "milkings": "-- unique_key: event_id\n-- not_null: event_id, cow_id\n"
            "SELECT dt, event_id, cow_id FROM cleaned.robot_telemetry\n"
        },
    )
    result = materialize(assets, partition_key=DAY, resources=local_lake["resources"])
    checks = _checks(result)
    assert checks[("milkings", "unique_key")].passed
    check = checks[("milkings", "not_null")]
    no_cow = [r["event_id"] for r in RECORDS if r["cow_id"] is None]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    assert check.metadata["null_values"].value == len(no_cow) == 1
    assert check.metadata["nulls_by_column"].value == {"event_id": 0, "cow_id": 1}
    assert check.metadata["sample_keys"].value == [{"event_id": e} for e in no_cow]


@pytest.fixture
def simulated_hour(local_lake) -> dict:
    """An hour of the farm, its portal and its AWS account, ingested through Dagster."""
    sim = Simulator(SimulatorConfig(seed=3, object_interval_s=600, random_breakdowns=False))
    start = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    list(sim.write_range(local_lake["landing"], start, start + timedelta(hours=1)))
    for stream in STREAMS.streams:
        assert materialize(
            ingest_assets(stream), partition_key=HOUR, resources=local_lake["resources"]
        ).success
    return local_lake


def test_shipped_marts_pass_their_checks_on_clean_data(simulated_hour) -> None:
    result = materialize(mart_assets, partition_key=DAY, resources=simulated_hour["resources"])
    checks = _checks(result)
    shipped = load_marts(set(STREAMS.streams))
    assert set(checks) == {
        (name, check)
        for name, spec in shipped.items()
        for check, declared in (("unique_key", spec.unique_key), ("not_null", spec.not_null))
        if declared
    }
    assert {k: c.passed for k, c in checks.items()} == dict.fromkeys(checks, True)
    checked = {n for (n, _), c in checks.items() if c.metadata["rows_checked"].value > 0}
    assert {
        "milking_per_cow_daily",
        "robot_health_hourly",
        "clickstream_sessions_daily",
        "clickstream_funnel_daily",
        "security_events_daily",
    } <= checked

    [milking] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == AssetKey(["marts", "milking_per_cow_daily"])
    ]
    lineage = milking.materialization.metadata["dagster/column_lineage"].value
    cleaned = AssetKey(["cleaned", "robot_telemetry"])
    deps = {
        column: sorted((d.asset_key, d.column_name) for d in found)
        for column, found in lineage.deps_by_column.items()
    }
    assert deps["cow_id"] == [(cleaned, "cow_id")]
    assert deps["robot_id"] == [(cleaned, "robot_id"), (cleaned, "ts")]
    assert deps["yield_kg"] == [(cleaned, "milking_yield_kg")]
    assert deps["milkings"] == []


def test_marts_show_code_version_owner_pii_and_freshness() -> None:
    graph = defs.get_repository_def().asset_graph
    security = graph.get(AssetKey(["marts", "security_events_daily"]))
    text = (MARTS_DIR / "security_events_daily.sql").read_bytes()
    assert security.code_version == hashlib.sha256(text).hexdigest()[:16]
    assert security.owners == ["team:security"]
    assert security.tags.get("pii") == "true"
    assert "pii" not in graph.get(AssetKey(["marts", "milking_per_cow_daily"])).tags
    assert security.freshness_policy == FreshnessPolicy.cron(
        deadline_cron="0 2 * * *", lower_bound_delta=timedelta(minutes=90), timezone="UTC"
    )
