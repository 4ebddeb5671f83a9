"""Dagster's PostgreSQL instance storage, with its connections kept instead of opened per call.

dagster-postgres builds its run, event log and schedule storages on SQLAlchemy's NullPool:
every storage call (an event, a tick, a run record, a run-key check) opens a connection,
which is a TCP handshake, authentication and a new server process on PostgreSQL's side,
and closes it. A sensor tick made ~40 such connects, a micro-batch run's worker ~150,
at 20-90 ms a connect on a loaded 2-core machine (bench/README.md, "pgfresh").

Dagster's SQL storages also ask PostgreSQL's catalog whether a migration's table, column
or secondary index exists on many calls (every sensor state read or write, every runs
query...): ~40% of the daemon's statements while runs were landing. A schema only gains
them (`dagster instance migrate`), so a yes is kept for the process; a no is asked again.

`ProjectPostgresStorage` is the same storage (same tables, statements and transactions)
with those answers kept, and whose three parts share one engine per process and database
keeping `pool_size` connections (a code server builds an instance per sensor tick, a run
worker several: they all use it; its tables are looked for by the first one only). A call
beyond that many at once opens a connection and closes it after, as before: no overflow
limit, so no call ever waits for a connection. Each checkout pings its connection first
(one `SELECT 1`): a connection the server dropped (a restart, a failover) is replaced, not
failed on, as a new connection per call never was. A forked child starts with empty pools
(never a connection of its parent's). The webserver's own pool (Dagster's `optimize_for_webserver`,
one connection and a statement timeout) still replaces it there.

deploy/dagster.yaml names it (`storage: custom`, the `postgres` section's settings as its
config, plus an optional `pool_size`).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

from dagster import Field
from dagster._config.config_schema import UserConfigSchema
from dagster._core.storage.config import pg_config
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from orchestration.alembic_scripts import keep_dagster_scripts

POOL_SIZE = 4  # connections kept per process: the daemon's busiest threads at once


# this process's kept answers and engines, per database URL (a code server builds an
# instance per sensor tick; a run worker several)
_SCHEMA_SEEN: set[tuple[Any, ...]] = set()
_TABLES_MADE: set[str] = set()
_ENGINES: dict[tuple[str, int], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _yes_kept(check: Callable[..., bool]) -> Callable[..., bool]:
    """A schema check whose yes is kept for the process (its connection argument aside)."""

    @functools.wraps(check)
    def kept(self: Any, *args: Any) -> bool:
        given = (a for a in args if not isinstance(a, Connection))
        key = (self.postgres_url, type(self).__name__, check.__name__, *given)
        if key in _SCHEMA_SEEN:
            return True
        found = check(self, *args)
        if found:
            _SCHEMA_SEEN.add(key)
        return found

    return kept


class KeptSchemaRunStorage(PostgresRunStorage):
    has_built_index = _yes_kept(PostgresRunStorage.has_built_index)
    has_run_stats_index_cols = _yes_kept(PostgresRunStorage.has_run_stats_index_cols)
    has_bulk_actions_selector_cols = _yes_kept(PostgresRunStorage.has_bulk_actions_selector_cols)
    has_backfill_id_column = _yes_kept(PostgresRunStorage.has_backfill_id_column)
    has_bulk_action_job_name_column = _yes_kept(PostgresRunStorage.has_bulk_action_job_name_column)
    has_backfill_tags_table = _yes_kept(PostgresRunStorage.has_backfill_tags_table)


class KeptSchemaEventLogStorage(PostgresEventLogStorage):
    has_table = _yes_kept(PostgresEventLogStorage.has_table)
    has_asset_key_col = _yes_kept(PostgresEventLogStorage.has_asset_key_col)
    _has_asset_key_col_on_connection = _yes_kept(
        PostgresEventLogStorage._has_asset_key_col_on_connection
    )


class KeptSchemaScheduleStorage(PostgresScheduleStorage):
    has_built_index = _yes_kept(PostgresScheduleStorage.has_built_index)
    has_secondary_index_table = _yes_kept(PostgresScheduleStorage.has_secondary_index_table)
    _has_instigators_table = _yes_kept(PostgresScheduleStorage._has_instigators_table)
    _has_asset_daemon_asset_evaluations_table = _yes_kept(
        PostgresScheduleStorage._has_asset_daemon_asset_evaluations_table
    )


class ProjectPostgresStorage(DagsterPostgresStorage):
    """`DagsterPostgresStorage` on one pooled engine; see the module doc."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        # DagsterPostgresStorage.__init__ with the kept-schema parts; their tables are
        # looked for (and made) by the process's first instance only
        keep_dagster_scripts()
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        args = (postgres_url, should_autocreate_tables and postgres_url not in _TABLES_MADE)
        self._run_storage = KeptSchemaRunStorage(*args, token_provider=token_provider)
        self._event_log_storage = KeptSchemaEventLogStorage(*args, token_provider=token_provider)
        self._schedule_storage = KeptSchemaScheduleStorage(*args, token_provider=token_provider)
        _TABLES_MADE.add(postgres_url)
        super(DagsterPostgresStorage, self).__init__()
        engine = pooled_engine(postgres_url, token_provider, pool_size)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine.dispose()  # a NullPool: it holds no connection
            storage._engine = engine

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return {**pg_config(), "pool_size": Field(int, is_required=False, default_value=POOL_SIZE)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> ProjectPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
            pool_size=config_value.get("pool_size", POOL_SIZE),
        )


def pooled_engine(postgres_url: str, token_provider: Any, pool_size: int) -> Engine:
    """The process's engine for `postgres_url`, made once: it keeps `pool_size` connections
    (shared by the process's instances, so disposing one instance leaves it), pinged on
    checkout, never used across a fork."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get((postgres_url, pool_size))
        if engine is None:
            engine = _ENGINES[postgres_url, pool_size] = _new_engine(
                postgres_url, token_provider, pool_size
            )
        return engine


def _new_engine(postgres_url: str, token_provider: Any, pool_size: int) -> Engine:
    return create_pg_engine(
        postgres_url,
        token_provider,
        isolation_level="AUTOCOMMIT",  # dagster-postgres's, for all three storages
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=-1,
        pool_pre_ping=True,
    )


def _forget_parents_connections() -> None:
    """In a forked child (a run worker from the forkserver, multiprocessing): new pools, the
    parent's connections left to the parent (SQLAlchemy's `dispose(close=False)`: the child
    never sends on, pings or closes a socket its parent uses), and a fresh lock (another
    thread may have held it at the fork)."""
    global _ENGINES_LOCK
    _ENGINES_LOCK = threading.Lock()
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parents_connections)
