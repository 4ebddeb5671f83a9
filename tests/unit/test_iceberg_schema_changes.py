"""Schema changes Iceberg cannot promote, on real Parquet, a real SQLite catalog and DuckDB:
a column widened bigint -> double -> string across runs is replaced in the table and every
committed file holding it in an older type rewritten in the same commit, so pyiceberg and
DuckDB (over the committed files) read every row in the new type; retype then brings the
ledger's files and the table back to the same files, and casts an object's range of a file
shared with other objects into a file of its own (no row lost or twice in the table)."""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.types import DoubleType, LongType, StringType

from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning import writing
from lake.cleaning.hour import clean_hour
from lake.committed import CommittedFiles
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.iceberg.catalog import CLEANED, LakeTables
from lake.iceberg.commit import TableShape, commit_files
from lake.iceberg.scan import committed_keys
from lake.ledger import output_name, output_name_of_file, shared_parts
from lake.parquet_writing import parquet_bytes
from lake.pii import key_from_env
from lake.retype import retype_stream
from lake.settings import DEFAULTS
from lake.storage import LocalStorage
from lake.streams import load_streams
from lake.warehouse import view_sql
from tests.unit.shared_lake import manifests_by_key, share

STREAM = "meter"
TS = pa.array([datetime(2026, 11, 21, 8, tzinfo=UTC)], pa.timestamp("us", "UTC"))


@pytest.fixture
def tables(lake: LocalStorage, tmp_path: Path) -> LakeTables:
    settings = replace(
        DEFAULTS, lake_uri=lake.uri, iceberg_catalog_uri=f"sqlite:///{tmp_path}/iceberg.db"
    )
    return LakeTables(settings)


def _run(lake: LocalStorage, tables: LakeTables, name: str, **columns: pa.Array) -> None:
    """A run's one file, committed as cleaning commits it."""
    key = f"cleaned/{STREAM}/dt=2026-11-21/{name}.parquet"
    lake.path(key).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"ts": TS, "_source_key": [name], **columns}), lake.path(key))
    commit_files(tables, CLEANED, STREAM, [key], TableShape("ts", whole_stats=("_source_key",)))


def _scanned(tables: LakeTables) -> pa.Table:
    return tables.load(CLEANED, STREAM).scan().to_arrow().sort_by("_source_key")


def _duckdb_rows(lake: LocalStorage, tables: LakeTables) -> list[tuple]:
    """The committed files in DuckDB, as the warehouse's view reads them."""
    table = tables.load(CLEANED, STREAM)
    paths = [str(lake.path(k)) for k in committed_keys(tables, CLEANED, STREAM)]
    con = duckdb.connect()
    con.execute("CREATE SCHEMA cleaned")
    con.execute(view_sql("cleaned", STREAM, table, paths))
    rows = con.execute(f'SELECT _source_key, x, y FROM cleaned."{STREAM}" ORDER BY 1').fetchall()
    types = {r[0]: r[1] for r in con.execute(f'DESCRIBE cleaned."{STREAM}"').fetchall()}
    con.close()
    return [types["x"], *rows]


def test_a_column_widened_bigint_double_string_scans_back_in_its_new_type(
    lake: LocalStorage, tables: LakeTables
) -> None:
    _run(lake, tables, "a", x=pa.array([1], pa.int64()))
    _run(lake, tables, "b", x=pa.array([2], pa.int64()))
    assert tables.load(CLEANED, STREAM).schema().find_type("x") == LongType()

    _run(lake, tables, "c", x=pa.array([2.5]))  # the crawler widened x to double
    assert tables.load(CLEANED, STREAM).schema().find_type("x") == DoubleType()
    assert _scanned(tables).column("x").to_pylist() == [1.0, 2.0, 2.5]

    _run(lake, tables, "d", x=pa.array(["n/a"]), y=pa.array([True]))  # to string; a new column
    table = tables.load(CLEANED, STREAM)
    assert table.schema().find_type("x") == StringType()
    scanned = _scanned(tables)
    assert scanned.schema.field("x").type in (pa.string(), pa.large_string())
    assert scanned.column("x").to_pylist() == ["1.0", "2.0", "2.5", "n/a"]
    assert scanned.column("y").to_pylist() == [None, None, None, True]

    # every file the table references holds x as text; the replaced ones are new files
    keys = committed_keys(tables, CLEANED, STREAM)
    assert len(keys) == 4 and sum(".retyped-" in k for k in keys) == 3
    assert {pq.read_schema(lake.path(k)).field("x").type for k in keys} == {pa.string()}
    assert lake.exists(f"cleaned/{STREAM}/dt=2026-11-21/a.parquet")  # older snapshots' file
    assert _duckdb_rows(lake, tables) == [
        "VARCHAR",
        ("a", "1.0", None),
        ("b", "2.0", None),
        ("c", "2.5", None),
        ("d", "n/a", True),
    ]


def test_a_narrower_file_than_the_table_is_cast_up_not_refused(
    lake: LocalStorage, tables: LakeTables
) -> None:
    """A run typed before the crawl widened a column (x: bigint in its file, string in the
    table) must not block the stream: its own file is cast to the table's type."""
    _run(lake, tables, "a", x=pa.array(["text"]))
    _run(lake, tables, "b", x=pa.array([1], pa.int64()), y=pa.array([2.5]))
    scanned = _scanned(tables)
    assert scanned.column("_source_key").to_pylist() == ["a", "b"]
    assert scanned.column("x").to_pylist() == ["text", "1"]
    assert tables.load(CLEANED, STREAM).schema().find_type("x") == StringType()
    assert (
        pq.read_schema(lake.path(f"cleaned/{STREAM}/dt=2026-11-21/b.parquet")).field("x").type
        == pa.string()
    )


def test_a_column_only_ever_null_is_written_as_text_and_committed(
    lake: LocalStorage, tables: LakeTables
) -> None:
    """`SELECT NULL AS plan` gives Arrow's null type, which Iceberg refuses: files we write
    carry such a column as a string column of NULLs."""
    key = f"cleaned/{STREAM}/dt=2026-11-21/n.parquet"
    rows = pa.table({"ts": TS, "_source_key": ["n"], "plan": pa.nulls(1)})
    lake.write(key, parquet_bytes(rows))
    assert pq.read_schema(lake.path(key)).field("plan").type == pa.string()
    commit_files(tables, CLEANED, STREAM, [key], TableShape("ts", whole_stats=("_source_key",)))
    assert _scanned(tables).column("plan").to_pylist() == [None]


SPEC = load_streams()["robot_telemetry"]
H1 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H2 = datetime(2026, 11, 21, 9, tzinfo=UTC)


def _put(landing: LocalStorage, hour: datetime, oid: str, created: list[str]) -> str:
    records = [
        {"event_id": f"{oid}{i}", "ts": "2026-11-21T08:10:00Z", "robot_id": "R1", "created": c}
        for i, c in enumerate(created)
    ]
    key = object_key(SPEC.name, hour.replace(minute=5), object_id=oid)
    landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode()))
    return key


def _crawl_and_clean(landing, lake, tables, hour) -> dict:  # type: ignore[no-untyped-def]
    objects = list(landing.list(hour_prefix(SPEC.name, hour)))
    table = crawl_objects(SPEC, Catalog(lake, "firehose_raw"), landing, objects).table
    clean_hour(SPEC, table, landing, lake, hour, objects, tables=tables)
    return table


def test_retype_after_a_replaced_column_leaves_table_and_ledger_on_the_same_files(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables, monkeypatch
) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")
    _put(landing, H1, "a", ["2026-11-21T07:00:00Z", "2026-11-21T07:01:00Z"])
    b = _put(landing, H1, "b", ["2026-11-21T07:30:00Z"])
    _crawl_and_clean(landing, lake, tables, H1)
    _put(landing, H2, "c", ["not a date"])
    table = _crawl_and_clean(landing, lake, tables, H2)  # created: timestamp -> string

    iceberg = tables.load(CLEANED, SPEC.name)
    assert iceberg.schema().find_type("created") == StringType()
    assert sorted(iceberg.scan().to_arrow().column("created").to_pylist()) == [
        "2026-11-21T07:00:00Z",
        "2026-11-21T07:01:00Z",
        "2026-11-21T07:30:00Z",
        "not a date",
    ]
    ledger = CommittedFiles(lake, SPEC.name).of_days("cleaned", None)
    assert set(committed_keys(tables, CLEANED, SPEC.name)) != set(ledger)  # rewritten copies

    landing.delete(b)  # expired from landing: retype casts its files in place
    report = retype_stream(
        SPEC, table, landing, lake, key_from_env(landing.uri, lake.uri), tables=tables
    )
    assert report.objects_cast == [b] and len(report.objects_recleaned) == 1

    keys = committed_keys(tables, CLEANED, SPEC.name)
    assert keys == sorted(CommittedFiles(lake, SPEC.name).of_days("cleaned", None))
    assert not any(".retyped-" in k for k in keys)
    rows = tables.load(CLEANED, SPEC.name).scan().to_arrow()
    assert rows.num_rows == 4
    assert {pq.read_schema(lake.path(k)).field("created").type for k in keys} == {pa.string()}


def _source_rows(tables: LakeTables) -> list[tuple[str, str, Any]]:
    rows = tables.load(CLEANED, SPEC.name).scan().to_arrow()
    columns = [rows[c].to_pylist() for c in ("event_id", "_source_key", "created")]
    return sorted(zip(*columns, strict=True))


def test_a_widening_casts_each_sharer_into_a_file_of_its_own(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables, monkeypatch
) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)  # own files first: shared_lake shares them
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
    expected = _source_rows(tables)  # the table's own rewrite already reads them as text
    assert len(expected) == 6 and all(isinstance(r[2], str) for r in expected)

    report = retype_stream(
        SPEC, table, landing, lake, key_from_env(landing.uri, lake.uri), tables=tables
    )

    assert report.objects_recleaned == [a] and sorted(report.objects_cast) == sorted([b, c])
    assert _source_rows(tables) == expected  # each row once, as text
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
    keys = committed_keys(tables, CLEANED, SPEC.name) or []
    assert shared not in keys
    assert {pq.read_schema(lake.path(k)).field("created").type for k in keys} == {pa.string()}
    assert lake.exists(shared)  # older snapshots' file, until snapshot expiry


def test_a_sharer_whose_shared_file_is_gone_is_skipped_and_the_others_cast(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables, monkeypatch
) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)  # own files first: shared_lake shares them
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
    expected = _source_rows(tables)

    report = retype_stream(
        SPEC, table, landing, lake, key_from_env(landing.uri, lake.uri), tables=tables
    )

    assert sorted(report.objects_cast) == sorted([a, b, c])
    assert _source_rows(tables) == expected
    manifests = {k: doc for k, (_, doc) in manifests_by_key(lake, SPEC.name).items()}
    assert [p.file for p in shared_parts(manifests[a])] == [gone]  # left as it was
    assert all(shared_parts(manifests[k]) == [] for k in (b, c))


def test_a_cast_of_shared_rows_killed_before_its_manifests_is_redone_once(
    landing: LocalStorage, lake: LocalStorage, tables: LakeTables, monkeypatch
) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "unit-test-pii-key")
    monkeypatch.setattr(writing, "SHARE_ROWS", 0)  # own files first: shared_lake shares them
    keys = [
        _put(landing, H1, oid, ["2026-11-21T07:00:00Z", "2026-11-21T07:01:00Z"]) for oid in "ab"
    ]
    _crawl_and_clean(landing, lake, tables, H1)
    share(lake, tables, SPEC.name, keys, H1)
    for key in keys:
        landing.delete(key)
    _put(landing, H2, "d", ["not a date"])
    table = _crawl_and_clean(landing, lake, tables, H2)
    expected = _source_rows(tables)
    write = LocalStorage.write

    def crash_on_manifest(self: LocalStorage, key: str, data: bytes) -> None:
        if key.startswith("_state/cleaned/"):
            raise OSError("killed")  # after the first object's commit
        write(self, key, data)

    pii_key = key_from_env(landing.uri, lake.uri)
    monkeypatch.setattr(LocalStorage, "write", crash_on_manifest)
    with pytest.raises(OSError):
        retype_stream(SPEC, table, landing, lake, pii_key, tables=tables)
    monkeypatch.setattr(LocalStorage, "write", write)
    assert _source_rows(tables) == expected  # committed: the rows once, in a file of its own

    retype_stream(SPEC, table, landing, lake, pii_key, tables=tables)
    assert _source_rows(tables) == expected
    manifests = manifests_by_key(lake, SPEC.name)
    assert all(shared_parts(manifests[k][1]) == [] for k in keys)
