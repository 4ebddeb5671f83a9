"""Shared by the tests/*/test_incremental_*.py files and other tests that clean: one hour of
robot_telemetry landed object by object, its catalog table, runs racing in threads
(imported by tests, not a conftest)."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
ROBOT_COLUMNS = [("event_id", "string"), ("ts", "timestamp"), ("robot_id", "string")]


def catalog_table(name: str, columns: list[tuple[str, str]], **fields: Any) -> dict:
    """The catalog table as a crawl stores it: (name, type) columns and other `fields`
    (only Columns matter to cleaning)."""
    return {
        "Name": name,
        "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in columns]},
        **fields,
    }


TABLE = catalog_table(SPEC.name, ROBOT_COLUMNS)


def land(landing: LocalStorage, minute: int, ids: list[str], broken: int = 0) -> str:
    """An object of len(ids) good records and, with `broken`, one unparseable tail."""
    records = "".join(
        json.dumps({"event_id": i, "ts": f"2026-11-21T08:{minute:02d}:00Z", "robot_id": "R"})
        for i in ids
    )
    key = object_key(SPEC.name, HOUR.replace(minute=minute), object_id=f"o{minute}")
    landing.write(key, gzip.compress((records + '{"event_id": "x", "ts"' * broken).encode()))
    return key


def landed(landing: LocalStorage) -> list:
    return list(landing.list(hour_prefix(SPEC.name, HOUR)))


def run_all(targets: list[Callable[[], object]]) -> list[BaseException]:
    """Run each target in a thread of its own, wait for all; what they raised."""
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
