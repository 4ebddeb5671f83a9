"""A run's commit registers its files from the footers it read once (lake.iceberg.data_files),
with the same data files pyiceberg's own add_files makes of them."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.table import Table

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix
from lake.iceberg.catalog import CLEANED, QUARANTINE, LakeTables
from lake.settings import DEFAULTS, Settings
from lake.storage import LocalStorage
from tests.unit.test_cleaning import HOUR, SPEC, TABLE, dumps, put, rec

DATA_FILE_FIELDS = (
    "content", "file_path", "file_format", "record_count", "file_size_in_bytes",
    "column_sizes", "value_counts", "null_value_counts", "nan_value_counts",
    "lower_bounds", "upper_bounds", "key_metadata", "split_offsets", "equality_ids",
    "sort_order_id",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "data-files-test-key")


def _settings(root: Path, landing: LocalStorage) -> Settings:
    return replace(
        DEFAULTS,
        lake_uri=LocalStorage(root).uri,
        landing_uri=landing.uri,
        iceberg_catalog_uri=f"sqlite:///{root / 'iceberg.db'}",
    )


def _land(landing: LocalStorage) -> None:
    """Objects over two event days, one record with a field the catalog lacks, one
    malformed record (quarantine), one with PII."""
    put(landing, 1, "o1", dumps(rec("a")) + dumps(rec("b", ts="2026-11-20T23:59:00Z")))
    put(landing, 2, "o2", dumps(rec("c", count=3, ratio=0.5)) + '{"event_id":"bad","ts":')
    put(landing, 3, "o3", dumps(rec("d", extra_field="x")) + dumps(rec("e", ok=True)))


def _entries(table: Table) -> list[dict[str, Any]]:
    """The data files of the table's current snapshot, in manifest order."""
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return [
        {
            **{name: _plain(getattr(entry.data_file, name)) for name in DATA_FILE_FIELDS},
            "partition": tuple(entry.data_file.partition),
            # the other table was created with its spec, ours had it added (ids differ)
            "current_spec": entry.data_file.spec_id == table.spec().spec_id,
        }
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io)
    ]


def _plain(value: Any) -> Any:
    return dict(value) if hasattr(value, "items") else value  # pyiceberg's LazyDict


def test_data_files_are_those_pyiceberg_add_files_makes(tmp_path: Path) -> None:
    landing = LocalStorage(tmp_path / "landing")
    _land(landing)
    settings = _settings(tmp_path / "lake", landing)
    lake, tables = LocalStorage(tmp_path / "lake"), LakeTables(settings)
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    clean_hour(SPEC, TABLE, landing, lake, HOUR, objects, tables=tables, settings=settings)

    # the same files added by pyiceberg to a table of the same schema, spec and properties
    other = LakeTables(replace(settings, iceberg_catalog_uri=f"sqlite:///{tmp_path / 'b.db'}"))
    for layer in (CLEANED, QUARANTINE):
        ours = tables.load(layer, SPEC.name)
        assert ours is not None
        mine = _entries(ours)
        assert mine and all(e["record_count"] > 0 for e in mine)
        other.catalog.create_namespace_if_not_exists(other.namespace(layer))
        theirs = other.catalog.create_table(
            other.table_id(layer, SPEC.name),
            schema=ours.schema(),
            location=str(tmp_path / "b" / layer),
            partition_spec=ours.spec(),
            properties=ours.properties,
        )
        with theirs.transaction() as tx:
            tx.add_files([e["file_path"] for e in mine], check_duplicate_files=False)
        assert _entries(other.load(layer, SPEC.name)) == mine
    cleaned = tables.load(CLEANED, SPEC.name)
    assert sorted(cleaned.scan().to_arrow()["event_id"].to_pylist()) == ["a", "b", "c", "d", "e"]
    days = {(date(2026, 11, d) - date(1970, 1, 1)).days for d in (20, 21)}
    assert {e["partition"] for e in _entries(cleaned)} == {(d,) for d in days}


def test_commit_reads_each_footer_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = LocalStorage(tmp_path / "landing")
    _land(landing)
    settings = _settings(tmp_path / "lake", landing)
    lake, tables = LocalStorage(tmp_path / "lake"), LakeTables(settings)
    opened: Counter[str] = Counter()
    new_input = PyArrowFileIO.new_input

    def counting(self: PyArrowFileIO, location: str) -> Any:
        if location.endswith(".parquet"):
            opened[location] += 1
        return new_input(self, location)

    monkeypatch.setattr(PyArrowFileIO, "new_input", counting)
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    clean_hour(SPEC, TABLE, landing, lake, HOUR, objects, tables=tables, settings=settings)

    files = [
        e["file_path"]
        for layer in (CLEANED, QUARANTINE)
        for e in _entries(tables.load(layer, SPEC.name))
    ]
    # 2026-11-21: o1, o2 and o3 share a file; 2026-11-20: o1's alone; a quarantine file
    assert len(files) == 2 + 1
    assert {f: opened[f] for f in files} == dict.fromkeys(files, 1)
