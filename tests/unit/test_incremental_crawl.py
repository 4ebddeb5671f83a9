"""A crawl samples only the objects of its hour not crawled yet in their version; the
hour's stats and the table come out as a full re-crawl makes them."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

from lake.catalog_store import Catalog
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage
from lake.streams import load_streams

ROBOT = load_streams()["robot_telemetry"]
DB = "firehose_raw"
H8 = datetime(2026, 11, 21, 8, tzinfo=UTC)
VALUES = ["2026", "11", "21", "08"]
STATS = ("objectCount", "sizeKey", "recordCount")


class CountingOpens(LocalStorage):
    """A landing folder that remembers which keys were opened or read."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.touched: list[str] = []

    def open(self, key: str):
        self.touched.append(key)
        return super().open(key)

    def read_range(self, key: str, start: int, length: int, etag: str | None = None) -> bytes:
        self.touched.append(key)
        return super().read_range(key, start, length)


def put(landing: LocalStorage, minute: int, records: list[dict]) -> str:
    key = object_key(ROBOT.name, H8.replace(minute=minute), object_id=f"o{minute}")
    landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
    return key


def robot(i: int, **extra: object) -> dict:
    return {"event_id": f"e{i}", "ts": f"2026-11-21T08:{i:02d}:00Z", "robot_id": "R1", **extra}


def crawl(catalog: Catalog, landing: LocalStorage, full: bool = False):
    listed = list(landing.list(hour_prefix(ROBOT.name, H8)))
    return crawl_objects(ROBOT, catalog, landing, listed, full=full)


def stats(catalog: Catalog) -> tuple[list, list]:
    table = catalog.get_table(ROBOT.name)["Parameters"]
    partition = catalog.get_partition(ROBOT.name, VALUES)["Parameters"]
    return [table[k] for k in STATS], [partition[k] for k in STATS]


def columns(catalog: Catalog) -> dict[str, str]:
    table = catalog.get_table(ROBOT.name)
    return {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}


def test_a_later_crawl_samples_only_the_new_object_and_counts_the_whole_hour(tmp_path) -> None:
    landing = CountingOpens(tmp_path / "landing")
    first = put(landing, 1, [robot(1, gate="G1"), robot(2)])
    second = put(landing, 2, [robot(3), robot(4), robot(5)])
    incremental = Catalog(LocalStorage(tmp_path / "inc"), DB)
    crawl(incremental, landing)
    third = put(landing, 3, [robot(6, temp=1.5)])
    landing.touched.clear()
    result = crawl(incremental, landing)
    assert landing.touched and set(landing.touched) == {third}
    assert (result.hour.objects, result.hour.records_sampled) == (1, 1)
    assert columns(incremental)["gate"] == "string" and columns(incremental)["temp"] == "double"

    full = Catalog(LocalStorage(tmp_path / "full"), DB)
    crawl(full, landing)
    assert stats(incremental) == stats(full)
    sizes = sum(landing.path(k).stat().st_size for k in (first, second, third))
    assert stats(full)[1] == ["3", str(sizes), "6"]


def test_an_overwritten_object_is_sampled_again(tmp_path) -> None:
    landing = CountingOpens(tmp_path / "landing")
    key = put(landing, 1, [robot(1)])
    put(landing, 2, [robot(2)])
    catalog = Catalog(LocalStorage(tmp_path / "lake"), DB)
    crawl(catalog, landing)
    put(landing, 1, [robot(1, battery=97), robot(7)])  # same key, new version
    landing.touched.clear()
    crawl(catalog, landing)
    assert set(landing.touched) == {key}
    assert columns(catalog)["battery"] == "int"
    assert stats(catalog)[1][0] == "2" and stats(catalog)[1][2] == "3"


def test_nothing_new_samples_nothing_and_changes_no_stat(tmp_path) -> None:
    landing = CountingOpens(tmp_path / "landing")
    put(landing, 1, [robot(1), robot(2)])
    catalog = Catalog(LocalStorage(tmp_path / "lake"), DB)
    crawl(catalog, landing)
    before = stats(catalog)
    landing.touched.clear()
    result = crawl(catalog, landing)
    assert landing.touched == [] and result.hour.objects == 0
    assert stats(catalog) == before and not result.changed


def test_full_crawl_samples_every_object_again(tmp_path) -> None:
    landing = CountingOpens(tmp_path / "landing")
    keys = {put(landing, m, [robot(m)]) for m in (1, 2, 3)}
    catalog = Catalog(LocalStorage(tmp_path / "lake"), DB)
    crawl(catalog, landing)
    before = stats(catalog)
    landing.touched.clear()
    result = crawl(catalog, landing, full=True)
    assert set(landing.touched) == keys and result.hour.objects == 3
    assert stats(catalog) == before


def test_an_object_gone_from_the_landing_folder_drops_out_of_the_stats(tmp_path) -> None:
    landing = LocalStorage(tmp_path / "landing")
    gone = put(landing, 1, [robot(1), robot(2)])
    put(landing, 2, [robot(3)])
    catalog = Catalog(LocalStorage(tmp_path / "lake"), DB)
    crawl(catalog, landing)
    landing.delete(gone)
    crawl(catalog, landing)
    full = Catalog(LocalStorage(tmp_path / "full"), DB)
    crawl(full, landing)
    assert stats(catalog)[1] == stats(full)[1] and stats(full)[1][0] == "1"
