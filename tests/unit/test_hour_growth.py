"""A micro-batch's state work grows with the batch, not with the hour: the totals are
appended to (and compacted now and then), the ledger and the hour are listed from the last
run's mark on, the crawl touches only the new objects, and what a bounded listing leaves
out (a late object named before the mark) is still cleaned by the next whole listing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from lake import crawl_record, layout
from lake import hour_totals as totals_module
from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.crawl_record import read_record
from lake.crawler import crawl_objects
from lake.hour_totals import hour_totals, listing_mark
from lake.landing_scan import hour_floor, hour_listing
from lake.ledger import read_ledger
from lake.storage import LocalStorage
from tests.incremental_lake import HOUR, SPEC, TABLE, land, landed


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


class Recording(LocalStorage):
    """A LocalStorage that remembers its writes (key, bytes) and listings (prefix, start)."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.writes: list[tuple[str, int]] = []
        self.listings: list[tuple[str, str | None]] = []

    def write(self, key: str, data: bytes) -> None:
        self.writes.append((key, len(data)))
        super().write(key, data)

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        self.writes.append((key, len(data)))
        return super().write_if(key, data, expected)

    def list(self, prefix: str = "", start_after: str | None = None):
        self.listings.append((prefix, start_after))
        return super().list(prefix, start_after)


def sensor_run(landing: LocalStorage, lake: LocalStorage):
    """What assets/cleaned.py does for a landing sensor's run of the hour."""
    mark = listing_mark(lake, SPEC.name, HOUR)
    objects = hour_listing(landing, SPEC.name, HOUR, mark)
    report = clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)
    return report, hour_totals(lake, SPEC.name, HOUR, objects, complete=mark is None), mark


def ledger_sums(lake: LocalStorage) -> tuple[int, ...]:
    """Objects and record counts summed straight from the manifests (not the totals)."""
    manifests = [json.loads(lake.read(i.key)) for i in lake.list(layout.ledger_folder(SPEC.name))]
    fields = ("records_in", "records_cleaned", "records_quarantined", "duplicates_dropped")
    return (len(manifests), *(sum(m[f] for m in manifests) for f in fields))


def as_sums(t) -> tuple[int, ...]:
    return (t.objects, t.records_in, t.records_cleaned, t.records_quarantined, t.duplicates_dropped)


def deltas(lake: LocalStorage) -> list[str]:
    folder = layout.hour_totals_doc(SPEC.name, HOUR).removesuffix(".json") + "/"
    return [i.key for i in lake.list(folder)]


def test_totals_after_three_runs_and_a_killed_one_equal_the_ledger(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    for minute, ids in ((1, ["a", "b"]), (2, ["c", "a"]), (3, ["d"])):
        land(landing, minute, ids, broken=minute % 2)
        sensor_run(landing, lake)
    land(landing, 4, ["e", "f", "g"], broken=1)
    before = set(deltas(lake))
    sensor_run(landing, lake)
    for key in set(deltas(lake)) - before:  # killed between its manifests and its delta
        lake.delete(key)
    t = hour_totals(lake, SPEC.name, HOUR, landed(landing))
    # 4 objects; 2+1 + 2 + 1+1 + 3+1 records in; 3 broken tails; `a` again is a duplicate
    assert ledger_sums(lake) == (4, 11, 7, 3, 1)
    assert as_sums(t) == ledger_sums(lake)
    assert t.objects_pending == 0


def test_a_batch_appends_a_small_delta_and_the_document_is_rewritten_only_when_compacted(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(totals_module, "COMPACT_AT", 4)
    landing, lake = LocalStorage(tmp_path / "landing"), Recording(tmp_path / "lake")
    doc = layout.hour_totals_doc(SPEC.name, HOUR)
    rewrites, delta_sizes = [], []
    for minute in range(1, 12):
        land(landing, minute, [f"r{minute}-{i}" for i in range(3)])
        lake.writes.clear()
        sensor_run(landing, lake)
        rewrites.append(sum(1 for k, _ in lake.writes if k == doc))
        delta_sizes += [n for k, n in lake.writes if k.startswith(doc.removesuffix(".json") + "/")]
    # the first run creates the document (with no delta), then every 4th delta folds into it
    assert rewrites == [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    assert len(delta_sizes) == 10 and max(delta_sizes) < 2 * min(delta_sizes)  # one object each
    assert len(deltas(lake)) == 2
    assert as_sums(hour_totals(lake, SPEC.name, HOUR, landed(landing))) == ledger_sums(lake)


def test_a_sensor_run_lists_the_hour_and_its_ledger_from_the_mark_on(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), Recording(tmp_path / "lake")
    for minute in (1, 10, 20, 30, 40):
        land(landing, minute, [f"x{minute}"])
        sensor_run(landing, lake)
    new = land(landing, 41, ["y"])
    lake.listings.clear()
    report, totals, mark = sensor_run(landing, lake)
    assert mark is not None and mark.endswith("-o40.gz")
    # objects from 2 minutes before the mark: the previous batch's and the new one
    listed = hour_listing(landing, SPEC.name, HOUR, mark)
    assert [o.key.rsplit("-", 1)[-1] for o in listed] == ["o40.gz", "o41.gz"]
    assert (report.objects, report.objects_skipped) == (1, 1)
    ledger_listings = [
        s for p, s in lake.listings if p == layout.ledger_hour_prefix(SPEC.name, HOUR)
    ]
    assert len(ledger_listings) == 1 and ledger_listings[0] is not None  # not the whole hour
    assert "robot_telemetry-1-2026-11-21-08-40-00-o40" in ledger_listings[0]
    assert (totals.objects, totals.objects_pending, totals.records_in) == (6, 0, 6)
    assert new in {o.key for o in listed}


def test_a_bounded_ledger_answers_as_a_whole_one_even_out_of_order(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    for minute in (1, 2, 3, 4):
        land(landing, minute, [f"z{minute}"])
    objects = landed(landing)
    clean_hour(SPEC, TABLE, landing, lake, HOUR, objects[1:3])
    whole = read_ledger(lake, SPEC.name, HOUR)
    expected = [whole.is_done(o) for o in objects]
    assert expected == [False, True, True, False]
    bounded = read_ledger(lake, SPEC.name, HOUR)
    # asked from the third object on first, then about the first two (looked up by name)
    answers = [bounded.is_done(o) for o in objects[2:]] + [bounded.is_done(o) for o in objects[:2]]
    assert answers == expected[2:] + expected[:2]
    assert [bounded.earlier_manifests(o) for o in objects] == [
        whole.earlier_manifests(o) for o in objects
    ]


def test_a_late_object_named_before_the_mark_is_cleaned_by_the_next_whole_listing(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(totals_module, "COMPACT_AT", 3)
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    for minute in (10, 20):
        land(landing, minute, [f"m{minute}"])
        sensor_run(landing, lake)
    late = land(landing, 5, ["late-1", "late-2"])  # lands now, named 15 minutes back
    runs = []
    for minute in (30, 40, 50):
        land(landing, minute, [f"m{minute}"])
        report, totals, mark = sensor_run(landing, lake)
        runs.append((mark is None, report.objects, totals.objects_pending))
    # bounded runs do not see it; the run after the compaction lists the hour whole and
    # cleans it with its own new object
    assert runs == [(False, 1, 0), (False, 1, 0), (True, 2, 0)]
    manifests = [json.loads(lake.read(i.key)) for i in lake.list(layout.ledger_folder(SPEC.name))]
    assert late in {m["source_key"] for m in manifests}
    t = hour_totals(lake, SPEC.name, HOUR, landed(landing))
    assert (t.objects, t.objects_pending, t.records_in) == (6, 0, 7)


def test_the_floor_trails_the_mark_by_the_lookback_within_the_hour() -> None:
    mark = f"{SPEC.name}/2026/11/21/08/{SPEC.name}-1-2026-11-21-08-30-15-abc.gz"
    floor = hour_floor(HOUR, mark, timedelta(minutes=2))
    assert floor == f"{SPEC.name}/2026/11/21/08/{SPEC.name}-1-2026-11-21-08-28-15"
    # a mark early in the hour: the floor stays in the hour's folder, below its keys
    early = mark.replace("08-30-15", "08-01-00")
    assert hour_floor(HOUR, early, timedelta(minutes=2)) == (
        f"{SPEC.name}/2026/11/21/08/{SPEC.name}-1-2026-11-21-07-59-00"
    )
    assert hour_floor(HOUR, f"{SPEC.name}/2026/11/21/08/hand-named.gz", timedelta(0)) is None
    assert hour_floor(HOUR, None, timedelta(0)) is None


def test_a_bounded_crawl_samples_only_new_objects_and_keeps_the_hours_stats(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    catalog = Catalog(lake, "db")
    for minute in (1, 2, 3):
        land(landing, minute, [f"c{minute}-{i}" for i in range(minute)])
    crawl_objects(SPEC, catalog, landing, landed(landing))
    land(landing, 4, ["c4-0", "c4-1", "c4-2", "c4-3"])
    bounded = [o for o in landed(landing) if o.key.endswith(("o3.gz", "o4.gz"))]
    # the record's header gives the recorded objects' versions and sums: no entry parsed
    monkeypatch.setattr(crawl_record.Record, "entries", lambda _: pytest.fail("entries parsed"))
    result = crawl_objects(SPEC, catalog, landing, bounded, complete=False)
    monkeypatch.undo()
    [partition] = result.hour.partitions.values()
    everything = landed(landing)
    assert result.hour.objects == 1  # only the new object sampled
    assert partition.stats["objectCount"] == 4
    assert partition.stats["sizeKey"] == sum(o.size for o in everything)
    assert partition.stats["recordCount"] == 1 + 2 + 3 + 4
    record = read_record(lake, layout.crawl_record("db", SPEC.name, partition.values))
    assert sorted(record.entries()) == sorted(o.key for o in everything)
    with pytest.raises(ValueError):
        crawl_objects(SPEC, catalog, landing, bounded, full=True, complete=False)
