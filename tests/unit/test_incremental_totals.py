"""An hour's running totals come from one state document kept by the cleaning runs: exact
under re-runs, full refreshes, overwritten objects and concurrent runs, and read without
reading the hour's manifests."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import timedelta

import pytest

from lake import hour_totals as hour_totals_module
from lake import layout
from lake.cleaning.commit import RunCommit
from lake.cleaning.hour import clean_hour, clean_hours
from lake.firehose import hour_prefix, object_key
from lake.hour_totals import DeltaMemo, hour_totals, listing_mark
from lake.storage import LocalStorage
from tests.incremental_lake import HOUR, SPEC, TABLE, land, landed, run_all


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def clean(landing: LocalStorage, lake: LocalStorage, objects=None, full_refresh=False):
    objects = landed(landing) if objects is None else objects
    return clean_hour(SPEC, TABLE, landing, lake, HOUR, objects, full_refresh=full_refresh)


def counts(lake: LocalStorage, landing: LocalStorage) -> tuple[int, ...]:
    t = hour_totals(lake, SPEC.name, HOUR, landed(landing))
    return (
        t.objects,
        t.objects_pending,
        t.records_in,
        t.records_cleaned,
        t.records_quarantined,
        t.duplicates_dropped,
        len(t.files),
    )


class CountingReads(LocalStorage):
    """A LocalStorage that remembers which keys were read."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def read(self, key: str) -> bytes:
        self.reads.append(key)
        return super().read(key)


def test_totals_add_each_batch_and_read_no_manifest(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), CountingReads(tmp_path / "lake")
    land(landing, 1, ["a", "b", "c"], broken=1)
    clean(landing, lake)
    land(landing, 2, ["d", "a"])  # `a` again: a duplicate of the first object's
    land(landing, 3, ["e"])  # landed, not cleaned yet: pending
    clean(landing, lake, [o for o in landed(landing) if "o3" not in o.key])
    lake.reads.clear()
    # objects, pending, in, cleaned, quarantined, duplicates, files (2 cleaned, 1 quarantine)
    assert counts(lake, landing) == (2, 1, 6, 4, 1, 1, 3)
    assert not [k for k in lake.reads if k.startswith(layout.ledger_folder(SPEC.name))]
    assert lake.exists(layout.hour_totals_doc(SPEC.name, HOUR))


def test_a_rerun_and_a_full_refresh_leave_the_totals_as_they_were(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    land(landing, 1, ["a", "b"], broken=1)
    land(landing, 2, ["c"])
    clean(landing, lake)
    assert counts(lake, landing) == (2, 0, 4, 3, 1, 0, 3)
    clean(landing, lake)  # nothing new
    assert counts(lake, landing) == (2, 0, 4, 3, 1, 0, 3)
    clean(landing, lake, full_refresh=True)
    assert counts(lake, landing) == (2, 0, 4, 3, 1, 0, 3)


def test_an_overwritten_object_is_pending_until_recleaned_then_counts_its_new_version(
    tmp_path,
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    land(landing, 1, ["a", "b"])
    land(landing, 2, ["c"])
    clean(landing, lake)
    land(landing, 1, ["a", "b", "z", "y"], broken=1)  # same key, new content
    assert counts(lake, landing) == (1, 1, 1, 1, 0, 0, 1)
    clean(landing, lake)
    assert counts(lake, landing) == (2, 0, 6, 5, 1, 0, 3)


def test_two_concurrent_runs_count_each_object_once(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    for minute in range(1, 9):
        land(landing, minute, [f"r{minute}-{i}" for i in range(minute)])
    objects = landed(landing)
    # two runs over overlapping batches: objects 3..5 are in both, so both may clean them
    batches = [objects[:6], objects[2:]]
    barrier = threading.Barrier(2)

    def run(batch) -> None:
        barrier.wait()
        clean(landing, lake, batch)

    assert run_all([lambda b=b: run(b) for b in batches]) == []
    total = counts(lake, landing)
    assert total[:3] == (8, 0, 36)  # 1 + 2 + ... + 8 records, each object once
    assert total[3] + total[5] == 36  # a record the other run kept first is a duplicate


def test_an_hour_without_its_document_is_seeded_from_its_manifests(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    land(landing, 1, ["a", "b"], broken=1)
    land(landing, 2, ["c"])
    clean(landing, lake)
    lake.delete(layout.hour_totals_doc(SPEC.name, HOUR))  # an hour cleaned before it existed
    assert counts(lake, landing) == (2, 0, 4, 3, 1, 0, 3)
    assert lake.exists(layout.hour_totals_doc(SPEC.name, HOUR))


def test_a_seed_reads_back_no_manifest_the_run_hands_over(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), CountingReads(tmp_path / "lake")
    land(landing, 1, ["a", "b"], broken=1)
    clean(landing, lake)
    earlier = manifests_of(lake)
    lake.delete(layout.hour_totals_doc(SPEC.name, HOUR))  # an hour cleaned before it existed
    for key in deltas_of(lake):
        lake.delete(key)
    land(landing, 2, ["c"])
    lake.reads.clear()
    clean(landing, lake)  # its delta seeds the hour's document: from the earlier manifests
    assert counts(lake, landing) == (2, 0, 4, 3, 1, 0, 3)
    ledger_reads = [k for k in lake.reads if k.startswith(layout.ledger_folder(SPEC.name))]
    assert sorted(ledger_reads) == earlier  # read once each; the run's own manifest not


def test_a_manifest_the_totals_miss_is_found_and_added(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    land(landing, 1, ["a", "b"])
    clean(landing, lake)
    land(landing, 2, ["c", "d", "e"], broken=1)
    deltas = deltas_of(lake)
    clean(landing, lake)
    # as if the run was killed between its manifests and its delta of the totals
    for key in set(deltas_of(lake)) - set(deltas):
        lake.delete(key)
    assert counts(lake, landing) == (2, 0, 6, 5, 1, 0, 3)
    assert len(deltas_of(lake)) == len(deltas) + 1  # the repair, appended
    assert counts(lake, landing) == (2, 0, 6, 5, 1, 0, 3)


def deltas_of(lake: LocalStorage) -> list[str]:
    folder = layout.hour_totals_doc(SPEC.name, HOUR).removesuffix(".json") + "/"
    return [info.key for info in lake.list(folder)]


def manifests_of(lake: LocalStorage) -> list[str]:
    return [info.key for info in lake.list(layout.ledger_folder(SPEC.name))]


class CountingLists(CountingReads):
    """A LocalStorage that remembers which keys were read and which prefixes listed."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.listed: list[str] = []

    def list(self, prefix: str = "", start_after: str | None = None):
        self.listed.append(prefix)
        return super().list(prefix, start_after)


def test_a_runs_delta_memo_reads_each_delta_once_and_misses_no_other_runs_fold(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), CountingLists(tmp_path / "lake")
    land(landing, 1, ["a", "b"])
    clean(landing, lake)  # the hour's first run: its document
    land(landing, 2, ["c"])
    clean(landing, lake, [o for o in landed(landing) if "o2" in o.key])  # a delta
    # this run: its mark's read, its objects, its delta, then its totals, with one memo
    memo = DeltaMemo()
    lake.reads.clear()
    mark = listing_mark(lake, SPEC.name, HOUR, memo)
    assert mark is not None and "o2" in mark
    land(landing, 3, ["d", "e"])
    run_commit = RunCommit(None, SPEC, lake, deltas=memo)
    ours = [o for o in landed(landing) if "o3" in o.key]
    clean_hour(SPEC, TABLE, landing, lake, HOUR, ours, run_commit=run_commit)
    run_commit.commit()
    # another run lands, cleans and folds every delta (its own, ours, the earlier one)
    # into the document and deletes them, after our listing of the deltas
    monkeypatch.setattr(hour_totals_module, "COMPACT_AT", 1)
    land(landing, 4, ["f"])
    clean(landing, lake, [o for o in landed(landing) if "o4" in o.key])
    deltas = hour_totals_module._deltas_folder(SPEC.name, HOUR)
    assert not list(lake.list(deltas))
    lake.reads.clear()
    lake.listed.clear()
    totals = hour_totals(lake, SPEC.name, HOUR, landed(landing), complete=False, memo=memo)
    # every object once: the folded deltas are skipped by the document's header, not
    # counted again from the memo; the other run's delta is in the document's sums
    assert (totals.objects, totals.objects_pending, totals.records_in) == (4, 0, 6)
    assert deltas not in lake.listed  # the run's own listing, taken after its write
    assert not [k for k in lake.reads if k.startswith(deltas)]


class CountingWrites(LocalStorage):
    """A LocalStorage that remembers the keys written (plain or conditional) and deleted."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.written: list[str] = []
        self.deleted: list[str] = []

    def write(self, key: str, data: bytes) -> None:
        self.written.append(key)
        super().write(key, data)

    def write_if(self, key: str, data: bytes, expected: str | None) -> str:
        self.written.append(key)
        return super().write_if(key, data, expected)

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


def test_a_range_runs_new_hours_get_their_documents_and_no_delta(tmp_path) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), CountingWrites(tmp_path / "lake")
    hours = [HOUR + timedelta(hours=n) for n in range(3)]
    for n, hour in enumerate(hours):
        records = "".join(json.dumps({"event_id": f"{n}-{i}", "ts": f"{hour:%Y-%m-%dT%H}:05:00Z",
                                      "robot_id": "R"}) for i in range(n + 1))  # fmt: skip
        landing.write(object_key(SPEC.name, hour.replace(minute=5), object_id=f"h{n}"),
                      gzip.compress((records + '{"broken"' * (n == 2)).encode()))  # fmt: skip
    batches = {h: list(landing.list(hour_prefix(SPEC.name, h))) for h in hours}
    run_commit = RunCommit(None, SPEC, lake)
    clean_hours(SPEC, TABLE, landing, lake, batches, run_commit=run_commit)
    run_commit.commit()
    totals_folder = layout.hour_totals_doc(SPEC.name, HOUR).rsplit("/", 1)[0] + "/"
    written = [k for k in lake.written if k.startswith(totals_folder)]
    # each hour's document once; a delta written, listed, read back and deleted an hour before
    assert sorted(written) == [layout.hour_totals_doc(SPEC.name, h) for h in hours]
    assert not [k for k in lake.deleted if k.startswith(totals_folder)]
    got = [hour_totals(lake, SPEC.name, h, batches[h]) for h in hours]
    assert [(t.objects, t.records_in, t.records_cleaned, t.records_quarantined) for t in got] == [
        (1, 1, 1, 0),
        (1, 2, 2, 0),
        (1, 4, 3, 1),
    ]
    assert [t.files_count for t in got] == [1, 1, 2]


def test_an_hours_first_document_folds_a_delta_left_before_it_then_the_runs_entries(
    tmp_path,
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    land(landing, 1, ["a", "b"])
    clean(landing, lake)
    land(landing, 2, ["c"])
    clean(landing, lake, [o for o in landed(landing) if "o2" in o.key])  # a delta
    assert len(deltas_of(lake)) == 1
    # as if the document was never written (a run killed before its first fold)
    lake.delete(layout.hour_totals_doc(SPEC.name, HOUR))
    land(landing, 3, ["d", "e"], broken=1)
    clean(landing, lake, [o for o in landed(landing) if "o3" in o.key])
    assert not deltas_of(lake)  # folded into the new document, then deleted
    assert counts(lake, landing) == (3, 0, 6, 5, 1, 0, 4)
