"""Dagster's SQLite instance storage, with the event log's connections kept open.

Dagster's `SqliteEventLogStorage` creates an engine, opens a connection and closes it for
every event it stores: twice for an asset event (the run's file and `index.db`). Closing
the last connection to a WAL database checkpoints it, so each event paid an engine, two
connects, and a checkpoint with its fsyncs on top of its commit: 75-90 ms an event on a
loaded 2-core machine, ~25 ms with the connection kept (bench/README.md, "cliwall"). A
range run of N hours writes ~6N events (planned and materialized, per hour and asset).

Here each shard (`index` and the runs' files) keeps one connection, used under the
storage's own lock as Dagster's code already does (one statement sequence at a time),
with the same busy timeout and the same transactions: what is committed, and when, is
unchanged. Only the most recently used run files stay open (RUN_SHARDS_KEPT), so a
long-lived daemon or webserver does not hold a file per run it ever touched.

`orchestration/launch.py` names this storage in the instance's dagster.yaml it writes
(`storage: custom`, base_dir the instance folder: the same files as Dagster's default
storage); an operator's own dagster.yaml (e.g. PostgreSQL) is left as it is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, cast

import yaml
from dagster import AssetKey, DagsterEventType
from dagster import _check as check
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationPlanned,
)
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from orchestration.alembic_scripts import keep_dagster_scripts

RUN_SHARDS_KEPT = 4
INDEX_SHARD = "index"


class KeptSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose shards keep one open connection each."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()  # used under _db_lock
        self._tables_seen: set[str] = set()
        # the batch being stored (store_event_batch): its thread, its shards' connections
        # and their transactions, all under _db_lock
        self._batch_thread: int | None = None
        self._batch: dict[str, Connection] = {}
        self._batch_transactions: ExitStack | None = None
        self._superseded: set[int] = set()  # of the batch's events (_superseded_in)
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> KeptSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        if self._batch_thread == threading.get_ident():  # in store_event_batch, lock held
            yield self._batch_connection(shard)
            return
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store `events` as store_event does, in one transaction a shard (one commit for
        the run's file and one for index.db instead of one each an event). Dagster sends a
        step's per-partition asset events and a run's planned events this way when
        DAGSTER_EVENT_BATCH_SIZE is set (orchestration/launch.py sets it). A failure rolls
        the whole batch back, so Dagster's fallback (each event stored alone) stores each
        once: index.db commits first, the run's file (written by this run only) last."""
        with self._db_lock, ExitStack() as transactions:
            self._batch_thread, self._batch_transactions = threading.get_ident(), transactions
            self._superseded = _superseded_in(events)
            try:
                for event in events:
                    self.store_event(event)
            finally:
                self._batch_thread, self._batch_transactions = None, None
                self._batch, self._superseded = {}, set()

    def _store_asset_event(self, conn: Connection, event: EventLogEntry, event_id: int) -> None:
        if id(event) not in self._superseded:
            super()._store_asset_event(conn, event, event_id)

    def _store_asset_check_evaluation_planned(
        self, event: EventLogEntry, event_id: int | None
    ) -> None:
        """Dagster's, with the event serialized once: Dagster serializes the same event
        again for each partition of the run's range (a row a partition; ~1.7 ms a row
        profiled), so a month's range run spent seconds per check on the same text."""
        dagster_event = check.not_none(event.dagster_event)
        planned = cast(AssetCheckEvaluationPlanned, dagster_event.event_specific_data)
        subset = planned.partitions_subset
        partition_keys = subset.get_partition_keys() if subset else [None]
        shared = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(
                AssetCheckExecutionsTable.insert().values(
                    [{**shared, "partition": key} for key in partition_keys]
                )
            )

    def _batch_connection(self, shard: str) -> Connection:
        """The shard's connection in the batch's transaction, begun on first use."""
        conn = self._batch.get(shard)
        if conn is None:
            assert self._batch_transactions is not None
            conn = self._batch_transactions.enter_context(self._engine(shard).connect())
            self._batch_transactions.enter_context(conn.begin())  # commits on a clean exit
            self._batch[shard] = conn
        return conn

    def _engine(self, shard: str) -> Engine:
        """The shard's engine (one pooled connection), created and initialised once."""
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=StaticPool,
            # one connection, used by one thread at a time under _db_lock
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        self._close_old_run_shards()
        return engine

    def has_table(self, table_name: str) -> bool:
        """Dagster asks this for every asset event (with an engine of its own each time); a
        table of index.db, once there, stays (migrations add tables), so a yes is kept."""
        if table_name in self._tables_seen:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_seen.add(table_name)
        return found

    def _close_old_run_shards(self) -> None:
        runs = [shard for shard in self._engines if shard != INDEX_SHARD]
        for shard in runs[: max(0, len(runs) - RUN_SHARDS_KEPT)]:
            self._engines.pop(shard).dispose()

    def _close_connections(self) -> None:
        """Close every kept connection (they reopen on the next use); under _db_lock."""
        while self._engines:
            self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        with self._db_lock:
            self._close_connections()  # before the run files are deleted
        super().wipe()

    def delete_events(self, run_id: str) -> None:
        super().delete_events(run_id)
        with self._db_lock:
            engine = self._engines.pop(run_id, None)
            if engine is not None:
                engine.dispose()

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            self._close_connections()


# the asset events whose row in index.db's asset_keys (last materialization, run id,
# timestamp) is set whole by each event of the kind: the same columns every time
_LAST_ONE_WINS = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.ASSET_OBSERVATION,
}


def _superseded_in(events: Sequence[EventLogEntry]) -> set[int]:
    """The events of a batch whose asset row a later event of the same kind and asset
    overwrites (a range run's hours): only the last one's row is written, one write instead
    of one an hour, as dagster-postgres's own batches do."""
    last = {key: id(event) for event in events if (key := _asset_row(event)) is not None}
    return {id(e) for e in events if (key := _asset_row(e)) is not None and last[key] != id(e)}


def _asset_row(event: EventLogEntry) -> tuple[DagsterEventType, AssetKey] | None:
    dagster_event = event.dagster_event
    if dagster_event is None or dagster_event.asset_key is None:
        return None
    kind = dagster_event.event_type
    return (kind, dagster_event.asset_key) if kind in _LAST_ONE_WINS else None


class ProjectSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (same files under base_dir) with the kept event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        keep_dagster_scripts()  # the storages check (and stamp) their files' migrations
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = KeptSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> ProjectSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        return ConfigurableClassData(
            __name__,
            KeptSqliteEventLogStorage.__name__,
            yaml.dump({"base_dir": _event_logs_directory(self.base_dir)}, default_flow_style=False),
        )
