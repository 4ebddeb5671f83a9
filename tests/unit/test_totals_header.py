"""A bounded listing's totals come from the hour document's header and the deltas, without
parsing the document's entries, and agree with the totals the entries give: after
compactions, with an object overwritten, a run killed before its delta, racing runs."""

from __future__ import annotations

import pytest

from lake import hour_totals as totals_module
from lake import layout
from lake.cleaning.hour import clean_hour
from lake.hour_totals import HourTotals, hour_totals
from lake.storage import LocalStorage
from tests.incremental_lake import HOUR, SPEC, TABLE, land, landed, run_all


@pytest.fixture(autouse=True)
def _small_compactions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")
    monkeypatch.setattr(totals_module, "COMPACT_AT", 3)


def clean(landing: LocalStorage, lake: LocalStorage, objects: list) -> None:
    clean_hour(SPEC, TABLE, landing, lake, HOUR, objects)


def bounded(landing: LocalStorage, *minutes: int) -> list:
    return [o for o in landed(landing) if any(f"-o{m}.gz" in o.key for m in minutes)]


def shown(t: HourTotals) -> tuple:
    return (
        t.objects,
        t.objects_pending,
        t.bytes_in,
        t.records_in,
        t.records_cleaned,
        t.records_quarantined,
        t.duplicates_dropped,
        t.files_count,
        sorted(t.column_types.items()),
    )


def both(lake, objects, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple, tuple]:
    """(from the header without parsing the entries, from the entries)."""
    with monkeypatch.context() as m:
        m.setattr(totals_module, "_parsed", lambda _: pytest.fail("entries parsed"))
        fast = hour_totals(lake, SPEC.name, HOUR, objects, complete=False)
    with monkeypatch.context() as m:
        m.setattr(totals_module, "_from_header", lambda *_: None)
        slow = hour_totals(lake, SPEC.name, HOUR, objects, complete=False)
    return shown(fast), shown(slow)


def fill(landing: LocalStorage, lake: LocalStorage, minutes: range) -> None:
    for minute in minutes:
        land(landing, minute, [f"r{minute}-{i}" for i in range(minute % 3 + 1)], broken=minute % 2)
        clean(landing, lake, bounded(landing, minute))


def test_header_totals_agree_with_the_entries_across_compactions(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    fill(landing, lake, range(1, 9))  # two compactions, deltas after them
    fast, slow = both(lake, bounded(landing, 7, 8), monkeypatch)
    assert fast == slow
    assert fast[:2] == (8, 0)
    # objects counted as recorded beyond the listing, the listed ones checked
    land(landing, 9, ["late"])
    fast, slow = both(lake, bounded(landing, 8, 9), monkeypatch)
    assert fast == slow
    assert fast[:2] == (8, 1)


def test_an_object_overwritten_after_a_compaction_is_pending(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    fill(landing, lake, range(1, 5))  # the fourth run compacts: every entry in the document
    land(landing, 2, ["new-1", "new-2", "new-3"])  # overwritten under its key
    listing = bounded(landing, 2, 4)
    slow = shown(hour_totals(lake, SPEC.name, HOUR, listing, complete=False))
    assert slow[:2] == (3, 1)
    # the header cannot tell the old entry's counts: the entries are read, same answer
    monkeypatch.setattr(totals_module, "_from_header", lambda *a: None)
    assert shown(hour_totals(lake, SPEC.name, HOUR, listing, complete=False)) == slow
    monkeypatch.undo()
    assert (
        totals_module._from_header(lake, SPEC.name, HOUR, sorted(listing, key=lambda o: o.key))
        is None
    )


def test_a_run_killed_before_its_delta_is_counted_from_its_manifest(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    fill(landing, lake, range(1, 3))  # a document and one delta: the found one is the second
    land(landing, 3, ["k1", "k2"])
    with monkeypatch.context() as m:
        m.setattr(totals_module, "_append", lambda *a: None)  # killed after its manifests
        clean(landing, lake, bounded(landing, 3))
    fast, slow = both(lake, bounded(landing, 2, 3), monkeypatch)
    assert fast == slow
    assert fast[:2] == (3, 0)


def test_racing_runs_are_each_counted_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    fill(landing, lake, range(1, 4))
    for minute in range(4, 10):
        land(landing, minute, [f"x{minute}"])
    runs = [lambda m=m: clean(landing, lake, bounded(landing, m, m + 1)) for m in range(4, 10, 2)]
    assert run_all(runs) == []
    fast, slow = both(lake, bounded(landing, *range(4, 10)), monkeypatch)
    assert fast == slow
    assert fast[:2] == (9, 0)


def test_a_bounded_listing_reads_the_documents_header_not_the_document(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its entries are most of its bytes (on S3 a GET of megabytes at 10,000 objects):
    only its first line is read, by ranges, however long that line is."""
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    fill(landing, lake, range(1, 9))
    doc = layout.hour_totals_doc(SPEC.name, HOUR)
    read: list[int] = []
    real_range = lake.read_range

    def ranged(key: str, start: int, length: int, etag: str | None = None) -> bytes:
        if key == doc:
            read.append(length)
        return real_range(key, start, length, etag)

    def not_whole(real):  # type: ignore[no-untyped-def]
        def read(key: str):  # type: ignore[no-untyped-def]
            assert key != doc, "the document read whole"
            return real(key)

        return read

    # the header is longer than that: read again, longer
    monkeypatch.setattr(totals_module, "HEADER_READ", 64, raising=False)
    with monkeypatch.context() as m:
        m.setattr(lake, "read_range", ranged)
        m.setattr(lake, "read_versioned", not_whole(lake.read_versioned))
        m.setattr(lake, "read", not_whole(lake.read))
        m.setattr(totals_module, "_parsed", lambda _: pytest.fail("entries parsed"))
        fast = hour_totals(lake, SPEC.name, HOUR, bounded(landing, 7, 8), complete=False)
    slow = hour_totals(lake, SPEC.name, HOUR, landed(landing))
    assert shown(fast) == shown(slow)
    assert len(read) >= 2 and max(read) < lake.path(doc).stat().st_size
