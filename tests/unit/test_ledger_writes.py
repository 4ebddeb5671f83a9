"""A run's manifests are written at once (a thread pool: on S3 each is a round trip), and
what they record is what one-by-one writes recorded: every object processed, its counts,
its files, the hour's totals; a re-run cleans nothing twice."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lake import layout
from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix, object_key
from lake.hour_totals import hour_totals
from lake.ledger import manifest_of, read_manifest
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.unit.test_cleaning import TABLE

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
OBJECTS = 12


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


class MeetingLake(LocalStorage):
    """A lake whose first two manifest writes wait for each other: written one after the
    other, the first waits alone until the barrier breaks."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.barrier = threading.Barrier(2, timeout=30)  # a deadlock guard, not a timing
        self.manifest_writes = 0
        self._lock = threading.Lock()

    def write(self, key: str, data: bytes) -> None:
        if key.startswith(layout.ledger_folder(SPEC.name)):
            with self._lock:
                self.manifest_writes += 1
                meet = self.manifest_writes <= 2
            if meet:
                self.barrier.wait()
        super().write(key, data)


def land(landing: LocalStorage) -> None:
    for n in range(OBJECTS):
        records = [
            {
                "event_id": f"e{n}-{i}",
                "ts": f"{HOUR:%Y-%m-%dT%H}:{n:02d}:{i:02d}Z",
                "robot_id": "R1",
            }
            for i in range(3)
        ]
        records.append({"event_id": f"e{n}-0", "ts": f"{HOUR:%Y-%m-%dT%H}:{n:02d}:00Z"})  # a dup
        text = "".join(json.dumps(r) for r in records) + ("{broken" if n == 3 else "")
        key = object_key(SPEC.name, HOUR + timedelta(minutes=n), object_id=f"{n:02d}")
        landing.write(key, gzip.compress(text.encode()))


def test_manifests_are_written_at_once_and_record_every_object(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), MeetingLake(tmp_path / "lake")
    land(landing)
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))

    report = clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)

    assert lake.barrier.n_waiting == 0 and not lake.barrier.broken
    assert lake.manifest_writes == OBJECTS
    for n, info in enumerate(objects):
        manifest = read_manifest(lake, manifest_of(SPEC.name, HOUR, info))
        assert manifest["source_key"] == info.key
        assert manifest["records_in"] == 4 + (n == 3)
        assert manifest["records_cleaned"] == 3
        assert manifest["duplicates_dropped"] == 1
        assert manifest["records_quarantined"] == (n == 3)
        assert all((tmp_path / "lake" / f).is_file() for f in manifest["files"])
        assert len(manifest["files"]) == 1 + (n == 3)  # cleaned, and the quarantine file
    totals = hour_totals(lake, SPEC.name, HOUR, objects)
    assert (totals.objects, totals.objects_pending) == (OBJECTS, 0)
    assert totals.records_in == report.records_in == 4 * OBJECTS + 1
    assert totals.records_cleaned == 3 * OBJECTS

    again = clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)
    assert again.objects_skipped == OBJECTS and again.records_in == 0
