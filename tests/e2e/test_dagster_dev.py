"""End to end: a real `dagster dev` process; its sensor launches the run that cleans what lands."""

import json
import os
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, RunsFilter

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hours
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, parse_key
from lake.ledger import manifest_of
from lake.marts import load_marts
from lake.settings import REPO_ROOT
from lake.simulator import Simulator, SimulatorConfig
from lake.storage import LocalStorage
from lake.streams import load_streams
from orchestration import dev_server

pytestmark = pytest.mark.e2e
STARTUP_BOUND_S = 240  # a bound, not a target: CI under load took 98 s to start the daemon alone
RUN_BOUND_S = 180


def _wait(predicate, bound_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(
        f"timed out after {bound_s}s waiting for {what}; dagster dev log:\n{log.read_text()[-4000:]}"
    )


@contextmanager
def running_dagster_dev(tmp_path: Path, instance_settings: str, extra_env: dict[str, str]):
    """`dagster dev` on a lake in tmp_path with `instance_settings` as its dagster.yaml."""
    data = tmp_path / "data"
    home = data / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_settings)
    port = dev_server.free_port()
    env = {
        **os.environ,
        "LANDING_URI": (data / "landing").as_uri(),
        "LAKE_URI": (data / "lake").as_uri(),
        "WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        **extra_env,
    }
    log = tmp_path / "dagster-dev.log"
    proc = dev_server.start(env, log, port)
    try:
        _wait(lambda: dev_server.is_up(port), STARTUP_BOUND_S, "the Dagster webserver", log)
        yield {"data": data, "home": home, "log": log, "port": port}
    finally:
        dev_server.stop(proc)


@pytest.fixture
def dagster_dev(tmp_path: Path):
    settings = (REPO_ROOT / "orchestration" / "dagster.yaml").read_text()
    intervals = {"SENSOR_INTERVAL_SECONDS": "2", "MARTS_SENSOR_INTERVAL_SECONDS": "5"}
    with running_dagster_dev(tmp_path, settings, intervals) as dev:
        yield dev


def test_sensor_launched_run_cleans_landed_objects(dagster_dev, monkeypatch) -> None:
    data = dagster_dev["data"]
    landing, lake = LocalStorage(data / "landing"), LocalStorage(data / "lake")
    sim = Simulator(
        SimulatorConfig(
            seed=5, streams=("robot_telemetry",), duplicate_rate=0.05, malformed_rate=0.02
        )
    )
    now = datetime.now(UTC).replace(microsecond=0)
    written = [w for w in [sim.write_object(landing, "robot_telemetry", arrival=now)] if w]
    assert written, "the simulator wrote nothing"
    expected = {r["event_id"] for w in written for r in w.records}
    hour = now.replace(minute=0, second=0)
    keys = {w.key for w in written}
    manifests = [
        manifest_of("robot_telemetry", hour, o)
        for o in landing.list(hour_prefix("robot_telemetry", hour))
        if o.key in keys
    ]
    assert len(manifests) == len(written)
    _wait(
        lambda: all(lake.exists(m) for m in manifests),
        RUN_BOUND_S,
        "cleaned Parquet",
        dagster_dev["log"],
    )

    rows = duckdb.sql(
        f"SELECT event_id FROM read_parquet('{lake.root}/cleaned/robot_telemetry/*/*.parquet')"
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(expected)

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_dev["home"]))
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="ingest_robot_telemetry"))
    assert runs, "no ingest run was recorded"
    assert {r.tags.get("dagster/sensor_name") for r in runs} == {"robot_telemetry_landing_sensor"}


GRAPHQL_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}"""
GRAPHQL_GRAPH = """
query Graph {
  assetNodes { assetKey { path } dependencyKeys { path } }
}"""
GRAPHQL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status numPartitions }
    ... on PythonError { message }
  }
}"""


def _graphql(port: int, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def _seed_cleaned(data: Path, tmp: Path, days: list[str]) -> None:
    """Cleaned data for the days, made with the lake core (no landing objects for the
    sensors): each stream's hours crawled and cleaned in one range run, as a backfill
    of the cleaned asset does."""
    landing, lake = LocalStorage(tmp / "seed-landing"), LocalStorage(data / "lake")
    streams = load_streams()
    catalog = Catalog(lake, streams.database)
    sim = Simulator(SimulatorConfig(seed=3, object_interval_s=900))
    start = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
    hours = defaultdict(set)
    for w in sim.write_range(landing, start, start + timedelta(days=len(days))):
        hours[w.stream].add(parse_key(w.key).arrival_hour)
    for stream, arrived in sorted(hours.items()):
        batches = {h: list(landing.list(hour_prefix(stream, h))) for h in sorted(arrived)}
        crawl_objects(streams[stream], catalog, landing, [o for b in batches.values() for o in b])
        clean_hours(streams[stream], catalog.get_table(stream), landing, lake, batches)


def test_mart_backfill_launched_through_graphql_runs_once(
    dagster_dev, tmp_path, monkeypatch
) -> None:
    data, port = dagster_dev["data"], dagster_dev["port"]
    days = ["2026-11-19", "2026-11-20"]
    _seed_cleaned(data, tmp_path, days)
    marts = sorted(load_marts(set(load_streams().streams)))
    graph = {
        "/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]}
        for n in _graphql(port, GRAPHQL_GRAPH, {})["assetNodes"]
    }
    assert {f"marts/{name}" for name in marts} <= set(graph)  # the UI's graph shows every mart
    assert graph["marts/clickstream_funnel_daily"] == {"marts/clickstream_sessions_daily"}
    assert graph["marts/robot_anomalies"] == {"cleaned/robot_telemetry"}
    params = {
        "partitionNames": days,
        "assetSelection": [{"path": ["marts", name]} for name in marts],
        "fromFailure": False,
    }
    launched = _graphql(port, GRAPHQL_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    monkeypatch.setenv("DAGSTER_HOME", str(dagster_dev["home"]))
    instance = DagsterInstance.get()

    def finished() -> bool:
        """Its run succeeded (the daemon marks the backfill complete up to 30 s later)."""
        status = _graphql(port, GRAPHQL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        assert status["status"] not in ("FAILED", "COMPLETED_FAILED", "CANCELED"), status
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert all(r.status.value not in ("FAILURE", "CANCELED") for r in runs), runs
        return status["status"] in ("COMPLETED", "COMPLETED_SUCCESS") or (
            bool(runs) and all(r.status.value == "SUCCESS" for r in runs)
        )

    with instance:
        _wait(finished, RUN_BOUND_S, "the mart backfill", dagster_dev["log"])

    lake = LocalStorage(data / "lake")
    for name in marts:
        for day in days:
            files = [o.key for o in lake.list(f"marts/{name}/dt={day}/")]
            assert len(files) == 1 and files[0].endswith(".parquet"), (name, day, files)
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        got = con.sql(
            "SELECT DISTINCT CAST(dt AS VARCHAR) FROM marts.milking_per_cow_daily ORDER BY 1"
        ).fetchall()
    assert [d for (d,) in got] == days
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
    # every mart has a single-run backfill policy: two days of six marts are one run
    assert len(runs) == 1 and runs[0].status.value == "SUCCESS"
