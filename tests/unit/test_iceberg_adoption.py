"""A lake written before its Iceberg tables existed (or whose table was lost): the first
commit adopts its files, a file shared by several objects by its committed rows alone."""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning.hour import clean_hour
from lake.committed import CommittedFiles
from lake.firehose import hour_prefix
from lake.iceberg.catalog import LakeTables
from lake.iceberg.commit import ADOPTED
from lake.iceberg.scan import committed_keys
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from tests.unit.test_cleaning import HOUR, SPEC, TABLE, dumps, put, rec


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "adoption-test-key")


def _clean(landing: LocalStorage, lake: LocalStorage, tables: LakeTables | None):
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    return clean_hour(SPEC, TABLE, landing, lake, HOUR, objects, tables=tables)


def test_files_cleaned_before_the_table_existed_are_adopted_once(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    settings = replace(DEFAULTS, lake_uri=lake.uri, landing_uri=landing.uri)
    put(landing, 1, "old", "".join(dumps(rec(f"o{i}")) for i in range(4)) + "{broken")
    before = _clean(landing, lake, tables=None)  # the pipeline before Iceberg
    assert before.records_cleaned == 4 and before.records_quarantined == 1
    # a file a killed run left behind: no manifest names it, so it must stay out
    stray = layout.cleaned_file(SPEC.name, HOUR.date(), "20261121T08-stray-0000.parquet")
    lake.write(stray, lake.read(before.files_written[0]))

    tables = LakeTables(settings)
    put(landing, 2, "new", "".join(dumps(rec(f"n{i}")) for i in range(3)))
    after = _clean(landing, lake, tables)
    assert after.records_cleaned == 3

    cleaned = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    ids = sorted(cleaned.scan(selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist())
    assert ids == sorted([f"o{i}" for i in range(4)] + [f"n{i}" for i in range(3)])
    assert stray not in committed_keys(tables, "cleaned", SPEC.name)
    assert cleaned.properties[ADOPTED] == "true"
    quarantine = tables.catalog.load_table(f"quarantine.{SPEC.name}")
    assert quarantine.scan().to_arrow()["raw_text"].to_pylist() == ["{broken"]

    snapshots = len(cleaned.snapshots())
    put(landing, 3, "third", dumps(rec("t0")))
    _clean(landing, lake, tables)  # adopted already: no second adoption
    cleaned = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    assert cleaned.scan().to_arrow().num_rows == 8
    assert len(cleaned.snapshots()) == snapshots + 1


def test_a_gzip_object_rewritten_after_adoption_replaces_its_rows(tmp_path: Path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    settings = replace(DEFAULTS, lake_uri=lake.uri, landing_uri=landing.uri)
    key = put(landing, 1, "obj", "".join(dumps(rec(f"a{i}")) for i in range(5)))
    _clean(landing, lake, tables=None)
    tables = LakeTables(settings)
    landing.write(key, gzip.compress("".join(dumps(rec(f"b{i}")) for i in range(2)).encode()))
    _clean(landing, lake, tables)  # adopts the 5 rows, then replaces them by the new 2
    rows = tables.catalog.load_table(f"cleaned.{SPEC.name}").scan().to_arrow()
    assert sorted(rows["event_id"].to_pylist()) == ["b0", "b1"]
    for path in committed_keys(tables, "cleaned", SPEC.name) or []:
        assert pq.read_metadata(lake.path(path)).num_rows == 2


def _ids(tables: LakeTables) -> list[str]:
    cleaned = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    return sorted(cleaned.scan(selected_fields=("event_id",)).to_arrow()["event_id"].to_pylist())


def test_a_shared_file_a_sharer_left_is_adopted_as_its_current_rows_alone(
    tmp_path: Path,
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    tables = LakeTables(replace(DEFAULTS, lake_uri=lake.uri, landing_uri=landing.uri))
    keys = [
        put(landing, n, oid, "".join(dumps(rec(f"{oid}{i}")) for i in range(n + 1)))
        for n, oid in enumerate("abc", start=1)
    ]
    _clean(landing, lake, tables)  # small objects: the run writes one shared file
    listed = lake.list(layout.layer_folder("cleaned", SPEC.name))
    [shared] = [o.key for o in listed if layout.is_shared_file(o.key)]
    committed = CommittedFiles(lake, SPEC.name)
    assert shared in committed.of_days("cleaned", None)  # every row committed: whole
    # b is overwritten and cleaned again: the table's copy-on-write takes its old rows
    # out of the shared file; the file on disk keeps them, a's and c's manifests name it
    landing.write(keys[1], gzip.compress(dumps(rec("b-new")).encode()))
    _clean(landing, lake, tables)
    current = sorted(["a0", "a1", "b-new", "c0", "c1", "c2", "c3"])
    assert _ids(tables) == current
    assert pq.read_metadata(lake.path(shared)).num_rows == 9
    committed = CommittedFiles(lake, SPEC.name)
    assert shared not in committed.of_days("cleaned", None)
    [partly] = committed.partly_of_days("cleaned", None)
    assert (partly.file, partly.ranges) == (shared, ((0, 2), (5, 4)))

    junk = layout.shared_file(SPEC.name, HOUR.date(), HOUR, "ffffffffffff", 0)
    lake.write(junk, b"not parquet")  # named as a shared file: no sharer, never committed
    tables.catalog.drop_table(f"cleaned.{SPEC.name}")  # lost: the next commit adopts
    put(landing, 5, "d", dumps(rec("d0")))
    _clean(landing, lake, tables)

    assert _ids(tables) == sorted([*current, "d0"])  # every current row once, no stale one
    registered = committed_keys(tables, "cleaned", SPEC.name) or []
    assert shared not in registered and junk not in registered
    assert sum("/compacted-" in k for k in registered) == 1
