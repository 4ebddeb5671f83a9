"""A compacted date's probe index (issue 15, task "probe"): a small probe that finds no key
reads the index's head and its keys' buckets, never the compacted file; a key found, a
stale, torn or missing index fall back to the compacted file, so nothing is missed."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning import key_index
from lake.cleaning.key_files import KeyWindow, compact_due
from lake.cleaning.key_index import BUCKET_ROWS
from lake.storage import LocalStorage, open_storage
from tests.unit.test_dedup_probe import SPEC, hour_of, random_keys, save

DAY = date(2026, 11, 19)
ROWS = 80 * BUCKET_ROWS  # an hour file's keys: four of them make an index a probe may use


class CountedLake:
    """A lake whose reads are counted per key; a local one is read by ranges, as S3 is."""

    def __init__(self, lake: Any) -> None:
        self.lake, self.uri = lake, "counted://" + lake.uri
        self.ranges: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def list(self, prefix: str = "", start_after: str | None = None) -> Any:
        return self.lake.list(prefix, start_after)

    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes:
        self.ranges[key] += 1
        self.bytes[key] += length
        return self.lake.read_range(key, start, length, etag)

    def __getattr__(self, name: str) -> Any:  # whole reads and writes: counted as such
        self.ranges[name] += 1
        return getattr(self.lake, name)


def compacted_date(lake: Any, hours: range) -> list[pa.Table]:
    keys = [random_keys(ROWS, seed=h, obj=f"obj{h}") for h in hours]
    for h, part in zip(hours, keys, strict=True):
        save(lake, hour_of(DAY, h), part)
    assert compact_due(lake, SPEC.name, [DAY]) == [DAY]
    return keys


def fresh_probe(n: int, seed: int) -> pa.Table:
    return random_keys(n, seed=seed).select(["hi", "lo"])


@pytest.mark.s3
def test_a_small_probe_reads_the_index_not_the_compacted_file_on_s3(s3_bucket: str) -> None:
    s3 = open_storage(f"s3://{s3_bucket}/lake")
    keys = compacted_date(s3, range(4))
    lake = CountedLake(s3)
    window = KeyWindow(lake, SPEC.name, [DAY])  # type: ignore[arg-type]
    compacted = layout.dedup_keys_compacted(SPEC.name, DAY)
    index = layout.dedup_keys_index(SPEC.name, DAY)
    (index_info,) = [i for i in s3.list(index)]

    assert window.hits(fresh_probe(100, seed=99)).num_rows == 0
    assert lake.ranges[compacted] == 0  # not even its footer
    assert lake.ranges[index] <= 1 + 100  # its head, then one GET a probe key's bucket
    assert lake.bytes[index] < index_info.size / 2  # 100 keys: at most 100 of its 256 buckets

    found = pa.concat_tables([fresh_probe(99, seed=98), keys[2].slice(7, 1).select(["hi", "lo"])])
    hits = window.hits(found)  # a key found: the compacted file gives its row
    assert hits.to_pylist() == keys[2].slice(7, 1).select(["hi", "lo"]).to_pylist()
    assert lake.ranges[compacted] > 0


def test_the_run_end_compaction_check_reads_the_index_head_only(lake: LocalStorage) -> None:
    compacted_date(lake, range(4))
    save(lake, hour_of(DAY, 4), random_keys(ROWS, seed=4))
    counted = CountedLake(lake)
    assert compact_due(counted, SPEC.name, [DAY]) == []  # type: ignore[arg-type]
    assert counted.ranges[layout.dedup_keys_compacted(SPEC.name, DAY)] == 0
    assert counted.ranges[layout.dedup_keys_index(SPEC.name, DAY)] == 1


def test_a_stale_torn_or_missing_index_still_finds_every_key(lake: LocalStorage) -> None:
    keys = compacted_date(lake, range(4))
    index = layout.dedup_keys_index(SPEC.name, DAY)
    stale = lake.read(index)
    keys += compacted_date(lake, range(4, 8))  # the compacted file absorbs hours 4-7 too
    lake.write(index, stale)  # an index a racing, older compaction wrote last
    newer = random_keys(50, seed=77, obj="obj1")  # hour 1 rewritten: obj1 reprocessed
    save(lake, hour_of(DAY, 1), newer, reprocessed=frozenset({"obj1"}))
    # none in the stale index: hour 6 and hour 1's new keys found in the files it does not cover
    missed = [keys[6].slice(9, 2), newer.slice(3, 1)]
    # in it: the compacted file read, hour 1's old keys no longer there, hour 3's found
    found = [keys[1].slice(0, 2), keys[3].slice(5, 1)]

    def hits(wanted: list[pa.Table]) -> list[dict]:
        probe = pa.concat_tables(
            [fresh_probe(60, seed=1005), *(t.select(["hi", "lo"]) for t in wanted)]
        )
        return sorted(KeyWindow(lake, SPEC.name, [DAY]).hits(probe).to_pylist(), key=str)

    def rows(tables: list[pa.Table]) -> list[dict]:
        return sorted(pa.concat_tables(tables).select(["hi", "lo"]).to_pylist(), key=str)

    for index_bytes in (stale, stale[: len(stale) // 2], b"garbage", None):
        if index_bytes is None:
            lake.delete(index)
        else:
            lake.write(index, index_bytes)
        assert hits(missed) == rows(missed)
        assert hits(found) == rows(found[1:])
    assert compact_due(lake, SPEC.name, [DAY]) == []  # hour 1 alone outside: not due


def test_the_compaction_index_is_the_compacted_files_hi_sorted(tmp_path: Any) -> None:
    """The index is made from the compacted file's own sorted `hi` column (no second sort):
    the same bytes as an index made from the date's keys from scratch."""
    lake = LocalStorage(tmp_path)
    keys = compacted_date(lake, range(4))
    compacted = pq.read_table(lake.path(layout.dedup_keys_compacted(SPEC.name, DAY)))
    hi = pa.concat_tables(k.select(["hi"]) for k in keys)["hi"]
    assert compacted["hi"].to_pylist() == sorted(hi.to_pylist())
    absorbed = json.loads(compacted.schema.metadata[b"lake.dedup.absorbed"])
    index = lake.read(layout.dedup_keys_index(SPEC.name, DAY))
    assert index == key_index.index_bytes(hi, absorbed)  # unsorted: index_bytes sorts them
    assert key_index.probe_index(
        io.BytesIO(index), len(index), hi.to_pylist()[:5]
    ).found  # readable
