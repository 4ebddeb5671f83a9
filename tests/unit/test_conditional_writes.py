"""Conditional writes and compare-and-swap on the local lake (S3's are in
tests/integration/test_s3_conditional_writes.py)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lake.storage import (
    ConcurrentUpdateError,
    LocalStorage,
    PreconditionFailed,
    compare_and_swap,
)


def test_create_only_refuses_an_existing_object(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    tag = s.write_if("a/k", b"one", None)
    with pytest.raises(PreconditionFailed):
        s.write_if("a/k", b"two", None)
    assert s.read_versioned("a/k") == (b"one", tag)


def test_replace_needs_the_version_that_was_read(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    assert s.read_versioned("k") is None
    first = s.write_if("k", b"v1", None)
    second = s.write_if("k", b"v2", first)
    with pytest.raises(PreconditionFailed):
        s.write_if("k", b"v3", first)  # stale: v2 was written since
    with pytest.raises(PreconditionFailed):
        s.write_if("gone", b"v", first)  # replace of an object that does not exist
    assert s.read("k") == b"v2"
    assert s.read_versioned("k") == (b"v2", second)
    assert [o.key for o in s.list()] == ["k"]  # no lock or temp file is listed


def _racing_appends(storage, key: str, writers: int, each: int) -> None:
    """`writers` threads each append `each` numbers to one JSON list by compare-and-swap."""
    barrier = threading.Barrier(writers)

    def writer(w: int) -> None:
        barrier.wait()
        for i in range(each):

            def append(current: bytes | None, value=w * 1000 + i) -> bytes:
                items = json.loads(current) if current else []
                time.sleep(0.001)  # widen the read-merge-write window
                return json.dumps([*items, value]).encode()

            compare_and_swap(storage, key, append, attempts=200)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_racing_writers_never_lose_an_update_locally(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    _racing_appends(s, "state/list.json", writers=4, each=15)
    items = json.loads(s.read("state/list.json"))
    assert sorted(items) == sorted(w * 1000 + i for w in range(4) for i in range(15))


def test_plain_writes_lose_updates_in_the_same_race(tmp_path: Path) -> None:
    """The race above is real: without the condition, read-merge-write loses appends."""
    s = LocalStorage(tmp_path)
    s.write("k", b"[]")
    barrier = threading.Barrier(4)

    def writer(w: int) -> None:
        barrier.wait()
        for i in range(15):
            items = json.loads(s.read("k"))
            time.sleep(0.001)
            s.write("k", json.dumps([*items, w * 1000 + i]).encode())

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(json.loads(s.read("k"))) < 60


def test_a_swap_that_keeps_losing_fails_loudly(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write_if("k", b"0", None)

    def change_and_meddle(current: bytes | None) -> bytes:
        s.write("k", str(int(current or b"0") + 1).encode())  # another writer, every time
        return b"mine"

    with pytest.raises(ConcurrentUpdateError):
        compare_and_swap(s, "k", change_and_meddle, attempts=3)
    assert s.read("k") == b"3"


def test_listing_gives_a_version_that_changes_on_rewrite(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write("k", b"same size")
    (first,) = s.list()
    time.sleep(0.01)
    s.write("k", b"SAME SIZE")
    (second,) = s.list()
    assert first.etag and second.etag and first.etag != second.etag
