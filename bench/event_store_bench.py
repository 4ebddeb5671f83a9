"""Dagster's SQLite event log: milliseconds an event stored, Dagster's own storage against
the launcher's instance storage (orchestration/instance_storage.py), alternating.

    PYTHONPATH=.:bench .venv/bin/python bench/event_store_bench.py --events 100 --rounds 3

Each event is an ASSET_MATERIALIZATION of one hour's partition with ~2 KB of metadata
(what a range run writes per hour and asset), stored into a fresh folder's run file and
index.db, as a run's step does (EventLogStorage.store_event).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from dagster import AssetKey, AssetMaterialization
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from orchestration.instance_storage import KeptSqliteEventLogStorage

STORAGES = {"dagster": SqliteEventLogStorage, "kept": KeptSqliteEventLogStorage}


def materialization(run_id: str, n: int) -> EventLogEntry:
    data = StepMaterializationData(
        AssetMaterialization(
            AssetKey(["landing", "s"]), partition=f"h{n}", metadata={"k": "x" * 2000}
        )
    )
    event = DagsterEvent(
        event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
        event_specific_data=data,
        job_name="j",
        step_key="s",
    )
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message="",
        run_id=run_id,
        timestamp=time.time(),
        step_key="s",
        job_name="j",
        dagster_event=event,
    )


def ms_an_event(kind: str, events: int) -> float:
    storage = STORAGES[kind](tempfile.mkdtemp(prefix=f"evbench-{kind}-"))
    storage.store_event(materialization("run", -1))  # the files created
    start = time.perf_counter()
    for n in range(events):
        storage.store_event(materialization("run", n))
    elapsed = time.perf_counter() - start
    assert len(storage.get_records_for_run("run", limit=events + 10).records) == events + 1
    storage.dispose()
    return elapsed / events * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {kind: [] for kind in STORAGES}
    for _ in range(args.rounds):
        for kind in STORAGES:
            results[kind].append(ms_an_event(kind, args.events))
            print(f"{kind}: {results[kind][-1]:.1f} ms an event (load {os.getloadavg()[0]:.1f})")
    print(", ".join(f"{k} median {statistics.median(v):.1f} ms" for k, v in results.items()))


if __name__ == "__main__":
    main()
