"""Dedup's cheaper steps (issue 15, task dedupcost): a pass's keys checked against the
run's earlier passes by a semi join, no probe for a window without key files, key files
written from keys DuckDB already sorted. Same outcomes as before: rows kept and dropped,
files, order and footer."""

from __future__ import annotations

import base64
import random
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning import key_files
from lake.cleaning.dedup import create_new_keys, drop_duplicates, keep_keys, save_hour_keys
from lake.cleaning.key_files import GROUP_STARTS, ROW_GROUP_ROWS, KeyWindow, sorted_key_file
from lake.cleaning.tables import FIRSTS, ROW_SPAN
from lake.cleaning.typed import Typed
from lake.hive_types import Struct
from lake.storage import LocalStorage

STREAM = "robot_telemetry"
DAY, OTHER = date(2026, 11, 19), date(2026, 11, 20)
HOUR = datetime(2026, 11, 19, 8, tzinfo=UTC)


def typed(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> Typed:
    """A pass's typed records: (object, position, event date, hi, lo, reason)."""
    table = pa.table(
        {
            "_object": pa.array([r[0] for r in rows], pa.int64()),
            "_position": pa.array([r[1] for r in rows], pa.int64()),
            "_dt": pa.array([r[2] for r in rows], pa.date32()),
            "_key_hi": pa.array([r[3] for r in rows], pa.uint64()),
            "_key_lo": pa.array([r[4] for r in rows], pa.uint64()),
            "_reason": pa.array([r[5] for r in rows], pa.string()),
        }
    )
    con.register("typed", table)
    return Typed(table, [], Struct({}))


def firsts(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        f"SELECT hi, lo, _object, rid, dt, copies FROM {FIRSTS} ORDER BY rid"
    ).fetchall()


def test_a_pass_drops_copies_within_it_and_keys_kept_by_earlier_passes_or_files(
    lake: LocalStorage,
) -> None:
    con = duckdb.connect()
    create_new_keys(con)
    big = 2**64 - 1  # the halves are unsigned: the top of the range too
    # an earlier run's hour file holds (7, 7)
    window_file = pa.table(
        {
            "hi": pa.array([7, 9], pa.uint64()),
            "lo": pa.array([7, 1], pa.uint64()),
            "obj": ["old", "old"],
        }
    )
    lake.write(layout.dedup_keys_file(STREAM, DAY, HOUR), key_files.key_file_bytes(window_file))
    window = KeyWindow(lake, STREAM, [DAY, OTHER])

    first = typed(
        con, [(0, 0, DAY, 1, 1, None), (0, 1, DAY, big, 2, None), (1, 0, OTHER, 3, 3, None)]
    )
    assert drop_duplicates(con, first, window).dropped is None
    assert firsts(con) == [
        (1, 1, 0, 0, DAY, 1),
        (big, 2, 0, 1, DAY, 1),
        (3, 3, 1, ROW_SPAN, OTHER, 1),
    ]
    keep_keys(con, drop_duplicates(con, first, window), 0)

    second = typed(
        con,
        [
            (0, 5, DAY, 3, 3, None),  # kept by the first pass
            (0, 6, DAY, 4, 4, "cannot_cast"),  # quarantined: not a key
            (1, 2, OTHER, 4, 4, None),  # the first of a copy within the pass...
            (2, 0, DAY, 4, 4, None),  # ...and its copy, another date
            (2, 1, DAY, 7, 7, None),  # in the window's hour file
            (2, 2, DAY, 9, 2, None),  # hi in the file, lo not: kept
            (2, 3, DAY, big, 3, None),  # hi of a first-pass key, lo not: kept
        ],
    )
    deduped = drop_duplicates(con, second, window)
    assert sorted(deduped.dropped.to_pylist()) == [5, 2 * ROW_SPAN, 2 * ROW_SPAN + 1]
    assert firsts(con) == [
        (4, 4, 1, ROW_SPAN + 2, OTHER, 2),
        (9, 2, 2, 2 * ROW_SPAN + 2, DAY, 1),
        (big, 3, 2, 2 * ROW_SPAN + 3, DAY, 1),
    ]
    assert keep_keys(con, deduped, 10) == {OTHER, DAY}
    assert con.execute("SELECT hi, lo, o FROM new_keys ORDER BY o, hi").fetchall() == [
        (1, 1, 0),
        (big, 2, 0),
        (3, 3, 1),
        (4, 4, 11),
        (9, 2, 12),
        (big, 3, 12),
    ]


def test_a_window_without_key_files_finds_nothing_and_a_date_with_them_is_still_read(
    lake: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = pa.table({"hi": pa.array([5, 6], pa.uint64()), "lo": pa.array([1, 1], pa.uint64())})
    probed: list[date] = []
    real = key_files.day_keys

    def noting(lake, stream, day, *args):  # type: ignore[no-untyped-def]
        probed.append(day)
        return real(lake, stream, day, *args)

    monkeypatch.setattr(key_files, "day_keys", noting)
    window = KeyWindow(lake, STREAM, [DAY, OTHER])
    assert window.hits(keys).num_rows == 0
    # a probe index left without its compacted file says nothing: still no key file
    lake.write(layout.dedup_keys_index(STREAM, DAY), b"stale")
    assert window.hits(keys).num_rows == 0
    assert probed == []
    written = pa.table(
        {
            "hi": pa.array([6, 8], pa.uint64()),
            "lo": pa.array([1, 1], pa.uint64()),
            "obj": ["a", "a"],
        }
    )
    lake.write(layout.dedup_keys_file(STREAM, OTHER, HOUR), key_files.key_file_bytes(written))
    assert window.hits(keys).to_pylist() == [{"hi": 6, "lo": 1}]
    assert probed == [OTHER]  # only the date with files, listed once


def shuffled_keys(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    hi = [rng.getrandbits(64) for _ in range(n)]
    hi[10:20] = [hi[0]] * 10  # ties on hi, ordered by lo
    return pa.table(
        {
            "hi": pa.array(hi, pa.uint64()),
            "lo": pa.array([rng.getrandbits(64) for _ in range(n)], pa.uint64()),
            "obj": [f"obj-{i % 7}" for i in range(n)],
        }
    )


def test_keys_already_in_order_make_the_same_file_as_shuffled_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(key_files, "WRITE_ROWS", 2 * ROW_GROUP_ROWS)
    keys = shuffled_keys(5 * ROW_GROUP_ROWS + 3, seed=3)
    ordered = keys.sort_by([("hi", "ascending"), ("lo", "ascending")])
    content, hi = sorted_key_file(keys)
    assert sorted_key_file(ordered)[0] == content
    assert (
        sorted_key_file(pa.concat_tables([ordered.slice(0, 100), ordered.slice(100)]))[0] == content
    )
    # in order by hi but not by lo on a tie: sorted
    i = pc.index(ordered["hi"], keys["hi"][0]).as_py()
    assert ordered["hi"][i] == ordered["hi"][i + 1]
    parts = [
        ordered.slice(0, i),
        ordered.slice(i + 1, 1),
        ordered.slice(i, 1),
        ordered.slice(i + 2),
    ]
    swapped = pa.concat_tables(parts)
    assert sorted_key_file(swapped)[0] == content
    read = pq.ParquetFile(pa.BufferReader(content))
    assert read.read().select(["hi", "lo", "obj"]).equals(ordered)
    assert hi.equals(ordered["hi"].combine_chunks())
    starts = base64.b64decode(read.schema_arrow.metadata[GROUP_STARTS])
    assert [int.from_bytes(starts[i : i + 8], "little") for i in range(0, len(starts), 8)] == [
        ordered["hi"][g * ROW_GROUP_ROWS].as_py() for g in range(6)
    ]


def test_an_hour_file_saved_from_unordered_new_keys_is_sorted_with_its_names(
    lake: LocalStorage,
) -> None:
    keys = shuffled_keys(3 * ROW_GROUP_ROWS + 1, seed=4)
    names = pa.array([f"name-{i}" for i in range(7)] + ["other"], pa.string())
    con = duckdb.connect()
    create_new_keys(con)
    o = pa.array([int(n[-1]) for n in keys["obj"].to_pylist()], pa.int32())
    con.register("k", pa.table({"hi": keys["hi"], "lo": keys["lo"], "o": o}))
    # another date's keys between them: left out of this date's file
    con.execute("INSERT INTO new_keys SELECT DATE '2026-11-19', hi, lo, o FROM k")
    con.execute("INSERT INTO new_keys SELECT DATE '2026-11-20', hi + 1, lo, 7 FROM k LIMIT 5")
    written = save_hour_keys(con, lake, STREAM, HOUR, "SELECT * FROM new_keys", names, set())
    assert written == [
        layout.dedup_keys_file(STREAM, DAY, HOUR),
        layout.dedup_keys_file(STREAM, OTHER, HOUR),
    ]
    saved = pq.read_table(lake.path(written[0]))
    expected = keys.sort_by([("hi", "ascending"), ("lo", "ascending")])
    expected = expected.set_column(
        2, "obj", pa.array([f"name-{n[-1]}" for n in expected["obj"].to_pylist()])
    )
    assert saved.select(["hi", "lo", "obj"]).equals(expected)
    assert pq.read_table(lake.path(written[1]))["obj"].to_pylist() == ["other"] * 5
