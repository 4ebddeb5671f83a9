"""A micro-batch table keeps a bounded number of snapshots (ICEBERG_MAX_SNAPSHOTS)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix
from lake.iceberg.catalog import LakeTables
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from tests.unit.test_cleaning import HOUR, SPEC, TABLE, dumps, put, rec


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "snapshot-bound-test-key")


def test_snapshots_stay_bounded_and_every_row_stays(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    settings = replace(
        DEFAULTS, lake_uri=lake.uri, landing_uri=landing.uri, iceberg_max_snapshots=4
    )
    tables = LakeTables(settings)
    counts = []
    for minute in range(12):  # twelve micro-batches of one object each
        put(landing, minute, f"o{minute}", dumps(rec(f"e{minute}")))
        objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
        clean_hour(SPEC, TABLE, landing, lake, HOUR, objects, tables=tables)
        counts.append(len(tables.load("cleaned", SPEC.name).snapshots()))
    assert max(counts) <= 4 + 4 // 4  # expired once it holds a quarter more than it keeps
    assert counts[-1] >= 4  # ...and never below what it keeps
    table = tables.load("cleaned", SPEC.name)
    ids = sorted(table.scan().to_arrow()["event_id"].to_pylist())
    assert ids == sorted(f"e{m}" for m in range(12))
