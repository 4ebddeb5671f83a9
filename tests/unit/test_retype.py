"""One type per column across a widening, on real files: hour 1 cleans `created` as a
timestamp, hour 2's records make the crawler widen it to string, and lake.retype brings
every committed file of the stream to the catalog's type (re-cleaned from landing, or
cast when landing no longer holds the object)."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.committed import CommittedFiles
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.layout import retype_marker
from lake.mart_build import build_mart
from lake.marts import parse_mart
from lake.pii import PIIKey, key_from_env
from lake.retype import retype_stream
from lake.settings import DEFAULTS
from lake.storage import LocalStorage, ObjectInfo, S3Storage, Storage
from lake.streams import load_streams

SPEC = load_streams()["robot_telemetry"]
DB = "firehose_raw"
H1 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H2 = datetime(2026, 11, 21, 9, tzinfo=UTC)
DAY = date(2026, 11, 21)
MART_SQL = """-- partitioned_by: day
SELECT dt, created, count(*) AS records
FROM cleaned.robot_telemetry
WHERE dt = getvariable('mart_day')
GROUP BY dt, created
"""


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


def _put(landing: Storage, hour: datetime, oid: str, records: list[dict[str, Any]]) -> str:
    key = object_key(SPEC.name, hour.replace(minute=5), object_id=oid)
    text = "".join(json.dumps(r) for r in records)
    landing.write(key, gzip.compress(text.encode()))
    return key


def _rec(eid: str, created: str) -> dict[str, Any]:
    return {"event_id": eid, "ts": "2026-11-21T08:10:00Z", "robot_id": "R1", "created": created}


def _objects(landing: Storage, hour: datetime) -> list[ObjectInfo]:
    return list(landing.list(hour_prefix(SPEC.name, hour)))


def _crawl_and_clean(landing: Storage, lake: Storage, hour: datetime) -> dict[str, Any]:
    objects = _objects(landing, hour)
    table = crawl_objects(SPEC, Catalog(lake, DB), landing, objects).table
    clean_hour(SPEC, table, landing, lake, hour, objects)
    return table


def _key(landing: Storage, lake: Storage) -> PIIKey:
    return key_from_env(landing.uri, lake.uri)


def _widened_lake(landing: Storage, lake: Storage) -> tuple[dict[str, Any], str]:
    """Hour 1: `created` is a timestamp (a producer's +02:00 offset in object a, the
    canonical UTC form in object b); hour 2: it is text once. Returns the widened table
    and object b's key."""
    _put(
        landing,
        H1,
        "a",
        [_rec("a1", "2026-11-21T09:00:00+02:00"), _rec("a2", "2026-11-21T07:00:00.250Z")],
    )
    b = _put(
        landing, H1, "b", [_rec("b1", "2026-11-21T07:30:00Z"), _rec("b1", "2026-11-21T07:30:00Z")]
    )
    first = _crawl_and_clean(landing, lake, H1)
    assert _column_type(first, "created") == "timestamp"
    _put(landing, H2, "c", [_rec("c1", "not a date"), _rec("c2", "2026-11-21T07:45:00Z")])
    table = _crawl_and_clean(landing, lake, H2)
    assert _column_type(table, "created") == "string"
    return table, b


def _column_type(table: dict[str, Any], name: str) -> str:
    columns = table["StorageDescriptor"]["Columns"]
    return next(c["Type"] for c in columns if c["Name"] == name)


def _committed(lake: Storage) -> list[str]:
    return CommittedFiles(lake, SPEC.name).of_days("cleaned", None)


def _types(lake: Storage, name: str) -> set[pa.DataType]:
    return {pq.read_schema(io.BytesIO(lake.read(k))).field(name).type for k in _committed(lake)}


def _parquet_types(lake: LocalStorage, name: str) -> set[tuple[str, str]]:
    """(physical, logical) Parquet type of the column in every committed file."""
    found = set()
    for key in _committed(lake):
        schema = pq.read_metadata(lake.path(key)).schema
        column = schema.column(schema.names.index(name))
        found.add((column.physical_type, str(column.logical_type)))
    return found


def _rows(lake: Storage) -> dict[str, Any]:
    files = [pq.read_table(io.BytesIO(lake.read(k))) for k in _committed(lake)]
    rows = [r for t in files for r in t.to_pylist()]
    return {r["event_id"]: r["created"] for r in rows}


def _full_reclean(landing_root: Path, tmp_path: Path, table: dict[str, Any]) -> dict[str, Any]:
    """What cleaning every hour again under the widened table gives."""
    landing, lake = LocalStorage(landing_root), LocalStorage(tmp_path / "reclean")
    for hour in (H1, H2):
        clean_hour(SPEC, table, landing, lake, hour, _objects(landing, hour), full_refresh=True)
    return _rows(lake)


def _balanced(lake: LocalStorage) -> int:
    """Rows in the committed files, checked against every manifest's counts."""
    cleaned = 0
    for info in lake.list(f"_state/cleaned/{SPEC.name}/"):
        m = json.loads(lake.read(info.key))
        assert m["records_in"] == (
            m["records_cleaned"] + m["records_quarantined"] + m["duplicates_dropped"]
        )
        cleaned += m["records_cleaned"]
    assert cleaned == sum(pq.read_metadata(lake.path(k)).num_rows for k in _committed(lake))
    return cleaned


def test_a_widening_rewrites_every_earlier_file_to_the_catalog_type(
    landing: LocalStorage, lake: LocalStorage, tmp_path: Path
) -> None:
    table, b = _widened_lake(landing, lake)
    assert _types(lake, "created") == {pa.timestamp("us", tz="UTC"), pa.string()}  # the bug
    expected = _full_reclean(landing.root, tmp_path, table)
    landing.delete(b)  # expired from landing: its files can only be cast

    report = retype_stream(SPEC, table, landing, lake, _key(landing, lake))

    assert report.scanned and report.manifests_checked == 3
    assert report.objects_cast == [b] and len(report.objects_recleaned) == 1
    assert len(report.files_retyped) == 2
    assert _types(lake, "created") == {pa.string()}
    assert _parquet_types(lake, "created") == {("BYTE_ARRAY", "String")}
    # re-cleaned rows keep the producer's text; cast ones are ISO-8601 UTC, which is
    # what the producer sent here: both equal a full re-clean
    assert _rows(lake) == expected
    assert expected["a1"] == "2026-11-21T09:00:00+02:00"
    assert _balanced(lake) == 5
    for info in lake.list(f"_state/cleaned/{SPEC.name}/"):
        assert json.loads(lake.read(info.key))["column_types"]["created"] == "VARCHAR"


def test_retyping_is_idempotent_and_scans_once_per_type_change(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    table, _ = _widened_lake(landing, lake)
    key = _key(landing, lake)
    retype_stream(SPEC, table, landing, lake, key)
    files = {k: lake.read(k) for k in _committed(lake)}

    again = retype_stream(SPEC, table, landing, lake, key)
    assert not again.scanned and not again.files_retyped  # the marker: nothing changed
    lake.delete(retype_marker(SPEC.name))
    rescanned = retype_stream(SPEC, table, landing, lake, key)
    assert rescanned.scanned and not rescanned.files_retyped
    assert {k: lake.read(k) for k in _committed(lake)} == files


def test_a_crash_mid_rewrite_leaves_whole_files_and_the_rerun_finishes(
    landing: LocalStorage, lake: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    table, b = _widened_lake(landing, lake)
    landing.delete(b)
    write = LocalStorage.write

    def crash_on_manifest(self: LocalStorage, key: str, data: bytes) -> None:
        if key.startswith("_state/cleaned/"):
            raise OSError("killed")
        write(self, key, data)

    monkeypatch.setattr(LocalStorage, "write", crash_on_manifest)
    with pytest.raises(OSError):
        retype_stream(SPEC, table, landing, lake, _key(landing, lake))
    monkeypatch.setattr(LocalStorage, "write", write)
    assert len(_committed(lake)) == 3  # every file still committed and readable
    assert not lake.exists(retype_marker(SPEC.name))

    report = retype_stream(SPEC, table, landing, lake, _key(landing, lake))
    assert report.scanned
    assert _types(lake, "created") == {pa.string()}
    _balanced(lake)


def test_marts_read_mixed_files_as_the_catalog_type_and_after_the_rewrite(
    landing: LocalStorage, lake: LocalStorage, tmp_path: Path
) -> None:
    table, _ = _widened_lake(landing, lake)
    path = tmp_path / "sql" / "created.sql"
    path.parent.mkdir()
    path.write_text(MART_SQL)
    mart = parse_mart(path, {SPEC.name}, {"created"})
    columns = {SPEC.name: [("event_id", "VARCHAR"), ("ts", "TIMESTAMPTZ"), ("created", "VARCHAR")]}

    def build() -> pa.Table:
        result = build_mart(mart, DAY, lake, columns).result
        assert result is not None
        return result

    mixed = build()  # before the rewrite: timestamp and string files side by side
    assert mixed.schema.field("created").type == pa.string()
    assert sum(mixed["records"].to_pylist()) == 5
    retype_stream(SPEC, table, landing, lake, _key(landing, lake))
    after = build()
    assert sum(after["records"].to_pylist()) == 5
    assert "2026-11-21T09:00:00+02:00" in after["created"].to_pylist()


def test_the_same_widening_on_s3(tmp_path: Path) -> None:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="lake-test")
        landing, lake = S3Storage("lake-test", "landing"), S3Storage("lake-test", "lake")
        table, b = _widened_lake(landing, lake)
        assert len(_types(lake, "created")) == 2
        landing.delete(b)
        report = retype_stream(SPEC, table, landing, lake, _key(landing, lake))
        assert report.objects_cast == [b] and len(report.files_retyped) == 2
        assert _types(lake, "created") == {pa.string()}
        rows = _rows(lake)
        assert rows["a1"] == "2026-11-21T09:00:00+02:00"  # re-cleaned: the producer's text
        assert rows["b1"] == "2026-11-21T07:30:00Z"  # cast: ISO-8601 UTC
        assert len(rows) == 5


def test_at_most_max_objects_per_run_the_rest_next_run(
    landing: LocalStorage, lake: LocalStorage
) -> None:
    table, _ = _widened_lake(landing, lake)
    key = _key(landing, lake)
    one_a_run = replace(DEFAULTS, retype_max_objects=1)
    first = retype_stream(SPEC, table, landing, lake, key, settings=one_a_run)
    assert len(first.objects_recleaned) == 1 and first.remaining == 1
    assert not lake.exists(retype_marker(SPEC.name))  # not done: the next run scans again
    second = retype_stream(SPEC, table, landing, lake, key, settings=one_a_run)
    assert len(second.objects_recleaned) == 1 and second.remaining == 0
    assert _types(lake, "created") == {pa.string()}
