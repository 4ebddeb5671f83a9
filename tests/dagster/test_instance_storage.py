"""The instance the launcher sets up: Dagster's SQLite files, written through an event log
that keeps one connection a shard instead of opening and closing two for every event
(orchestration/instance_storage.py)."""

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    HourlyPartitionsDefinition,
    MaterializeResult,
    asset,
    materialize,
)
from sqlalchemy import event
from sqlalchemy.engine import Engine

from orchestration import instance_storage, launch

HOURS = HourlyPartitionsDefinition(start_date="2026-11-21-00:00")


@asset(partitions_def=HOURS)
def hourly(context: AssetExecutionContext) -> MaterializeResult:
    return MaterializeResult(metadata={"hour": context.partition_key})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return launch.prepare_home({"DAGSTER_HOME": str(tmp_path / "home")})


@pytest.fixture
def connects() -> Iterator[list[str]]:
    """The SQLite files connected to, one entry a new connection."""
    opened: list[str] = []

    def on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        (_, name, path) = dbapi_connection.execute("PRAGMA database_list").fetchone()
        opened.append(Path(path).name)

    event.listen(Engine, "connect", on_connect)
    yield opened
    event.remove(Engine, "connect", on_connect)


def _run_hours(instance: DagsterInstance, hours: list[str]) -> None:
    for hour in hours:
        assert materialize([hourly], instance=instance, partition_key=hour).success


def test_events_of_a_run_reuse_one_connection_a_file(home: Path, connects: list[str]) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, instance_storage.KeptSqliteEventLogStorage)
        _run_hours(instance, ["2026-11-21-00:00"])  # files created, migrations checked
        connects.clear()
        _run_hours(instance, ["2026-11-21-01:00", "2026-11-21-02:00"])
        run_ids = [r.run_id for r in instance.get_runs()]
    # Dagster's own storage opened index.db and the run's file again for every event (~20
    # a run here); kept, each run's file is opened once and index.db not again
    event_files = [name for name in connects if name != "runs.db"]
    assert sorted(event_files) == sorted(f"{run_id}.db" for run_id in run_ids[:2])


def test_what_is_stored_is_read_by_another_instance_of_the_same_folder(home: Path) -> None:
    with DagsterInstance.from_config(str(home)) as writer:
        _run_hours(writer, ["2026-11-21-03:00", "2026-11-21-04:00"])
        with DagsterInstance.from_config(str(home)) as reader:  # e.g. the webserver
            assert isinstance(reader.event_log_storage, instance_storage.KeptSqliteEventLogStorage)
            records = reader.fetch_materializations(AssetKey("hourly"), limit=10).records
            assert sorted(r.partition_key for r in records) == [
                "2026-11-21-03:00",
                "2026-11-21-04:00",
            ]
            assert {r.asset_materialization.metadata["hour"].value for r in records} == {
                "2026-11-21-03:00",
                "2026-11-21-04:00",
            }
            # and the reader's own writes (kept connections on both sides) reach the writer
            _run_hours(reader, ["2026-11-21-05:00"])
        status = writer.get_materialized_partitions(AssetKey("hourly"))
    assert status == {"2026-11-21-03:00", "2026-11-21-04:00", "2026-11-21-05:00"}


def test_only_the_latest_run_files_stay_open_and_a_deleted_run_is_gone(home: Path) -> None:
    hours = [f"2026-11-21-{h:02d}:00" for h in range(instance_storage.RUN_SHARDS_KEPT + 3)]
    with DagsterInstance.from_config(str(home)) as instance:
        _run_hours(instance, hours)
        storage = instance.event_log_storage
        runs = instance.get_runs()  # newest first
        kept = [s for s in storage._engines if s != instance_storage.INDEX_SHARD]
        assert sorted(kept) == sorted(r.run_id for r in runs[: instance_storage.RUN_SHARDS_KEPT])

        newest = runs[0].run_id
        instance.delete_run(newest)
        assert newest not in storage._engines
        assert not storage.get_records_for_run(newest).records
        assert instance.get_materialized_partitions(AssetKey("hourly")) == set(hours[:-1])
        _run_hours(instance, [hours[-1]])  # writes go on after the delete
        assert instance.get_materialized_partitions(AssetKey("hourly")) == set(hours)
