"""A partition's crawl record: a bounded crawl reads its header and appends its new
objects, without parsing the entries; the stats stay exact through overwritten objects,
hostile keys, records of the first format and crawls that lose a race."""

from __future__ import annotations

import json

from lake import crawl_record, layout
from lake.catalog_store import Catalog
from lake.crawl_record import of_entries, read_record, record_bytes, with_added, without
from lake.crawler import crawl_objects
from lake.storage import LocalStorage
from tests.incremental_lake import SPEC, land, landed

HOSTILE = ['a"b', "line\nbreak", "back\\slash", "é", "\udcff", "", "{}", '","x":[1']


def record_of(lake: LocalStorage, partition) -> crawl_record.Record:
    return read_record(lake, layout.crawl_record("db", SPEC.name, partition.values))


def test_appending_keeps_every_entry_and_the_sums_for_hostile_keys(tmp_path) -> None:
    lake = LocalStorage(tmp_path)
    first = {k + "1": ["e", 10, 2] for k in HOSTILE}
    added = {k + "2": ["f", 5, 1] for k in HOSTILE}
    lake.write("r.json", record_bytes(of_entries(first)))
    record = read_record(lake, "r.json")
    lake.write("r.json", record_bytes(with_added(record, added)))
    again = read_record(lake, "r.json")
    assert again.entries() == first | added
    assert again.sums == [2 * len(HOSTILE), 15 * len(HOSTILE), 3 * len(HOSTILE)]
    assert all(again.holds(k, *v[:2]) for k, v in (first | added).items())
    assert not again.holds('a"b1', "e", 11)
    # an entry replaced: its old counts leave the sums
    replaced = with_added(again, {'a"b1': ["g", 100, 7]})
    assert replaced.sums == [2 * len(HOSTILE), 15 * len(HOSTILE) + 90, 3 * len(HOSTILE) + 5]
    assert without(replaced, ['a"b1', "missing"]) == [
        2 * len(HOSTILE) - 1,
        15 * len(HOSTILE) - 10,
        3 * len(HOSTILE) - 2,
    ]


def test_an_object_overwritten_in_a_bounded_listing_is_counted_once_in_its_new_version(
    tmp_path,
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    catalog = Catalog(lake, "db")
    for minute in (1, 2):
        land(landing, minute, [f"c{minute}-{i}" for i in range(minute)])
    crawl_objects(SPEC, catalog, landing, landed(landing))
    key = land(landing, 2, [f"n-{i}" for i in range(5)])  # same key, 5 records now
    bounded = [o for o in landed(landing) if o.key == key]
    result = crawl_objects(SPEC, catalog, landing, bounded, complete=False)
    [partition] = result.hour.partitions.values()
    assert result.hour.objects == 1
    assert partition.stats["objectCount"] == 2
    assert partition.stats["recordCount"] == 1 + 5
    assert partition.stats["sizeKey"] == sum(o.size for o in landed(landing))
    record = record_of(lake, partition)
    assert record.sums == [2, sum(o.size for o in landed(landing)), 6]
    (info,) = bounded
    assert record.entries()[key][:2] == [info.etag, info.size]


def test_a_record_of_the_first_format_is_read_and_written_back_with_a_header(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    catalog = Catalog(lake, "db")
    land(landing, 1, ["a"])
    first = crawl_objects(SPEC, catalog, landing, landed(landing))
    [partition] = first.hour.partitions.values()
    record_key = layout.crawl_record("db", SPEC.name, partition.values)
    lake.write(record_key, json.dumps(record_of(lake, partition).entries()).encode())
    land(landing, 2, ["b", "c"])
    bounded = [o for o in landed(landing) if o.key.endswith("o2.gz")]
    result = crawl_objects(SPEC, catalog, landing, bounded, complete=False)
    assert result.hour.objects == 1  # the old record's object was not sampled again
    assert b"\n" in lake.read(record_key)
    assert record_of(lake, partition).sums[0] == 2


def test_a_whole_listing_drops_objects_gone_from_the_record(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    catalog = Catalog(lake, "db")
    keys = [land(landing, m, [f"x{m}"]) for m in (1, 2, 3)]
    crawl_objects(SPEC, catalog, landing, landed(landing))
    landing.delete(keys[0])
    result = crawl_objects(SPEC, catalog, landing, landed(landing))
    [partition] = result.hour.partitions.values()
    assert sorted(record_of(lake, partition).entries()) == sorted(keys[1:])
    assert record_of(lake, partition).sums[0] == partition.stats["objectCount"] == 2


def test_a_crawl_that_lost_the_record_race_has_its_objects_crawled_again(tmp_path) -> None:
    """Two bounded crawls read the same record and each writes it with its own object: the
    loser's object is missing from the record, so the next crawl listing it samples it
    again and the stats count both."""
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    catalog = Catalog(lake, "db")
    land(landing, 1, ["a"])
    crawl_objects(SPEC, catalog, landing, landed(landing))
    [partition] = crawl_objects(SPEC, catalog, landing, landed(landing)).hour.partitions.values()
    record_key = layout.crawl_record("db", SPEC.name, partition.values)
    before = lake.read(record_key)
    land(landing, 2, ["b"])
    crawl_objects(
        SPEC, catalog, landing, [o for o in landed(landing) if "o2" in o.key], complete=False
    )
    lake.write(record_key, before)  # the racing crawl (of o3) wrote last, from the old record
    land(landing, 3, ["c", "d"])
    racer = with_added(read_record(lake, record_key), {})
    assert not racer.may_hold_key(next(o.key for o in landed(landing) if "o2" in o.key))
    result = crawl_objects(
        SPEC, catalog, landing, [o for o in landed(landing) if "o1" not in o.key], complete=False
    )
    [partition] = result.hour.partitions.values()
    assert result.hour.objects == 2  # o2 again, and o3
    assert (partition.stats["objectCount"], partition.stats["recordCount"]) == (3, 4)
