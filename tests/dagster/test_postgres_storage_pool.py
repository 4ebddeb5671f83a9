"""deploy/dagster.yaml's storage on a real PostgreSQL server: storage calls reuse the
process's kept connections (orchestration/postgres_storage.py), and a connection the
server dropped or a parent process made is never used."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.test_utils import create_run_for_test
from sqlalchemy import event
from sqlalchemy.pool import Pool

from tests import postgres_server as postgres

EVENTS = 30


@pytest.fixture
def home(tmp_path: Path, postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings, env = postgres.instance_settings(postgres_database)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "dagster.yaml").write_text(settings)
    return tmp_path


@pytest.fixture
def instance(home: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as opened:
        yield opened


@pytest.fixture
def connects() -> Iterator[list[int]]:
    """A count of the new DBAPI connections every pool of this process makes."""
    made = [0]

    def count(*_args: object) -> None:
        made[0] += 1

    event.listen(Pool, "connect", count)
    yield made
    event.remove(Pool, "connect", count)


def _backend_pid(instance: DagsterInstance) -> int:
    with instance.run_storage.connect() as conn:
        return conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar_one()


def test_a_runs_events_are_stored_over_kept_connections(home, instance, connects) -> None:
    run = create_run_for_test(instance, job_name="ingest")
    for n in range(EVENTS):
        instance.report_engine_event(f"event {n}", run)
    instance.add_run_tags(run.run_id, {"firehose_lake/test": "1"})

    assert connects[0] <= 4, "a connection per storage call (dagster-postgres's NullPool)"
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as other:
        messages = [
            r.event_log_entry.message for r in other.get_records_for_run(run.run_id).records
        ]
        assert [m for m in messages if m.startswith("event ")] == [
            f"event {n}" for n in range(EVENTS)
        ]
        assert other.get_run_by_id(run.run_id).tags["firehose_lake/test"] == "1"


def test_schema_checks_ask_the_catalog_once(instance) -> None:
    """Dagster's storages ask PostgreSQL's catalog whether a migration's table or column
    exists on many calls (sensor states, run queries); a yes is kept for the process."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    create_run_for_test(instance, job_name="ingest")
    instance.all_instigator_state()  # the first answers
    instance.get_runs(limit=5)
    event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        for _ in range(5):
            instance.all_instigator_state()
            instance.get_runs(limit=5)
    finally:
        event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)

    assert statements, "the calls made no statement at all"
    assert [s for s in statements if "pg_catalog" in s] == []


def test_connections_the_server_dropped_are_replaced(postgres_database, instance) -> None:
    run = create_run_for_test(instance, job_name="ingest")
    kept = _backend_pid(instance)
    with psycopg2.connect(postgres_database) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (kept,))
    admin.close()

    instance.report_engine_event("after a restart", run)  # no error: a new connection

    assert _backend_pid(instance) != kept
    messages = [r.event_log_entry.message for r in instance.get_records_for_run(run.run_id).records]
    assert "after a restart" in messages


def _child_backend_pid(instance: DagsterInstance, out: multiprocessing.Queue) -> None:
    out.put(_backend_pid(instance))


def test_a_forked_process_never_uses_its_parents_connection(instance) -> None:
    parents = _backend_pid(instance)  # now kept in the pool
    fork = multiprocessing.get_context("fork")
    out = fork.Queue()
    child = fork.Process(target=_child_backend_pid, args=(instance, out))
    child.start()
    childs = out.get(timeout=60)
    child.join(60)

    assert child.exitcode == 0
    assert childs != parents
    assert _backend_pid(instance) == parents  # the parent's connection is still its own
