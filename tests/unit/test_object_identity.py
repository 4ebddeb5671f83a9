"""An object is identified by its full key and its version (issue 10, section 3):
names unique per full key, safe and bounded; an overwritten object cleaned again with its
earlier rows replaced; glob characters in keys taken literally; old-naming manifests."""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.cleaning import run_keys
from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix
from lake.ledger import legacy_output_name, output_name, read_ledger
from lake.storage import LocalStorage, UnsafeKeyError
from lake.streams import load_streams
from tests.incremental_lake import TABLE

SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
FOLDER = hour_prefix(SPEC.name, HOUR)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def records(prefix: str, n: int, ts: str = "2026-11-21T08:10:00Z") -> bytes:
    text = "".join(
        json.dumps({"event_id": f"{prefix}-{i}", "ts": ts, "robot_id": "R1"}) for i in range(n)
    )
    return gzip.compress(text.encode(), mtime=0)


def run(landing: LocalStorage, lake: LocalStorage, hour: datetime = HOUR, **kw: Any):
    objects = list(landing.list(hour_prefix(SPEC.name, hour)))
    return clean_hour(SPEC, TABLE, landing, lake, hour, objects, **kw)


def table_of(lake: LocalStorage, prefix: str) -> pa.Table | None:
    """Every Parquet file under prefix, read by pyarrow path by path (no globbing)."""
    tables = [pq.read_table(lake.path(o.key)) for o in lake.list(prefix)]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def cleaned_ids(lake: LocalStorage) -> list[str]:
    table = table_of(lake, f"cleaned/{SPEC.name}/")
    return sorted(table["event_id"].to_pylist()) if table else []


def key_state(lake: LocalStorage) -> pa.Table:
    """The dedup keys as readers see them: each date's run key files (a later run's keys,
    with the objects they replace) folded into its hour files first."""
    prefix = f"_state/keys/{SPEC.name}/"
    for day in {layout.file_day(o.key) for o in lake.list(prefix)} - {None}:
        run_keys.fold_day(lake, SPEC.name, day)
    return table_of(lake, prefix)


def test_keys_sharing_a_last_part_keep_all_their_records(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    """`HH/x.gz`, `HH/retry/x.gz` and `HH/x` each keep their 100 records (the old names
    shared one output and ledger name: 100 of 300 lost, all marked done)."""
    keys = [f"{FOLDER}x.gz", f"{FOLDER}retry/x.gz", f"{FOLDER}x"]
    for n, key in enumerate(keys):
        landing.write(key, records(f"o{n}", 100))
    assert len({legacy_output_name(HOUR, k) for k in keys}) == 1  # the old collision
    assert len({output_name(HOUR, k) for k in keys}) == 3

    report = run(landing, lake)
    assert (report.records_in, report.records_cleaned) == (300, 300)
    assert report.unbalanced_objects == []
    assert len(cleaned_ids(lake)) == 300 and len(set(cleaned_ids(lake))) == 300
    assert key_state(lake).num_rows == 300
    ledger = read_ledger(lake, SPEC.name, HOUR)
    assert len(ledger.versions) == 3
    again = run(landing, lake)
    assert (again.objects, again.objects_skipped) == (0, 3)


def test_a_240_character_file_name_is_cleaned(landing: LocalStorage, lake: LocalStorage) -> None:
    key = f"{FOLDER}{'n' * 237}.gz"  # a 240-character file name
    landing.write(key, records("long", 5))
    report = run(landing, lake)
    assert report.records_cleaned == 5
    for info in lake.list(""):
        assert len(info.key.rsplit("/", 1)[-1].encode()) <= 140, info.key
    assert cleaned_ids(lake) == sorted(f"long-{i}" for i in range(5))


@pytest.mark.parametrize(
    "key",
    [
        f"{FOLDER}{'é' * 200}.gz",  # 400 bytes of UTF-8
        f"{FOLDER}a*b?c[ab]{{x,y}}.gz",
        f"{FOLDER}.hidden.inflight",
        f"{FOLDER}x'; DROP TABLE t; --.gz",
        f"{FOLDER}sp ace\t\n.gz",
    ],
)
def test_output_names_are_safe_bounded_and_deterministic(key: str) -> None:
    name = output_name(HOUR, key)
    assert re.fullmatch(r"20261121T08-[A-Za-z0-9._-]+-[0-9a-f]{16}\.parquet", name), name
    assert len(name) <= 117
    assert not name.startswith(".") and not name.endswith(".inflight")
    assert name == output_name(HOUR, key)
    assert name != output_name(HOUR, key + "x")


def test_an_overwritten_object_is_cleaned_again_and_replaces_its_rows(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    """A new version under the same key (new ETag) is cleaned again: its 700 records
    replace the 300 of the first version in cleaned files, quarantine and dedup keys."""
    key = f"{FOLDER}redelivered.gz"
    landing.write(key, records("v1", 300, ts="2026-11-20T23:00:00Z"))
    cut = records("x", 50)[:-8]  # a truncated gzip: quarantined whole
    landing.write(f"{FOLDER}broken.gz", cut)
    run(landing, lake)
    assert len(cleaned_ids(lake)) == 300
    assert lake.list(f"quarantine/{SPEC.name}/")  # the broken object, quarantined whole
    before = {o.key for o in lake.list(f"cleaned/{SPEC.name}/dt=2026-11-20/")}
    assert len(before) == 1

    time.sleep(0.01)
    landing.write(key, records("v2", 700))  # same key, new content, another event date
    landing.write(f"{FOLDER}broken.gz", records("fixed", 10))
    report = run(landing, lake)

    assert (report.objects, report.objects_skipped) == (2, 0)
    assert report.records_cleaned == 710
    ids = cleaned_ids(lake)
    assert len(ids) == 710 and not any(i.startswith("v1-") for i in ids)
    assert list(lake.list(f"cleaned/{SPEC.name}/dt=2026-11-20/")) == []  # stale day removed
    assert list(lake.list(f"quarantine/{SPEC.name}/")) == []  # quarantine replaced
    keys = key_state(lake)
    assert keys.num_rows == 710  # the first version's keys are gone, on every day
    assert set(keys["obj"].to_pylist()) == {
        output_name(HOUR, key),
        output_name(HOUR, f"{FOLDER}broken.gz"),
    }
    ledger = read_ledger(lake, SPEC.name, HOUR)
    assert all(len(v) == 1 for v in ledger.versions.values())  # old manifests removed
    manifest = json.loads(lake.read(next(iter(lake.list("_state/cleaned/"))).key))
    assert {"source_key", "etag", "size"} <= manifest.keys()
    assert run(landing, lake).objects == 0


def test_a_rewrite_with_the_same_bytes_is_still_a_new_version(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    """A rewrite with the same records is cleaned again, and its own earlier keys do not
    make its records duplicates of themselves."""
    key = f"{FOLDER}same.gz"
    landing.write(key, records("s", 20))
    run(landing, lake)
    time.sleep(0.01)
    landing.write(key, records("s", 20))
    report = run(landing, lake)
    assert (report.records_cleaned, report.duplicates_dropped) == (20, 0)
    assert len(cleaned_ids(lake)) == 20
    assert key_state(lake).num_rows == 20


def test_glob_characters_in_keys_count_each_record_once(tmp_path: Path) -> None:
    """Keys with `*`, `?`, `[ab]` (and a lake root whose path has them too): every record
    once in cleaned output and in the keys state; their duplicates an hour later dropped."""
    landing = LocalStorage(tmp_path / "land*ing")
    lake = LocalStorage(tmp_path / "lake[1]?")
    names = ["a*.gz", "a?.gz", "[ab].gz", "a.gz", "b.gz", "*", "{a,b}.gz"]
    for n, name in enumerate(names):
        landing.write(f"{FOLDER}{name}", records(f"g{n}", 10))
    report = run(landing, lake)
    assert (report.records_in, report.records_cleaned) == (70, 70)
    assert cleaned_ids(lake) == sorted(f"g{n}-{i}" for n in range(len(names)) for i in range(10))
    assert key_state(lake).num_rows == 70
    for info in lake.list(""):
        assert not set("*?[]{}") & set(info.key), info.key

    later = HOUR.replace(hour=9)
    landing.write(f"{hour_prefix(SPEC.name, later)}[ab].gz", records("g2", 10))
    again = run(landing, lake, later)
    assert (again.records_in, again.duplicates_dropped, again.records_cleaned) == (10, 10, 0)


def test_manifests_of_the_old_naming_still_count_as_processed(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    """Objects processed before full-key names are not cleaned twice; a full refresh
    moves them to the new names and removes the old files, manifest and keys."""
    key = f"{FOLDER}{SPEC.name}-1-2026-11-21-08-01-00-old.gz"
    landing.write(key, records("old", 4))
    legacy = legacy_output_name(HOUR, key)
    old_file = f"cleaned/{SPEC.name}/dt=2026-11-21/{legacy}"
    lake.write(old_file, b"old parquet")
    lake.write(
        f"_state/cleaned/{SPEC.name}/{legacy}.json", json.dumps({"files": [old_file]}).encode()
    )
    old_keys = pa.table(
        {"hi": pa.array([1], pa.uint64()), "lo": pa.array([2], pa.uint64()), "obj": [legacy]}
    )
    keys_file = f"_state/keys/{SPEC.name}/dt=2026-11-21/20261121T08.parquet"
    lake.path(keys_file).parent.mkdir(parents=True)
    pq.write_table(old_keys, lake.path(keys_file))

    assert run(landing, lake).objects_skipped == 1  # processed under the old name

    report = run(landing, lake, full_refresh=True)
    assert report.records_cleaned == 4
    assert not lake.exists(old_file)
    assert not lake.exists(f"_state/cleaned/{SPEC.name}/{legacy}.json")
    assert cleaned_ids(lake) == [f"old-{i}" for i in range(4)]
    assert set(key_state(lake)["obj"].to_pylist()) == {output_name(HOUR, key)}
    assert len(read_ledger(lake, SPEC.name, HOUR).versions) == 1


def test_local_listing_version_follows_content_rewrites(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.write("k", b"abc")
    os.utime(s.path("k"), ns=(1, 1))
    (a,) = s.list()
    s.write("k", b"abd")
    (b,) = s.list()
    assert a.etag != b.etag


def test_a_symlink_out_of_the_landing_folder_is_never_followed(
    tmp_path: Path, landing: LocalStorage, lake: LocalStorage
) -> None:
    """A link inside the landing folder pointing at a file elsewhere (a credentials file)
    is refused whole: its target's bytes reach neither the cleaned rows nor the
    quarantine; the hour's other objects are cleaned."""
    secret = tmp_path / "outside" / "credentials"
    secret.parent.mkdir()
    secret.write_text('{"event_id":"x","ts":"2026-11-21T08:10:00Z","token":"AKIASECRET"}')
    landing.write(f"{FOLDER}good.gz", records("g", 2))
    landing.path(f"{FOLDER}good.gz").with_name("evil").symlink_to(secret)
    assert len(list(landing.list(FOLDER))) == 2
    report = run(landing, lake)
    assert (report.records_cleaned, report.records_quarantined) == (2, 1)
    quarantined = table_of(lake, f"quarantine/{SPEC.name}/").to_pylist()
    assert [q["reason_code"] for q in quarantined] == ["unsafe_key"]
    every_file = b"".join(p.read_bytes() for p in (tmp_path / "lake").rglob("*") if p.is_file())
    assert b"AKIASECRET" not in every_file


def test_a_write_through_a_symlinked_folder_out_of_the_lake_is_refused(
    tmp_path: Path, lake: LocalStorage
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "lake").mkdir(exist_ok=True)
    (tmp_path / "lake" / "cleaned").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeKeyError):
        lake.write("cleaned/s/dt=2026-11-21/x.parquet", b"data")
    assert not any(outside.iterdir())
