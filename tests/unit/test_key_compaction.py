"""Dedup key compaction off the cleaning path (issue 15): a run compacts each event date at
most once, at its end; between runs a date never has COMPACT_AFTER_FILES hour files
outside its compacted file; the key-file cache never holds content under another
version's ETag."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning import key_files
from lake.cleaning.commit import RunCommit
from lake.cleaning.key_files import ABSORBED, COMPACT_AFTER_FILES, key_file_bytes
from lake.storage import LocalStorage, open_storage
from tests.unit.test_dedup_probe import (
    DAY,
    SPEC,
    CountingStorage,
    clean,
    hour_of,
    land,
    random_keys,
)

TS = "2026-11-19T12:00:00Z"


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def outside_compacted(lake: LocalStorage) -> set[str]:
    """The date's hour files not in its compacted file at their current version."""
    hours = {
        i.key.rsplit("/", 1)[1]: i.etag
        for i in lake.list(layout.dedup_keys_folder(SPEC.name, DAY))
        if i.key.endswith(".parquet") and i.key != layout.dedup_keys_compacted(SPEC.name, DAY)
    }
    compacted = lake.path(layout.dedup_keys_compacted(SPEC.name, DAY))
    absorbed = (
        json.loads(pq.read_schema(compacted).metadata[ABSORBED]) if compacted.exists() else {}
    )
    return {name for name, etag in hours.items() if absorbed.get(name) != etag}


def test_a_multi_hour_run_compacts_each_date_once_at_its_end(
    landing: LocalStorage, tmp_path
) -> None:
    lake = CountingStorage(tmp_path / "counted")
    hours = [hour_of(DAY, h) for h in range(8)]
    for n, hour in enumerate(hours):  # each hour redelivers 10 records of the hour before
        land(
            landing,
            hour,
            [f"h{n}-{i}" for i in range(40)] + [f"h{n - 1}-{i}" for i in range(10)],
            TS,
        )
    run = RunCommit(None, SPEC, lake)
    dropped = [clean(landing, lake, hour, run_commit=run).duplicates_dropped for hour in hours]
    compacted = layout.dedup_keys_compacted(SPEC.name, DAY)
    assert dropped == [0] + [10] * 7  # found in the hour files: nothing compacted yet
    assert not lake.exists(compacted)

    run.commit()

    assert lake.writes[compacted] == 1
    assert outside_compacted(lake) == set()
    # every key kept: 40 an hour, and the first hour's 10 "h-1" ones
    assert pq.read_metadata(lake.path(compacted)).num_rows == 8 * 40 + 10


def test_between_runs_a_date_keeps_fewer_than_the_threshold_outside_its_compacted_file(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    outside = []
    for n in range(2 * COMPACT_AFTER_FILES + 1):  # one micro-batch run an arrival hour
        hour = hour_of(DAY, n)
        land(landing, hour, [f"b{n}-{i}" for i in range(20)], TS)
        assert clean(landing, lake, hour).records_cleaned == 20
        outside.append(len(outside_compacted(lake)))
    assert outside == [1, 2, 3, 0, 1, 2, 3, 0, 1]
    # the keys of compacted and of not yet compacted hours both still count
    later = hour_of(DAY, 22)
    land(landing, later, [f"b0-{i}" for i in range(5)] + [f"b8-{i}" for i in range(5)], TS)
    assert clean(landing, lake, later).duplicates_dropped == 10


@pytest.mark.s3
def test_a_key_file_read_again_after_a_rewrite_is_cached_under_the_version_it_read(
    s3_bucket: str,
) -> None:
    """Listed at version A, rewritten to B before it was read: B's rows are read (whole) and
    must not be remembered as A's, since A's content may come back under A's ETag."""
    lake = open_storage(f"s3://{s3_bucket}/lake")
    key = layout.dedup_keys_file(SPEC.name, DAY, hour_of(DAY, 7))
    first, second = random_keys(300, seed=21, obj="a"), random_keys(200, seed=22, obj="b")
    lake.write(key, key_file_bytes(first))
    (listed_first,) = lake.list(layout.dedup_keys_folder(SPEC.name, DAY))
    lake.write(key, key_file_bytes(second))
    assert key_files.read_keys(lake, listed_first)["obj"].to_pylist() == ["b"] * 200

    lake.write(key, key_file_bytes(first))  # the same content again: the same ETag
    (listed_again,) = lake.list(layout.dedup_keys_folder(SPEC.name, DAY))
    assert listed_again.etag == listed_first.etag
    rows = key_files.read_keys(lake, listed_again)
    assert rows["obj"].to_pylist() == ["a"] * 300
    assert sorted(rows["hi"].to_pylist()) == sorted(first["hi"].to_pylist())


def test_a_reprocessed_hour_file_left_outside_is_probed_at_its_new_version(
    lake: LocalStorage,
) -> None:
    """A compacted date whose hour file is then rewritten (an object re-cleaned, its keys
    taken out) is probed right, before any compaction absorbs the new version."""
    hours = [hour_of(DAY, h) for h in range(COMPACT_AFTER_FILES)]
    keys = [random_keys(100, seed=30 + n, obj=f"o{n}") for n in range(len(hours))]
    for hour, part in zip(hours, keys, strict=True):
        lake.write(layout.dedup_keys_file(SPEC.name, DAY, hour), key_file_bytes(part))
    assert key_files.compact_due(lake, SPEC.name, [DAY]) == [DAY]
    kept = keys[0].slice(50)
    lake.write(layout.dedup_keys_file(SPEC.name, DAY, hours[0]), key_file_bytes(kept))
    assert key_files.compact_due(lake, SPEC.name, [DAY]) == []  # one hour file outside: not due

    probe = pa.concat_tables([keys[0], keys[1].slice(0, 10)]).select(["hi", "lo"])
    hits = key_files.KeyWindow(lake, SPEC.name, [DAY]).hits(probe)
    expected = kept["hi"].to_pylist() + keys[1].slice(0, 10)["hi"].to_pylist()
    assert sorted(hits["hi"].to_pylist()) == sorted(expected)
