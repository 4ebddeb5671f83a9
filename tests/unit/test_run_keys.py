"""A micro-batch's dedup keys cost O(run) (issue 15, task "flat10k"): a later run of an
hour writes its keys to a run file of its own and leaves the hour file alone; the run
files are folded into the hour file every FOLD_AT runs. Dedup still finds a duplicate in
any earlier run's keys, and a re-cleaned object's earlier keys no longer count, whether
they are in the hour file, a run file, or a compacted file."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning import run_keys
from lake.cleaning.key_files import KeyWindow, compact_due
from lake.cleaning.run_keys import FOLD_AT
from lake.firehose import hour_prefix
from lake.ledger import output_name
from lake.storage import LocalStorage, open_storage
from tests.unit.test_dedup_probe import DAY, SPEC, clean, hour_of, land, random_keys, save

TS = "2026-11-19T12:00:00Z"
HOUR = hour_of(DAY, 9)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def run_file_keys(lake: LocalStorage, hour=HOUR) -> list[str]:
    return [i.key for i in lake.list(layout.dedup_run_keys_folder(SPEC.name, DAY, hour))]


def hits(lake: LocalStorage, keys: pa.Table) -> list[int]:
    return sorted(
        KeyWindow(lake, SPEC.name, [DAY]).hits(keys.select(["hi", "lo"]))["hi"].to_pylist()
    )


def test_a_later_run_of_an_hour_leaves_its_hour_file_alone_and_its_keys_still_count(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    hour_file = lake.path(layout.dedup_keys_file(SPEC.name, DAY, HOUR))
    land(landing, HOUR, [f"a-{i}" for i in range(20)], TS, name="a")
    assert clean(landing, lake, HOUR).records_cleaned == 20
    first = hour_file.read_bytes()
    land(landing, HOUR, [f"b-{i}" for i in range(20)] + ["a-0"], TS, name="b")
    report = clean(landing, lake, HOUR)
    assert (report.records_cleaned, report.duplicates_dropped) == (20, 1)
    assert hour_file.read_bytes() == first  # not read-merged-written again
    (run_file,) = run_file_keys(lake)
    table = pq.read_table(lake.path(run_file))
    assert table.num_rows == 20
    (b,) = [o for o in landing.list(hour_prefix(SPEC.name, HOUR)) if o.key.endswith("-b.gz")]
    assert set(table["obj"].to_pylist()) == {output_name(HOUR, b.key)}
    # both runs' keys drop their duplicates in a later hour
    later = HOUR + timedelta(hours=3)
    land(landing, later, ["a-3", "b-4", "c-1"], TS, name="c")
    assert clean(landing, lake, later).duplicates_dropped == 2


def test_an_overwritten_objects_earlier_keys_no_longer_count_wherever_they_are(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    """b's first keys are in a run file, then in the hour file once folded, then in the
    compacted file: each time b is overwritten and cleaned again, its old ids are new
    records for a later object, its new ids duplicates."""
    land(landing, HOUR, ["a-0"], TS, name="a")
    clean(landing, lake, HOUR)  # the hour file
    for n in range(FOLD_AT + 1):
        land(landing, HOUR, [f"b{n}-{i}" for i in range(5)], TS, name="b")  # b overwritten
        assert clean(landing, lake, HOUR).records_cleaned == 5
        probe_hour = HOUR + timedelta(hours=10 + n)
        ids = [f"b{n}-0", f"b{n}-1"] + ([f"b{n - 1}-0", f"b{n - 1}-1"] if n else [])
        land(landing, probe_hour, ids, TS, name=f"p{n}")
        report = clean(landing, lake, probe_hour)
        assert (report.duplicates_dropped, report.records_cleaned) == (2, 2 if n else 0), n
    assert len(run_file_keys(lake)) < FOLD_AT  # folded on the way
    hours = [hour_of(DAY, h) for h in range(20, 24)]  # enough hour files to compact the date
    for h in hours:
        land(landing, h, [f"z{h.hour}"], TS, name="z")
        clean(landing, lake, h)
    assert lake.exists(layout.dedup_keys_compacted(SPEC.name, DAY))
    land(landing, HOUR, ["b-last"], TS, name="b")
    clean(landing, lake, HOUR)
    last = hour_of(DAY + timedelta(days=1), 1)
    land(landing, last, [f"b{FOLD_AT}-0", "b-last", "a-0"], TS, name="q")
    report = clean(landing, lake, last)
    assert (report.duplicates_dropped, report.records_cleaned) == (2, 1)


def test_run_files_fold_into_the_hour_file_every_fold_at_runs(lake: LocalStorage) -> None:
    keys = [random_keys(50, seed=n, obj=f"o{n}") for n in range(FOLD_AT + 1)]
    save(lake, HOUR, keys[0])
    for n in range(1, FOLD_AT):
        save(lake, HOUR, keys[n])
    assert len(run_file_keys(lake)) == FOLD_AT - 1
    save(lake, HOUR, keys[FOLD_AT], reprocessed=frozenset({"o1"}))  # o1 re-cleaned: no keys
    assert run_file_keys(lake) == []
    hour_file = pq.read_table(lake.path(layout.dedup_keys_file(SPEC.name, DAY, HOUR)))
    assert sorted(set(hour_file["obj"].to_pylist())) == sorted(
        f"o{n}" for n in range(FOLD_AT + 1) if n != 1
    )
    assert hour_file.num_rows == 50 * FOLD_AT
    everything = pa.concat_tables(keys)
    expected = sorted(pa.concat_tables([k for n, k in enumerate(keys) if n != 1])["hi"].to_pylist())
    assert hits(lake, everything) == expected


def test_a_run_file_found_beside_the_hour_file_that_folded_it_counts_once(
    lake: LocalStorage, tmp_path
) -> None:
    """A reader listing between a fold's hour file write and its deletes, or a fold
    racing another, applies a run file twice: the same rows as once."""
    save(lake, HOUR, random_keys(30, seed=1, obj="a"))
    save(lake, HOUR, random_keys(30, seed=2, obj="b"))
    b_again = random_keys(10, seed=3, obj="b")
    save(lake, HOUR, b_again)  # b re-cleaned: its first keys are out
    kept = tmp_path / "kept"
    shutil.copytree(lake.path(layout.dedup_run_keys_folder(SPEC.name, DAY, HOUR).rstrip("/")), kept)
    probe = pa.concat_tables([random_keys(30, seed=s, obj="x") for s in (1, 2, 3)])
    before = hits(lake, probe)
    assert run_keys.fold(lake, SPEC.name, DAY, HOUR)
    assert run_file_keys(lake) == []
    assert hits(lake, probe) == before
    shutil.copytree(
        kept,
        lake.path(layout.dedup_run_keys_folder(SPEC.name, DAY, HOUR).rstrip("/")),
        dirs_exist_ok=True,
    )
    assert hits(lake, probe) == before  # read again beside the folded hour file
    assert run_keys.fold(lake, SPEC.name, DAY, HOUR)  # folded again: the same rows
    hour_file = pq.read_table(lake.path(layout.dedup_keys_file(SPEC.name, DAY, HOUR)))
    assert hour_file.num_rows == 40
    assert hits(lake, probe) == before
    expected = random_keys(30, seed=1)["hi"].to_pylist() + b_again["hi"].to_pylist()
    assert before == sorted(expected)


def test_a_run_file_gone_while_a_date_is_read_makes_it_read_again(
    lake: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lake.cleaning import key_files

    save(lake, HOUR, random_keys(30, seed=1, obj="a"))
    second = random_keys(30, seed=2, obj="b")
    save(lake, HOUR, second)
    real, folded = key_files._read, []

    def read_after_a_fold(storage, info, *args):  # type: ignore[no-untyped-def]
        if "/" in info.key.rsplit("dt=", 1)[1].split("/", 1)[1] and not folded:
            folded.append(run_keys.fold(lake, SPEC.name, DAY, HOUR))
        return real(storage, info, *args)

    monkeypatch.setattr(key_files, "_read", read_after_a_fold)
    assert hits(lake, second) == sorted(second["hi"].to_pylist())
    assert folded == [True]


def test_compaction_of_a_date_keeps_the_run_files_replacing_rows_it_absorbed(
    lake: LocalStorage,
) -> None:
    hours = [hour_of(DAY, h) for h in range(4)]
    keys = [random_keys(40, seed=10 + n, obj=f"o{n}") for n in range(4)]
    for hour, part in zip(hours, keys, strict=True):
        save(lake, hour, part)
    save(lake, hours[0], random_keys(0, 0), reprocessed=frozenset({"o0"}))  # a run file
    assert compact_due(lake, SPEC.name, [DAY]) == [DAY]
    expected = sorted(pa.concat_tables(keys[1:])["hi"].to_pylist())
    assert hits(lake, pa.concat_tables(keys)) == expected


@pytest.mark.s3
def test_run_files_on_s3_are_saved_read_and_folded(s3_bucket: str) -> None:
    lake = open_storage(f"s3://{s3_bucket}/lake")
    first, second = random_keys(30, seed=1, obj="a"), random_keys(30, seed=2, obj="b")
    save(lake, HOUR, first)
    (run_file,) = save(lake, HOUR, second)
    assert run_file.startswith(layout.dedup_run_keys_folder(SPEC.name, DAY, HOUR))
    again = random_keys(5, seed=3, obj="a")
    save(lake, HOUR, again)  # a re-cleaned: its first keys are out
    probe = pa.concat_tables([first, second, again])
    expected = sorted(second["hi"].to_pylist() + again["hi"].to_pylist())
    assert hits(lake, probe) == expected
    assert run_keys.fold(lake, SPEC.name, DAY, HOUR)
    assert list(lake.list(layout.dedup_run_keys_folder(SPEC.name, DAY, HOUR))) == []
    assert hits(lake, probe) == expected
