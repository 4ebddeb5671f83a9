"""Shared by the tests/*/test_incremental_*.py files: one hour of robot_telemetry landed
object by object (imported by tests, not a conftest)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
# the catalog table as a crawl stores it (only Columns matter to cleaning)
TABLE = {
    "Name": "robot_telemetry",
    "StorageDescriptor": {
        "Columns": [
            {"Name": "event_id", "Type": "string"},
            {"Name": "ts", "Type": "timestamp"},
            {"Name": "robot_id", "Type": "string"},
        ]
    },
}


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
