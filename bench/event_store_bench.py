"""Dagster's SQLite event log: milliseconds an event stored, Dagster's own storage against
the launcher's instance storage (orchestration/instance_storage.py), alternating.

    PYTHONPATH=.:bench .venv/bin/python bench/event_store_bench.py --events 100 --rounds 3

Each event is an ASSET_MATERIALIZATION of one hour's partition with ~2 KB of metadata
(what a range run writes per hour and asset), stored into a fresh folder's run file and
index.db, as a run's step does (EventLogStorage.store_event); `kept-batch` stores them as
Dagster does with DAGSTER_EVENT_BATCH_SIZE set (the launcher sets it): store_event_batch
of --batch events at a time (29: one step of hours29). Wall and CPU milliseconds an event.
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

STORAGES = {
    "dagster": SqliteEventLogStorage,
    "kept": KeptSqliteEventLogStorage,
    "kept-batch": KeptSqliteEventLogStorage,
}


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


def ms_an_event(kind: str, events: int, batch: int) -> tuple[float, float]:
    storage = STORAGES[kind](tempfile.mkdtemp(prefix=f"evbench-{kind}-"))
    storage.store_event(materialization("run", -1))  # the files created
    entries = [materialization("run", n) for n in range(events)]
    start, cpu = time.perf_counter(), time.process_time()
    if kind.endswith("-batch"):
        for first in range(0, events, batch):
            storage.store_event_batch(entries[first : first + batch])
    else:
        for entry in entries:
            storage.store_event(entry)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(storage.get_records_for_run("run", limit=events + 10).records) == events + 1
    storage.dispose()
    return elapsed / events * 1000, cpu / events * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=29, help="events a batch (kept-batch)")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in STORAGES}
    for _ in range(args.rounds):
        for kind in STORAGES:
            results[kind].append(ms_an_event(kind, args.events, args.batch))
            wall, cpu = results[kind][-1]
            load = os.getloadavg()[0]
            print(f"{kind}: {wall:.1f} ms an event, {cpu:.1f} ms CPU (load {load:.1f})")
    print(
        ", ".join(
            f"{k} median {statistics.median(w for w, _ in v):.1f} ms "
            f"({statistics.median(c for _, c in v):.1f} CPU)"
            for k, v in results.items()
        )
    )


if __name__ == "__main__":
    main()
