"""Cleaning reads landed objects without local copies: on S3 (moto over HTTP) and for local
gzip objects, no file under the temporary directory ever holds the objects' text.

Every file the run writes there is kept (deletions are turned off for the run) and read
afterwards for a marker that only the landed text holds: it sits in a field the stream
redacts, so the cleaned output does not carry it either. DuckDB's own spill files would be
its temp_directory's, not copies for reading, and do not occur at this size.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage, Storage, open_storage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 9, tzinfo=UTC)
OBJECTS, RECORDS = 4, 50


def _land(landing: Storage, marker: str) -> None:
    for n in range(OBJECTS):
        records = [
            {
                "event_id": f"o{n}-{i}",
                "ts": "2026-11-21T09:10:00Z",
                "robot_id": "R1",
                "operator": {"name": f"{marker}-{n}-{i}"},  # redacted by the stream
            }
            for i in range(RECORDS)
        ]
        body = "".join(json.dumps(r) for r in records).encode()
        landing.write(object_key(SPEC.name, HOUR.replace(minute=n)), gzip.compress(body))


def _files_holding(root: Path, marker: bytes) -> tuple[list[Path], int]:
    """The files under `root` holding `marker`, and the bytes of all its files."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return [p for p in files if marker in p.read_bytes()], sum(p.stat().st_size for p in files)


def _clean_watching_scratch(
    landing: Storage, lake: Storage, scratch: Path, monkeypatch: pytest.MonkeyPatch
):
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    crawled = crawl_objects(SPEC, Catalog(lake, "firehose_raw"), landing, objects)
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with monkeypatch.context() as kept:  # every file written under scratch stays to be read
        kept.setattr(os, "unlink", lambda *a, **k: None)
        kept.setattr(os, "remove", lambda *a, **k: None)
        kept.setattr(shutil, "rmtree", lambda *a, **k: None)
        return clean_hour(SPEC, crawled.table, landing, lake, HOUR, objects)


@pytest.mark.s3
def test_s3_objects_reach_duckdb_without_a_local_copy(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"nocopy{uuid.uuid4().hex}"
    landing = open_storage(f"s3://{s3_bucket}/landing")
    lake = open_storage(f"s3://{s3_bucket}/lake")
    _land(landing, marker)

    report = _clean_watching_scratch(landing, lake, tmp_path / "scratch", monkeypatch)

    assert report.records_cleaned == OBJECTS * RECORDS
    assert report.objects_split_in_python == 0
    holding, _ = _files_holding(tmp_path / "scratch", marker.encode())
    assert holding == []
    assert list((tmp_path / "scratch").glob("clean-*"))  # the run's own temporary folder


def test_local_gzip_objects_reach_duckdb_without_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"nocopy{uuid.uuid4().hex}"
    landing = LocalStorage(tmp_path / "landing")
    lake = LocalStorage(tmp_path / "lake")
    _land(landing, marker)

    report = _clean_watching_scratch(landing, lake, tmp_path / "scratch", monkeypatch)

    assert report.records_cleaned == OBJECTS * RECORDS
    holding, _ = _files_holding(tmp_path / "scratch", marker.encode())
    assert holding == []
    assert list((tmp_path / "scratch").glob("clean-*"))
