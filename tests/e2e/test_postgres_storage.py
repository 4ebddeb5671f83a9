"""End to end on PostgreSQL: a real `dagster dev` whose instance keeps its runs, events,
sensor ticks and backfills in a real PostgreSQL server (deploy/dagster.yaml's storage
section, the project's other settings), as a production deployment does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg2
import pytest

from lake.firehose import hour_prefix, partition_key
from lake.ledger import manifest_of
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import LocalStorage
from tests import postgres_server as postgres
from tests.e2e.test_dagster_dev import (
    GRAPHQL_BACKFILL,
    GRAPHQL_STATUS,
    RUN_BOUND_S,
    _graphql,
    _wait,
    running_dagster_dev,
)

pytestmark = pytest.mark.e2e
STREAM = "robot_telemetry"


@pytest.fixture
def dagster_dev_on_postgres(tmp_path: Path, postgres_database: str) -> Iterator[dict]:
    settings, pg_env = postgres.instance_settings(postgres_database)
    # not the project's copy (its first line): orchestration/launch.py keeps it as it is
    with running_dagster_dev(tmp_path, settings, {**pg_env, "SENSOR_INTERVAL_SECONDS": "2"}) as dev:
        yield {**dev, "db": postgres_database}


def _land(landing: LocalStorage, sim: Simulator, arrivals: list[datetime]) -> tuple[set, list]:
    """Objects of STREAM arriving at `arrivals`: their event ids and ledger manifests."""
    written = [w for w in (sim.write_object(landing, STREAM, a) for a in arrivals) if w]
    assert written, "the simulator wrote nothing"
    keys = {w.key for w in written}
    manifests = [
        manifest_of(STREAM, hour, o)
        for hour in {a.replace(minute=0, second=0, microsecond=0) for a in arrivals}
        for o in landing.list(hour_prefix(STREAM, hour))
        if o.key in keys
    ]
    assert len(manifests) == len(written)
    return {r["event_id"] for w in written for r in w.records}, manifests


def _query(database_url: str, sql: str, args: tuple = ()) -> list[tuple]:
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, args)
        rows = cursor.fetchall()
    connection.close()
    return rows


def test_sensor_runs_and_a_backfill_keep_their_history_in_postgres(
    dagster_dev_on_postgres,
) -> None:
    dev = dagster_dev_on_postgres
    data, port, log, db = dev["data"], dev["port"], dev["log"], dev["db"]
    landing, lake = LocalStorage(data / "landing"), LocalStorage(data / "lake")
    config = SimulatorConfig(seed=7, streams=(STREAM,), duplicate_rate=0.05, malformed_rate=0.02)

    # objects land now: the landing sensor starts the run that cleans them
    now = datetime.now(UTC).replace(microsecond=0)
    live_ids, live_manifests = _land(landing, Simulator(config), [now])
    _wait(lambda: all(lake.exists(m) for m in live_manifests), RUN_BOUND_S, "cleaned", log)

    # two hours from two days ago (past the sensor's late hours), cleaned by a backfill
    first = now.replace(minute=0, second=0) - timedelta(days=2)
    hours = [first, first + timedelta(hours=1)]
    old_sim = Simulator(replace(config, seed=8))
    old_ids, old_manifests = _land(landing, old_sim, [h + timedelta(minutes=20) for h in hours])
    params = {
        "partitionNames": [partition_key(h) for h in hours],
        "assetSelection": [{"path": [layer, STREAM]} for layer in ("landing", "schema", "cleaned")],
        "fromFailure": False,
    }
    launched = _graphql(port, GRAPHQL_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def backfill_done() -> bool:
        status = _graphql(port, GRAPHQL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        assert status["status"] not in ("FAILED", "COMPLETED_FAILED", "CANCELED"), status
        return status["status"] in ("COMPLETED", "COMPLETED_SUCCESS")

    _wait(backfill_done, RUN_BOUND_S, "the backfill", log)
    assert all(lake.exists(m) for m in old_manifests)
    rows = duckdb.sql(
        f"SELECT event_id FROM read_parquet('{lake.root}/cleaned/{STREAM}/*/*.parquet')"
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(live_ids | old_ids)

    # the history is PostgreSQL's, not SQLite files in DAGSTER_HOME
    statuses = dict(_query(db, "SELECT run_id, status FROM runs"))
    tagged = "SELECT run_id FROM run_tags WHERE key = %s AND value = %s"
    sensor_runs = _query(db, tagged, ("dagster/sensor_name", f"{STREAM}_landing_sensor"))
    backfill_runs = _query(db, tagged, ("dagster/backfill", backfill_id))
    assert sensor_runs and {statuses[r] for (r,) in sensor_runs} == {"SUCCESS"}
    assert len(backfill_runs) == 1 and statuses[backfill_runs[0][0]] == "SUCCESS"  # single-run
    (backfill_status,) = _query(
        db, "SELECT status FROM bulk_actions WHERE key = %s", (backfill_id,)
    )
    assert backfill_status[0] in ("COMPLETED", "COMPLETED_SUCCESS")
    events = _query(
        db,
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
        (backfill_runs[0][0], "ASSET_MATERIALIZATION"),
    )
    assert events[0][0] == 2 * 3  # two hours of three assets
    ticks = _query(db, "SELECT count(*) FROM job_ticks WHERE selector_id IS NOT NULL")
    assert ticks[0][0] > 0
    assert not list(dev["home"].rglob("*.db")), "an SQLite storage was created"
