"""A pass's cleaned files are written while the next pass is staged, typed and
deduplicated (lake.cleaning.passes): the rows, duplicates, quarantine and failures come out
as when the passes ran one after another. Real DuckDB, real Parquet, local folders."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from lake.cleaning import passes
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from tests.unit.test_cleaning import (
    SPEC,
    dumps,
    lake_keys,
    manifest_of,
    out_name,
    put,
    read_rows,
    rec,
    run,
)

ONE_OBJECT_A_PASS = replace(DEFAULTS, clean_chunk_bytes=1)
WAIT_S = 10  # a bound on waiting for the other thread: the test fails instead of hanging


class HeldLake(LocalStorage):
    """A lake whose first cleaned file's write waits until `release` is set (or WAIT_S),
    noting whether it was set in time; `fail` makes that write raise instead."""

    def __init__(self, root: Path, fail: bool = False) -> None:
        super().__init__(root)
        self.release, self.fail = threading.Event(), fail
        self.released_in_time: bool | None = None

    def write(self, key: str, data: bytes) -> None:
        if key.startswith("cleaned/") and self.released_in_time is None:
            self.released_in_time = self.release.wait(WAIT_S)
            if self.fail:
                raise OSError("simulated: the lake refused a cleaned file")
        super().write(key, data)


def staging_noted(monkeypatch: pytest.MonkeyPatch, lake: HeldLake, fail_at: int = 0) -> None:
    """Pass 2's staging releases the lake's held write; with `fail_at`, that pass's staging
    raises after doing so."""
    calls = []
    real = passes.stage_objects

    def stage(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            lake.release.set()
        if len(calls) == fail_at:
            raise RuntimeError("simulated: staging failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(passes, "stage_objects", stage)


def test_the_next_pass_is_staged_while_a_pass_writes_with_the_same_outcome(
    landing: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = HeldLake(tmp_path / "lake")
    staging_noted(monkeypatch, lake)
    k1 = put(landing, 1, "p1", dumps(rec("k1")) + dumps(rec("k2")))
    # k2 again (a duplicate of pass 1's record, dropped here), and a malformed record
    k2 = put(landing, 2, "p2", dumps(rec("k2")) + '{"event_id":"bad","ts":' + dumps(rec("k3")))
    k3 = put(landing, 3, "p3", dumps(rec("k3")) + dumps(rec("k4")))

    report = run(landing, lake, settings=ONE_OBJECT_A_PASS)

    assert lake.released_in_time  # pass 2 was staged while pass 1's file was being written
    assert (report.records_in, report.records_cleaned) == (7, 4)
    assert (report.duplicates_dropped, report.records_quarantined) == (2, 1)
    day = f"cleaned/{SPEC.name}/dt=2026-11-21"
    assert [r["event_id"] for r in read_rows(lake, f"{day}/{out_name(k1)}")] == ["k1", "k2"]
    assert [r["event_id"] for r in read_rows(lake, f"{day}/{out_name(k2)}")] == ["k3"]
    assert [r["event_id"] for r in read_rows(lake, f"{day}/{out_name(k3)}")] == ["k4"]
    (quarantine,) = lake_keys(lake, "quarantine/")
    (bad,) = read_rows(lake, quarantine)
    assert bad["raw_text"].startswith('{"event_id":"bad"')
    assert report.event_dates == {"2026-11-21"}
    # an object's manifest lists its cleaned file, then its quarantine file
    files = manifest_of(landing, lake, k2)["files"]
    assert files == [f"{day}/{out_name(k2)}", quarantine]


def test_a_failed_write_raises_before_a_later_pass_writes_anything(
    landing: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = HeldLake(tmp_path / "lake", fail=True)
    staging_noted(monkeypatch, lake)
    put(landing, 1, "p1", dumps(rec("k1")))
    put(landing, 2, "p2", dumps(rec("k2")) + '{"event_id":"bad","ts":')  # quarantined if run
    put(landing, 3, "p3", dumps(rec("k3")))

    with pytest.raises(OSError, match="refused a cleaned file"):
        run(landing, lake, settings=ONE_OBJECT_A_PASS)

    assert lake.released_in_time
    assert lake_keys(lake, "cleaned/") == []
    assert lake_keys(lake, "quarantine/") == []
    assert lake_keys(lake, "_state/") == []  # no ledger: the objects are cleaned again


def test_a_failure_in_the_next_pass_raises_after_the_pass_before_is_written(
    landing: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = HeldLake(tmp_path / "lake")
    staging_noted(monkeypatch, lake, fail_at=2)
    k1 = put(landing, 1, "p1", dumps(rec("k1")) + dumps(rec("k2")))
    put(landing, 2, "p2", dumps(rec("k3")))

    with pytest.raises(RuntimeError, match="staging failed"):
        run(landing, lake, settings=ONE_OBJECT_A_PASS)

    # pass 1's file is whole when the failure comes out, as when passes ran one by one
    (cleaned,) = lake_keys(lake, "cleaned/")
    assert cleaned.endswith(out_name(k1))
    assert [r["event_id"] for r in read_rows(lake, cleaned)] == ["k1", "k2"]
    assert lake_keys(lake, "_state/") == []
