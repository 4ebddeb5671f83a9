"""Many small objects: a run stores its objects' cleaned files and writes their manifests
several at once (thread pools: on S3 each is a round trip), and what it records is what
one-by-one writes recorded: every object's rows with their lineage, its counts, its files,
the hour's totals; a re-run cleans nothing twice."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
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
    """A lake whose first `parties` writes under `folder` wait for each other: with fewer
    written at once, those waiting wait until the barrier breaks."""

    writes_at_once = 8  # writes overlap as on an object store

    def __init__(self, root: Path, folder: str, parties: int) -> None:
        super().__init__(root)
        self.folder, self.parties = folder, parties
        self.barrier = threading.Barrier(parties, timeout=30)  # a deadlock guard, no timing
        self.writes = 0
        self._lock = threading.Lock()

    def write(self, key: str, data: bytes) -> None:
        if key.startswith(self.folder):
            with self._lock:
                self.writes += 1
                meet = self.writes <= self.parties
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


@pytest.mark.parametrize(
    ("folder", "parties"),
    [
        (layout.ledger_folder(SPEC.name), 2),  # manifests: several at once
        (layout.layer_folder("cleaned", SPEC.name), 3),  # files: more than the 2 encoders
    ],
    ids=["manifests", "cleaned-files"],
)
def test_small_objects_are_stored_at_once_and_recorded_whole(
    tmp_path: Path, folder: str, parties: int
) -> None:
    landing, lake = (
        LocalStorage(tmp_path / "landing"),
        MeetingLake(tmp_path / "lake", folder, parties),
    )
    land(landing)
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))

    report = clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)

    assert lake.barrier.n_waiting == 0 and not lake.barrier.broken
    assert lake.writes == OBJECTS
    for n, info in enumerate(objects):
        manifest = read_manifest(lake, manifest_of(SPEC.name, HOUR, info))
        assert manifest["source_key"] == info.key
        assert manifest["records_in"] == 4 + (n == 3)
        assert manifest["records_cleaned"] == 3
        assert manifest["duplicates_dropped"] == 1
        assert manifest["records_quarantined"] == (n == 3)
        assert all((tmp_path / "lake" / f).is_file() for f in manifest["files"])
        assert len(manifest["files"]) == 1 + (n == 3)  # cleaned, and the quarantine file
        rows = duckdb.sql(
            "SELECT event_id, _source_key, _position FROM read_parquet(?) ORDER BY _position",
            params=[str(tmp_path / "lake" / manifest["files"][0])],
        ).fetchall()
        assert rows == [(f"e{n}-{i}", info.key, i) for i in range(3)]
    totals = hour_totals(lake, SPEC.name, HOUR, objects)
    assert (totals.objects, totals.objects_pending) == (OBJECTS, 0)
    assert totals.records_in == report.records_in == 4 * OBJECTS + 1
    assert totals.records_cleaned == 3 * OBJECTS

    again = clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)
    assert again.objects_skipped == OBJECTS and again.records_in == 0


class ThreadNoting(LocalStorage):
    """A local lake that notes the thread of every write."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.threads: set[str] = set()

    def write(self, key: str, data: bytes) -> None:
        self.threads.add(threading.current_thread().name)
        super().write(key, data)


def test_a_local_folder_stores_files_and_manifests_in_line(tmp_path: Path) -> None:
    """Threads pay for an object store's round trips; on a local folder they only cost
    (0.6-1 ms an object slower, bench/README.md): its files are stored by the Parquet
    writer that encoded them and its manifests by the run's thread, with the same outcome."""
    landing, lake = LocalStorage(tmp_path / "landing"), ThreadNoting(tmp_path / "lake")
    land(landing)
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))

    report = clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)

    main = threading.current_thread().name
    assert {t for t in lake.threads if not t.startswith("parquet")} == {main}
    assert report.records_cleaned == 3 * OBJECTS
    assert all(read_manifest(lake, manifest_of(SPEC.name, HOUR, o)) for o in objects)


def test_a_manifest_is_compact_json_of_what_it_records(tmp_path: Path) -> None:
    """Manifests are read by json.loads only: one compact line (no indentation, which
    costs json's pure-Python encoder), every field as before."""
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    land(landing)
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))

    clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)

    for n, info in enumerate(objects):
        text = lake.read(manifest_of(SPEC.name, HOUR, info))
        manifest = json.loads(text)
        assert text == json.dumps(manifest, separators=(",", ":")).encode()
        assert manifest["source_key"] == info.key
        assert (manifest["records_in"], manifest["records_cleaned"]) == (4 + (n == 3), 3)
        assert {"files", "catalog_version", "column_types", "etag", "size"} <= set(manifest)
