"""Table maintenance on a SqlCatalog in tmp_path, with files made by clean_hour: compaction
of a day's small files, a re-clean after it, snapshot expiry and orphan files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lake.cleaning import writing
from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix, object_key
from lake.iceberg import compaction
from lake.iceberg.catalog import CLEANED, QUARANTINE, LakeTables
from lake.iceberg.compaction import compact_day
from lake.iceberg.expiry import expire_table
from lake.iceberg.scan import committed_keys
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from tests.unit.test_cleaning import HOUR, SPEC, TABLE

DAY = date(2026, 11, 21)
OBJECTS, PER_OBJECT = 24, 5
BIG = 1 << 30  # a target every day's files fit in


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "maintenance-test-key")


@pytest.fixture
def tables(tmp_path: Path) -> LakeTables:
    settings = replace(
        DEFAULTS,
        lake_uri=(tmp_path / "lake").as_uri(),
        iceberg_catalog_uri=f"sqlite:///{tmp_path / 'iceberg.db'}",
    )
    return LakeTables(settings)


def land(landing: LocalStorage, n: int, ids: list[str], junk: bool = False) -> str:
    """Object n of the hour: records `ids` on DAY (and a bad record when `junk`)."""
    body = "".join(
        json.dumps({"event_id": i, "ts": "2026-11-21T08:10:00Z", "robot_id": "R1", "count": k})
        for k, i in enumerate(ids)
    )
    key = object_key(SPEC.name, HOUR.replace(minute=n), object_id=f"o{n:03d}")
    landing.write(key, gzip.compress((body + ('{"event_id": "x", "ts"' if junk else "")).encode()))
    return key


def clean(landing: LocalStorage, lake: LocalStorage, tables: LakeTables) -> None:
    objects = list(landing.list(hour_prefix(SPEC.name, HOUR)))
    clean_hour(SPEC, TABLE, landing, lake, HOUR, objects, tables=tables)


def ids_of(n: int) -> list[str]:
    return [f"o{n}-r{r}" for r in range(PER_OBJECT)]


def rows(tables: LakeTables, layer: str = CLEANED) -> list[dict[str, Any]]:
    table = tables.catalog.load_table(tables.table_id(layer, SPEC.name))
    found = table.scan().to_arrow().to_pylist()
    return sorted(found, key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.fixture
def small_files(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OBJECTS objects cleaned in one hour: OBJECTS small files on DAY (files of their own,
    as micro-batches of one object write them: no shared file), a bad record in every
    third object (OBJECTS / 3 quarantine files)."""
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)
    for n in range(OBJECTS):
        land(landing, n, ids_of(n), junk=n % 3 == 0)
    clean(landing, lake, tables)


@pytest.mark.usefixtures("small_files")
def test_compaction_keeps_every_row_and_cuts_the_file_count(
    lake: LocalStorage, tables: LakeTables
) -> None:
    before = rows(tables)
    assert len(before) == OBJECTS * PER_OBJECT
    assert len(committed_keys(tables, CLEANED, SPEC.name, [DAY]) or []) == OBJECTS

    done = compact_day(tables, CLEANED, SPEC.name, DAY, BIG, min_files=8)

    assert (done.files_before, done.files_rewritten, done.files_after) == (OBJECTS, OBJECTS, 1)
    assert done.rows_rewritten == done.rows_written == OBJECTS * PER_OBJECT
    assert rows(tables) == before
    [key] = committed_keys(tables, CLEANED, SPEC.name, [DAY]) or []
    assert key.startswith(f"cleaned/{SPEC.name}/dt=2026-11-21/compacted-")
    assert done.files_written == [key]
    assert done.bytes_after == lake.path(key).stat().st_size
    table = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    written = pq.read_schema(lake.path(key))
    assert written.names == [f.name for f in table.schema().fields]
    assert {"_source_key", "_ingested_at"} <= set(written.names)  # lineage kept
    assert table.current_snapshot().summary["lake.maintenance"] == "compaction"


@pytest.mark.usefixtures("small_files")
def test_a_target_smaller_than_the_day_makes_several_files(tables: LakeTables) -> None:
    before = rows(tables)
    table = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    largest = max(t.file.file_size_in_bytes for t in table.scan().plan_files())

    done = compact_day(tables, CLEANED, SPEC.name, DAY, 6 * largest, min_files=8)

    # each new file holds at least 6 of the old ones: at most OBJECTS / 6 of them
    assert 2 <= done.files_after <= OBJECTS // 6
    assert len(committed_keys(tables, CLEANED, SPEC.name, [DAY]) or []) == done.files_after
    assert rows(tables) == before


@pytest.mark.usefixtures("small_files")
def test_quarantine_compacts_too(tables: LakeTables) -> None:
    before = rows(tables, QUARANTINE)
    assert len(before) == OBJECTS // 3

    done = compact_day(tables, QUARANTINE, SPEC.name, DAY, BIG, min_files=2)

    assert (done.files_before, done.files_after) == (OBJECTS // 3, 1)
    assert rows(tables, QUARANTINE) == before


@pytest.mark.usefixtures("small_files")
def test_too_few_small_files_are_left_alone(tables: LakeTables) -> None:
    table = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    snapshot = table.current_snapshot().snapshot_id

    done = compact_day(tables, CLEANED, SPEC.name, DAY, BIG, min_files=OBJECTS + 1)

    assert done.skipped and done.files_written == [] and done.files_after == OBJECTS
    assert table.refresh().current_snapshot().snapshot_id == snapshot


@pytest.mark.usefixtures("small_files")
def test_a_reclean_after_compaction_replaces_only_that_objects_rows(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables
) -> None:
    compact_day(tables, CLEANED, SPEC.name, DAY, BIG, min_files=8)
    [compacted] = committed_keys(tables, CLEANED, SPEC.name, [DAY]) or []

    source = land(landing, 5, ["o5-new-a", "o5-new-b"])  # object 5 overwritten under its key
    clean(landing, lake, tables)

    expected = {i for n in range(OBJECTS) if n != 5 for i in ids_of(n)} | {"o5-new-a", "o5-new-b"}
    found = rows(tables)
    assert sorted(r["event_id"] for r in found) == sorted(expected)
    assert {r["_source_key"] for r in found if r["event_id"].startswith("o5-")} == {source}
    # the compacted file held other objects' rows too: pyiceberg rewrote it without object 5's
    assert compacted not in (committed_keys(tables, CLEANED, SPEC.name, [DAY]) or [])


def _age(lake: LocalStorage, key: str, when: datetime) -> None:
    os.utime(lake.path(key), (when.timestamp(), when.timestamp()))


@pytest.mark.usefixtures("small_files")
def test_expiry_deletes_only_unreferenced_old_files(lake: LocalStorage, tables: LakeTables) -> None:
    folder = f"cleaned/{SPEC.name}/"
    replaced = committed_keys(tables, CLEANED, SPEC.name, [DAY]) or []
    compact_day(tables, CLEANED, SPEC.name, DAY, BIG, min_files=8)
    before = rows(tables)
    now = datetime.now(UTC) + timedelta(hours=2)  # every snapshot and file is over an hour old
    # a run killed before its commit: a file no snapshot references, and one still being written
    killed, writing = f"{folder}dt=2026-11-21/killed.parquet", f"{folder}dt=2026-11-21/new.parquet"
    outside = "cleaned/robot_telemetry_other/dt=2026-11-21/old.parquet"
    for key in (killed, writing, outside):
        lake.path(key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(lake.path(replaced[0]), lake.path(key))
    _age(lake, writing, now)  # younger than the retention
    table = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    snapshots = len(table.snapshots())
    assert snapshots >= 2
    old_lists = {s.manifest_list for s in table.snapshots()} - {
        table.current_snapshot().manifest_list
    }

    done = expire_table(tables, lake, CLEANED, SPEC.name, timedelta(hours=1), now=now)

    assert done.snapshots_expired == snapshots - 1
    assert done.orphan_files_deleted == len(replaced) + 1
    remaining = {o.key for o in lake.list(folder) if not o.key.startswith(f"{folder}metadata/")}
    live = set(committed_keys(tables, CLEANED, SPEC.name) or [])
    assert remaining == live | {writing}
    assert lake.exists(outside)
    assert rows(tables) == before
    table = tables.catalog.load_table(f"cleaned.{SPEC.name}")
    assert len(table.snapshots()) == 1
    assert done.metadata_files_deleted >= len(old_lists)
    assert not any(lake.exists(tables.key_of(uri) or "") for uri in old_lists)
    assert lake.exists(tables.key_of(table.current_snapshot().manifest_list) or "")


@pytest.mark.usefixtures("small_files")
def test_expiry_within_the_retention_deletes_nothing(
    lake: LocalStorage, tables: LakeTables
) -> None:
    compact_day(tables, CLEANED, SPEC.name, DAY, BIG, min_files=8)
    files = {o.key for o in lake.list(f"cleaned/{SPEC.name}/")}

    done = expire_table(tables, lake, CLEANED, SPEC.name, timedelta(hours=168))

    assert (done.snapshots_expired, done.orphan_files_deleted, done.metadata_files_deleted) == (
        0,
        0,
        0,
    )
    assert {o.key for o in lake.list(f"cleaned/{SPEC.name}/")} == files


@pytest.mark.usefixtures("small_files")
def test_a_reclean_committed_while_compacting_wins_and_the_new_files_go(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Object 5 re-cleaned after compaction planned the day, before it commits: the
    overwrite would drop the re-cleaned rows, so compaction leaves the day alone."""
    write_group = compaction._write_group

    def write_then_reclean(*args: Any) -> str:
        written = write_group(*args)
        land(landing, 5, ["o5-new"])
        clean(landing, lake, tables)
        return written

    monkeypatch.setattr(compaction, "_write_group", write_then_reclean)

    done = compact_day(tables, CLEANED, SPEC.name, DAY, BIG, min_files=8)

    assert done.skipped.startswith("the day changed meanwhile") and done.files_written == []
    assert not [o for o in lake.list(f"cleaned/{SPEC.name}/") if "compacted-" in o.key]
    expected = {i for n in range(OBJECTS) if n != 5 for i in ids_of(n)} | {"o5-new"}
    assert sorted(r["event_id"] for r in rows(tables)) == sorted(expected)
