"""Retyping objects whose cleaned rows are in a file shared with other objects: each
object's own range is cast into a file of its own, registered by replace by key, and its
manifest names that file instead of the range; no row lost or twice, in the table."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.scan import committed_keys
from lake.ledger import output_name, output_name_of_file, shared_parts
from lake.pii import key_from_env
from lake.retype import retype_stream
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import load_streams
from tests.unit.shared_lake import manifests_by_key, share

SPEC = load_streams()["robot_telemetry"]
H1 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H2 = datetime(2026, 11, 21, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")


@pytest.fixture
def tables(lake: LocalStorage, tmp_path: Path) -> LakeTables:
    settings = replace(
        DEFAULTS, lake_uri=lake.uri, iceberg_catalog_uri=f"sqlite:///{tmp_path}/iceberg.db"
    )
    return LakeTables(settings)


def _put(landing: LocalStorage, hour: datetime, oid: str, created: list[str]) -> str:
    records = [
        {"event_id": f"{oid}{i}", "ts": "2026-11-21T08:10:00Z", "robot_id": "R1", "created": c}
        for i, c in enumerate(created)
    ]
    key = object_key(SPEC.name, hour.replace(minute=5), object_id=oid)
    landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
    return key


def _crawl_and_clean(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables, hour: datetime
) -> dict[str, Any]:
    objects = list(landing.list(hour_prefix(SPEC.name, hour)))
    table = crawl_objects(SPEC, Catalog(lake, "firehose_raw"), landing, objects).table
    clean_hour(SPEC, table, landing, lake, hour, objects, tables=tables)
    return table


def _table_rows(tables: LakeTables) -> list[tuple[str, str, Any]]:
    rows = tables.load(CLEANED, SPEC.name).scan().to_arrow()
    columns = [rows[c].to_pylist() for c in ("event_id", "_source_key", "created")]
    return sorted(zip(*columns, strict=True))


def test_a_widening_casts_each_sharer_into_a_file_of_its_own(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables
) -> None:
    a = _put(landing, H1, "a", ["2026-11-21T07:00:00Z", "2026-11-21T07:01:00Z"])
    b = _put(landing, H1, "b", ["2026-11-21T07:30:00Z"])
    c = _put(landing, H1, "c", ["2026-11-21T07:40:00Z", "2026-11-21T07:41:00Z"])
    _crawl_and_clean(landing, lake, tables, H1)
    [shared] = share(lake, tables, SPEC.name, [a, b, c], H1)
    assert pq.read_metadata(lake.path(shared)).num_rows == 5
    for key in (b, c):
        landing.delete(key)  # expired from landing: only a cast can retype them
    _put(landing, H2, "d", ["not a date"])
    table = _crawl_and_clean(landing, lake, tables, H2)  # created: timestamp -> string
    expected = _table_rows(tables)  # the table's own rewrite already reads them as text
    assert len(expected) == 6 and all(isinstance(r[2], str) for r in expected)

    report = retype_stream(
        SPEC, table, landing, lake, key_from_env(landing.uri, lake.uri), tables=tables
    )

    assert report.objects_recleaned == [a] and sorted(report.objects_cast) == sorted([b, c])
    assert _table_rows(tables) == expected  # each row once, as text
    manifests = {k: doc for k, (_, doc) in manifests_by_key(lake, SPEC.name).items()}
    for key in (a, b, c):
        doc = manifests[key]
        assert shared_parts(doc) == []  # no sharer names the shared file any more
        [own] = [f for f in doc["files"] if layout.is_cleaned_file(f)]
        assert output_name_of_file(own.rsplit("/", 1)[-1]) == output_name(H1, key)
        rows = pq.read_table(io.BytesIO(lake.read(own)))
        assert rows.schema.field("created").type == pa.string()
        assert set(rows["_source_key"].to_pylist()) == {key}
        assert rows.num_rows == doc["records_cleaned"]
        assert doc["column_types"]["created"] == "VARCHAR"
    assert shared not in (committed_keys(tables, CLEANED, SPEC.name) or [])
    assert lake.exists(shared)  # older snapshots' file, until snapshot expiry


def test_a_sharer_whose_shared_file_is_gone_is_skipped_and_the_others_cast(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables
) -> None:
    a = _put(landing, H1, "a", ["2026-11-21T07:00:00Z"])
    b = _put(landing, H1, "b", ["2026-11-21T07:30:00Z"])
    c = _put(landing, H1, "c", ["2026-11-21T07:40:00Z"])
    _crawl_and_clean(landing, lake, tables, H1)
    [gone] = share(lake, tables, SPEC.name, [a], H1, token="aaaaaaaaaaaa")
    share(lake, tables, SPEC.name, [b, c], H1, token="bbbbbbbbbbbb")
    for key in (a, b, c):
        landing.delete(key)
    _put(landing, H2, "d", ["not a date"])
    table = _crawl_and_clean(landing, lake, tables, H2)
    lake.delete(gone)  # snapshot expiry after the table's rewrite of it
    expected = _table_rows(tables)

    report = retype_stream(
        SPEC, table, landing, lake, key_from_env(landing.uri, lake.uri), tables=tables
    )

    assert sorted(report.objects_cast) == sorted([a, b, c])
    assert _table_rows(tables) == expected
    manifests = {k: doc for k, (_, doc) in manifests_by_key(lake, SPEC.name).items()}
    assert [p.file for p in shared_parts(manifests[a])] == [gone]  # left as it was
    assert all(shared_parts(manifests[k]) == [] for k in (b, c))
