"""Finding new landing objects with a cursor, on a real LocalStorage folder."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lake.firehose import object_key
from lake.landing_scan import ScanCursor, ScanResult, key_digest, scan_new_objects
from lake.settings import DEFAULTS
from lake.storage import LocalStorage

STREAM = "robot_telemetry"
T0 = datetime(2026, 11, 21, 7, 50, tzinfo=UTC)


@pytest.fixture
def landing(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "landing")


def put(landing: LocalStorage, at: datetime, oid: str, stream: str = STREAM) -> str:
    key = object_key(stream, at, object_id=oid)
    landing.write(key, b"{}")
    return key


def keys(result: ScanResult) -> list[str]:
    return [info.key for info, _ in result.new]


def rescan(landing: LocalStorage, result: ScanResult, **kw) -> ScanResult:
    # the cursor goes through its JSON form, as in a Dagster sensor
    return scan_new_objects(landing, STREAM, ScanCursor.from_json(result.cursor.to_json()), **kw)


def test_first_scan_finds_everything_grouped_by_hour(landing: LocalStorage) -> None:
    times = [T0 + timedelta(minutes=m) for m in (0, 5, 9, 10, 30, 75, 130)]
    written = [put(landing, t, f"o{i}") for i, t in enumerate(times)]
    put(landing, T0, "other", stream="clickstream")  # another stream: never reported

    result = scan_new_objects(landing, STREAM, ScanCursor())
    assert sorted(keys(result)) == sorted(written)
    assert result.unparsable == []
    assert result.truncated is False
    assert result.listed == len(written)

    expected: dict[datetime, list[str]] = {}
    for t, k in zip(times, written, strict=True):
        expected.setdefault(t.replace(minute=0), []).append(k)
    by_hour = result.by_hour()
    assert list(by_hour) == sorted(expected)
    assert {h: sorted(o.key for o in infos) for h, infos in by_hour.items()} == {
        h: sorted(ks) for h, ks in expected.items()
    }
    assert list(by_hour) == [
        datetime(2026, 11, 21, 7, tzinfo=UTC),
        datetime(2026, 11, 21, 8, tzinfo=UTC),
        datetime(2026, 11, 21, 9, tzinfo=UTC),
        datetime(2026, 11, 21, 10, tzinfo=UTC),
    ]


def test_empty_landing(landing: LocalStorage) -> None:
    result = scan_new_objects(landing, STREAM, ScanCursor())
    assert result.new == [] and result.unparsable == [] and result.listed == 0
    assert rescan(landing, result).new == []


def test_second_scan_finds_nothing_then_a_new_object(landing: LocalStorage) -> None:
    for i in range(5):
        put(landing, T0 + timedelta(minutes=i), f"o{i}")
    first = scan_new_objects(landing, STREAM, ScanCursor())
    assert len(first.new) == 5

    second = rescan(landing, first)
    assert second.new == []
    assert second.unparsable == []

    new_key = put(landing, T0 + timedelta(minutes=6), "fresh")
    third = rescan(landing, second)
    assert keys(third) == [new_key]
    assert rescan(landing, third).new == []


def test_late_object_within_lookback_is_found_exactly_once(landing: LocalStorage) -> None:
    for i in range(10):
        put(landing, T0 + timedelta(minutes=i), f"o{i}")
    newest = T0 + timedelta(minutes=9)
    first = scan_new_objects(landing, STREAM, ScanCursor(), lookback=timedelta(minutes=2))
    assert len(first.new) == 10

    # lands after the scan, but Firehose named it 30 s before the newest key seen
    late = put(landing, newest - timedelta(seconds=30), "late")
    assert late < first.cursor.last_key  # it sorts before the cursor
    second = rescan(landing, first, lookback=timedelta(minutes=2))
    assert keys(second) == [late]
    third = rescan(landing, second, lookback=timedelta(minutes=2))
    assert third.new == []
    # a newer object after that still comes through, once
    newer = put(landing, newest + timedelta(minutes=1), "newer")
    fourth = rescan(landing, third, lookback=timedelta(minutes=2))
    assert keys(fourth) == [newer]
    assert rescan(landing, fourth, lookback=timedelta(minutes=2)).new == []


def test_late_object_across_an_hour_boundary(landing: LocalStorage) -> None:
    newest = datetime(2026, 11, 21, 9, 0, 30, tzinfo=UTC)
    put(landing, newest - timedelta(minutes=5), "before")
    put(landing, newest, "newest")
    first = scan_new_objects(landing, STREAM, ScanCursor())
    assert len(first.new) == 2
    late = put(landing, newest - timedelta(seconds=50), "late")  # 08:59:40, previous folder
    second = rescan(landing, first)
    assert keys(second) == [late]
    assert rescan(landing, second).new == []


def test_tick_after_many_old_objects_lists_only_the_recent_window(landing: LocalStorage) -> None:
    total = 500
    for i in range(total):
        put(landing, T0 + timedelta(minutes=i), f"{i:04d}")
    first = scan_new_objects(landing, STREAM, ScanCursor())
    assert len(first.new) == total
    assert first.listed == total

    idle = rescan(landing, first)
    assert idle.new == []
    assert idle.listed <= 5  # the lookback window (2 min of 1-per-minute objects), not 500

    new_key = put(landing, T0 + timedelta(minutes=total), "new")
    tick = rescan(landing, idle)
    assert keys(tick) == [new_key]
    assert tick.listed <= 5
    assert len(tick.cursor.recent) <= 5  # the cursor stays small too


def test_keys_outside_the_layout_are_unparsable(landing: LocalStorage) -> None:
    good = put(landing, T0, "good")
    stray = [
        f"{STREAM}/readme.txt",
        f"{STREAM}/2026/11/21/loose-file.gz",
        f"{STREAM}/manifests/2026/11/21/07/x.json",
    ]
    for k in stray:
        landing.write(k, b"x")
    result = scan_new_objects(landing, STREAM, ScanCursor())
    assert keys(result) == [good]
    assert sorted(result.unparsable) == sorted(stray)
    # Reported once: the next tick stays quiet about them (the sensor would warn every 5 s).
    assert rescan(landing, result).unparsable == []
    landing.write(f"{STREAM}/notes.md", b"x")
    assert rescan(landing, result).unparsable == [f"{STREAM}/notes.md"]


def test_stray_key_sorting_last_does_not_stall_the_scan(landing: LocalStorage) -> None:
    put(landing, T0, "first")
    landing.write(f"{STREAM}/readme.txt", b"x")  # 'r' sorts after every year folder
    first = scan_new_objects(landing, STREAM, ScanCursor())
    assert first.unparsable == [f"{STREAM}/readme.txt"]
    later = put(landing, T0 + timedelta(minutes=1), "later")
    second = rescan(landing, first)
    assert keys(second) == [later]
    much_later = put(landing, T0 + timedelta(hours=3), "much-later")
    assert keys(rescan(landing, second)) == [much_later]


def test_non_firehose_name_in_an_hour_folder(landing: LocalStorage) -> None:
    # in the layout's folders (it has an arrival hour) but not Firehose's name: it sorts
    # after the Firehose names of its folder
    put(landing, T0, "a")
    manual = f"{STREAM}/2026/11/21/07/zz-manual-upload.json"
    landing.write(manual, b"{}")
    first = scan_new_objects(landing, STREAM, ScanCursor())
    assert sorted(keys(first)) == sorted([manual, object_key(STREAM, T0, object_id="a")])
    later = put(landing, T0 + timedelta(minutes=1), "b")  # same folder, sorts before manual
    second = rescan(landing, first)
    assert keys(second) == [later]
    assert rescan(landing, second).new == []


def test_max_new_truncates_and_the_next_call_continues(landing: LocalStorage) -> None:
    written = sorted(put(landing, T0 + timedelta(seconds=20 * i), f"{i:03d}") for i in range(23))
    seen: list[str] = []
    result = scan_new_objects(landing, STREAM, ScanCursor(), max_new=5)
    calls = 1
    while True:
        assert len(result.new) <= 5
        seen += keys(result)
        if not result.truncated:
            break
        result = rescan(landing, result, max_new=5)
        calls += 1
        assert calls < 20
    assert calls == 5  # 5+5+5+5+3
    assert sorted(seen) == written
    assert len(seen) == len(set(seen))  # nothing repeated
    assert rescan(landing, result, max_new=5).new == []


def test_cursor_json_round_trip() -> None:
    cursor = ScanCursor(
        "a/b", "a/a", {key_digest("x"), key_digest("y")}, {key_digest("z")}, {"h": "k"}, 3
    )
    assert ScanCursor.from_json(cursor.to_json()) == cursor
    assert ScanCursor.from_json(None) == ScanCursor()
    assert ScanCursor.from_json("") == ScanCursor()


def test_cursor_of_the_earlier_layout_starts_from_its_newest_key(landing: LocalStorage) -> None:
    old = put(landing, T0, "old")
    new = put(landing, T0 + timedelta(minutes=10), "new")
    legacy = json.dumps({"last_key": old, "recent": [old], "strays": [], "hour_marks": {}})
    result = scan_new_objects(landing, STREAM, ScanCursor.from_json(legacy))
    assert new in keys(result)


CURSOR_BOUND = 64 * 1024  # bytes of cursor JSON, whatever the burst


def test_a_burst_larger_than_the_listing_cap_is_requested_once_and_the_scan_moves_on(
    landing: LocalStorage,
) -> None:
    """25,000 objects within the 2-minute lookback (more than the 20,000 keys a scan may
    read): every tick takes new objects until all are taken exactly once, the cursor stays
    small, and an object landing 10 minutes later is found."""
    burst = 25_000
    written = {put(landing, T0 + timedelta(milliseconds=4 * i), f"{i:05d}") for i in range(burst)}
    assert len(written) == burst
    seen: list[str] = []
    cursor, ticks = ScanCursor(), 0
    while True:
        result = scan_new_objects(landing, STREAM, cursor, max_new=2000)
        ticks += 1
        assert ticks <= burst // 2000 + 3, "the scan stopped making progress"
        assert result.new or not result.truncated  # a truncated tick always takes something
        seen += keys(result)
        text = result.cursor.to_json()
        assert len(text) < CURSOR_BOUND
        cursor = ScanCursor.from_json(text)
        if not result.new:
            break
    assert len(seen) == len(set(seen)) == burst
    assert set(seen) == written
    assert len(cursor.recent) <= DEFAULTS.landing_recent_keys

    later = put(landing, T0 + timedelta(minutes=10), "later")
    tick = scan_new_objects(landing, STREAM, cursor, max_new=2000)
    assert keys(tick) == [later]
    assert (
        tick.listed <= DEFAULTS.landing_recent_keys + 2
    )  # the remembered window and the new key, not 25,000
    assert scan_new_objects(landing, STREAM, tick.cursor, max_new=2000).new == []


def test_a_key_below_the_raised_floor_is_left_to_reconciliation(landing: LocalStorage) -> None:
    for i in range(50):
        put(landing, T0 + timedelta(seconds=i), f"{i:03d}")
    first = scan_new_objects(landing, STREAM, ScanCursor(), max_recent=10)
    assert len(first.new) == 50 and len(first.cursor.recent) == 10
    # named among the oldest of the window, below the floor the cap raised: not rescanned
    below = put(landing, T0 + timedelta(seconds=5), "005-late")
    assert first.cursor.floor is not None and below < first.cursor.floor
    again = scan_new_objects(landing, STREAM, first.cursor, max_recent=10)
    assert below not in keys(again)
