"""The instance the launcher sets up: Dagster's SQLite files, written through an event log
that keeps one connection a shard instead of opening and closing two for every event
(orchestration/instance_storage.py)."""

import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from alembic.util import coerce_resource_to_filename
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    HourlyPartitionsDefinition,
    MaterializeResult,
    asset,
    materialize,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import sql_event_log
from dagster._core.storage.sql import ALEMBIC_SCRIPTS_LOCATION
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

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


@asset(partitions_def=HOURS, backfill_policy=BackfillPolicy.single_run())
def hours_at_once(context: AssetExecutionContext) -> MaterializeResult:
    return MaterializeResult(metadata={"hours": len(context.partition_keys)})


DAY = [f"2026-11-21-{h:02d}:00" for h in range(24)]
TWO_DAYS = DAY + [f"2026-11-22-{h:02d}:00" for h in range(24)]


def _run_range(instance: DagsterInstance, hours: list[str]) -> None:
    tags = {ASSET_PARTITION_RANGE_START_TAG: hours[0], ASSET_PARTITION_RANGE_END_TAG: hours[-1]}
    assert materialize([hours_at_once], instance=instance, tags=tags).success


@pytest.fixture
def batched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster's event batching on, as the launcher sets it for `dagster`."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", launch.EVENT_BATCH_SIZE)


@pytest.mark.usefixtures("batched")
def test_a_range_runs_per_hour_events_take_one_commit_a_file(home: Path) -> None:
    commits: list[str] = []

    def on_commit(conn: Connection) -> None:
        commits.append(Path(conn.engine.url.database or "").name)

    event.listen(Engine, "commit", on_commit)
    try:
        with DagsterInstance.from_config(str(home)) as instance:
            _run_range(instance, TWO_DAYS)
            (run,) = instance.get_runs()
            stored = instance.get_records_for_run(run.run_id).records
            materialized = instance.get_materialized_partitions(AssetKey("hours_at_once"))
    finally:
        event.remove(Engine, "commit", on_commit)
    kinds = Counter(r.event_log_entry.dagster_event_type for r in stored)
    assert kinds[DagsterEventType.ASSET_MATERIALIZATION_PLANNED] == len(TWO_DAYS)
    assert kinds[DagsterEventType.ASSET_MATERIALIZATION] == len(TWO_DAYS)
    assert materialized == set(TWO_DAYS)
    # stored apart, each hour's planned and materialized events took a commit in the run's
    # file and one in index.db each (192 for 48 hours); batched, fewer than one an hour
    event_log_commits = [name for name in commits if name not in ("runs.db", "schedules.db")]
    assert len(event_log_commits) < len(TWO_DAYS)


@pytest.mark.usefixtures("batched")
def test_a_batch_that_fails_is_rolled_back_so_each_event_is_stored_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        store_event, failed = storage.store_event, []

        def fails_once_at_the_sixth_hour(entry: EventLogEntry) -> None:
            dagster_event = entry.dagster_event
            if (
                not failed
                and dagster_event is not None
                and dagster_event.is_step_materialization
                and dagster_event.partition == DAY[5]
            ):
                failed.append(entry)
                raise OSError("disk I/O error")
            store_event(entry)

        monkeypatch.setattr(storage, "store_event", fails_once_at_the_sixth_hour)
        _run_range(instance, DAY[:10])
        records = instance.fetch_materializations(AssetKey("hours_at_once"), limit=100).records
    assert failed
    # Dagster stores the batch again event by event after a failure: the five hours before
    # the failure must not have been committed by the failed batch
    assert sorted(r.partition_key for r in records) == DAY[:10]


def test_the_launcher_turns_dagsters_event_batching_on_unless_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs: list[dict[str, str]] = []
    monkeypatch.chdir(os.getcwd())  # main() changes to the repository root
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    monkeypatch.setattr(launch.os, "execve", lambda path, args, env: envs.append(env))
    launch.main(["asset", "materialize", "--select", "landing/x", "--partition", "p"])
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "7")
    launch.main(["asset", "materialize", "--select", "landing/x", "--partition", "p"])
    assert [env["DAGSTER_EVENT_BATCH_SIZE"] for env in envs] == [launch.EVENT_BATCH_SIZE, "7"]


def test_a_fresh_instance_loads_dagsters_migration_scripts_once_and_stamps_the_head(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []
    build = ScriptDirectory.__init__

    def counted(self: ScriptDirectory, dir: str, *args: object, **kwargs: object) -> None:
        built.append(dir)
        build(self, dir, *args, **kwargs)

    monkeypatch.setattr(ScriptDirectory, "__init__", counted)
    with DagsterInstance.from_config(str(home)) as instance:
        _run_hours(instance, ["2026-11-21-06:00"])  # and the run's own event file
        (run,) = instance.get_runs()
    # Dagster's storages built it (reading its ~90 scripts) for each check and stamp: 9 here
    assert len(built) <= 1
    head = ScriptDirectory(coerce_resource_to_filename(ALEMBIC_SCRIPTS_LOCATION)).get_current_head()
    files = ["history/runs.db", "history/runs/index.db", f"history/runs/{run.run_id}.db"]
    for name in [*files, "schedules/schedules.db"]:
        with closing(sqlite3.connect(home / name)) as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head,)]


@pytest.mark.usefixtures("batched")
def test_a_batch_writes_its_assets_row_once_from_its_last_hour(home: Path) -> None:
    writes: list[str] = []

    def on_execute(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().startswith(("INSERT INTO asset_keys", "UPDATE asset_keys")):
            writes.append(statement.split()[0])

    with DagsterInstance.from_config(str(home)) as instance:
        event.listen(Engine, "before_cursor_execute", on_execute)
        try:
            _run_range(instance, TWO_DAYS)
        finally:
            event.remove(Engine, "before_cursor_execute", on_execute)
        (run,) = instance.get_runs()
        (record,) = instance.get_asset_records([AssetKey("hours_at_once")])
        latest = instance.fetch_materializations(AssetKey("hours_at_once"), limit=1).records[0]
    entry = record.asset_entry
    assert entry.last_materialization_record is not None
    assert entry.last_materialization_record.partition_key == TWO_DAYS[-1]
    assert entry.last_materialization_record.storage_id == latest.storage_id
    assert entry.last_run_id == run.run_id
    # an INSERT (then an UPDATE, the row being there) for each hour's planned and
    # materialized events stored apart; batched, the row is written for the last of each
    assert len(writes) <= 4


@asset(
    partitions_def=HOURS,
    backfill_policy=BackfillPolicy.single_run(),
    check_specs=[AssetCheckSpec("hours_counted", asset="checked_hours")],
)
def checked_hours(context: AssetExecutionContext) -> MaterializeResult:
    hours = len(context.partition_keys)
    return MaterializeResult(check_results=[AssetCheckResult(passed=True, metadata={"n": hours})])


@pytest.mark.usefixtures("batched")
def test_a_range_runs_planned_check_is_serialized_once_for_all_its_hours(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned: list[EventLogEntry] = []

    def counting(serialize: Callable[..., str]) -> Callable[..., str]:
        def counted(value: object, *args: object, **kwargs: object) -> str:
            kind = getattr(value, "dagster_event_type", None)
            if kind == DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED:
                planned.append(value)  # type: ignore[arg-type]
            return serialize(value, *args, **kwargs)

        return counted

    # Dagster's own storage serializes through sql_event_log's name; this one through its own
    for module in (sql_event_log, instance_storage):
        if hasattr(module, "serialize_value"):
            monkeypatch.setattr(module, "serialize_value", counting(module.serialize_value))
    tags = {ASSET_PARTITION_RANGE_START_TAG: DAY[0], ASSET_PARTITION_RANGE_END_TAG: DAY[-1]}
    with DagsterInstance.from_config(str(home)) as instance:
        assert materialize([checked_hours], instance=instance, tags=tags).success
        (run,) = instance.get_runs()
    with closing(sqlite3.connect(home / "history/runs/index.db")) as db:
        rows = db.execute(
            "SELECT partition, run_id, evaluation_event FROM asset_check_executions "
            "WHERE check_name = 'hours_counted' AND execution_status = 'PLANNED'"
        ).fetchall()
    # a planned row for each hour of the range, each holding the same planned event
    assert sorted(r[0] for r in rows) == DAY
    assert {r[1] for r in rows} == {run.run_id}
    assert len({r[2] for r in rows}) == 1
    # once for the run's event log, once for the check's rows; Dagster serialized it
    # again for each hour's row (25 times here)
    assert len(planned) == 2
