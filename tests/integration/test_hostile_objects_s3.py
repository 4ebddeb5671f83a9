"""Hostile landing objects on S3 (moto over HTTP): a console folder marker, a `//` key, a
gzip bomb and a record over the limit, among good objects of the same hour. Every good
record is cleaned; each bad object is accounted for; nothing stops the hour."""

from __future__ import annotations

import gzip
import io
import json
import zlib
from datetime import UTC, datetime

import boto3
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, materialize

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.landing_scan import ScanCursor, scan_new_objects
from lake.storage import Storage, open_storage
from lake.streams import load_streams
from orchestration.definitions import ingest_assets
from tests.s3_resources import s3_resources

pytestmark = pytest.mark.s3
SPEC = load_streams()["robot_telemetry"]
HOUR = datetime(2026, 11, 21, 9, tzinfo=UTC)
FOLDER = hour_prefix(SPEC.name, HOUR)  # robot_telemetry/2026/11/21/09/


def _records(prefix: str, n: int) -> list[dict]:
    return [
        {"event_id": f"{prefix}-{i}", "ts": "2026-11-21T09:10:00Z", "robot_id": "R1"}
        for i in range(n)
    ]


def _body(records: list[dict]) -> bytes:
    return gzip.compress("".join(json.dumps(r) for r in records).encode(), mtime=0)


def _gzip_bomb(expanded: int) -> bytes:
    """One valid record padded with `expanded` bytes of spaces: tiny when stored."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = b'{"event_id":"bomb","ts":"2026-11-21T09:10:00Z","robot_id":"R1","pad":"'
    out = [z.compress(head)]
    block = b" " * (1 << 20)
    for _ in range(expanded >> 20):
        out.append(z.compress(block))
    out.append(z.compress(b'"}'))
    out.append(z.flush())
    return b"".join(out)


def _rows(storage: Storage, prefix: str) -> list[dict]:
    rows = []
    for info in storage.list(prefix):
        rows += pq.read_table(io.BytesIO(storage.read(info.key))).to_pylist()
    return rows


@pytest.fixture
def hostile_hour(s3_bucket: str) -> dict:
    """Five good objects, and beside them: a folder marker, a good object under a `//` key,
    a gzip bomb, and an object with one record over the stream's limit."""
    client = boto3.client("s3")
    landing = open_storage(f"s3://{s3_bucket}/landing")
    good: dict[str, list[dict]] = {}
    for n in range(5):
        key = object_key(SPEC.name, HOUR.replace(minute=n), object_id=f"good{n}")
        good[key] = _records(f"g{n}", 20)
        landing.write(key, _body(good[key]))
    # written with boto3 itself: the lake's own writes refuse such keys, S3 does not
    client.put_object(Bucket=s3_bucket, Key=f"landing/{FOLDER}", Body=b"")
    slash_key = FOLDER + "/" + object_key(SPEC.name, HOUR.replace(minute=7)).rsplit("/", 1)[1]
    good[slash_key] = _records("slash", 20)
    client.put_object(Bucket=s3_bucket, Key=f"landing/{slash_key}", Body=_body(good[slash_key]))
    bomb_key = object_key(SPEC.name, HOUR.replace(minute=8), object_id="bomb")
    landing.write(bomb_key, _gzip_bomb(8 << 20))
    big_key = object_key(SPEC.name, HOUR.replace(minute=9), object_id="big")
    big = _records("big", 3)
    big[1]["blob"] = "x" * (2 << 20)
    landing.write(big_key, _body(big))
    return {
        "bucket": s3_bucket,
        "landing": landing,
        "lake": open_storage(f"s3://{s3_bucket}/lake"),
        "good": good,
        "slash_key": slash_key,
        "bomb_key": bomb_key,
        "big_key": big_key,
        # the stream's limits scaled down to the test's objects
        "spec": SPEC.with_limits(max_record_bytes=1 << 20, max_object_expanded_bytes=4 << 20),
    }


def test_hostile_objects_do_not_block_the_hour_on_s3(hostile_hour: dict) -> None:
    h = hostile_hour
    landing, lake, spec = h["landing"], h["lake"], h["spec"]
    objects = list(landing.list(FOLDER))
    assert f"{FOLDER}" in [o.key for o in objects]  # the marker is listed with the hour

    crawled = crawl_objects(spec, Catalog(lake, "firehose_raw"), landing, objects)
    assert "folder_marker" in crawled.hour.unknown[FOLDER]
    assert [p.values for p in crawled.hour.partitions.values()] == [["2026", "11", "21", "09"]]

    report = clean_hour(spec, crawled.table, landing, lake, HOUR, objects)

    assert report.folder_markers == [FOLDER]
    assert report.objects == len(h["good"]) + 2  # the bomb and the big-record object too
    assert report.unbalanced_objects == []
    cleaned = _rows(lake, f"cleaned/{SPEC.name}/")
    expected = {r["event_id"] for rs in h["good"].values() for r in rs} | {"big-0", "big-2"}
    assert sorted(r["event_id"] for r in cleaned) == sorted(expected)
    assert {r["_source_key"] for r in cleaned if r["event_id"].startswith("slash")} == {
        h["slash_key"]
    }
    quarantined = {r["source_key"]: r for r in _rows(lake, f"quarantine/{SPEC.name}/")}
    assert set(quarantined) == {h["bomb_key"], h["big_key"]}
    bomb = quarantined[h["bomb_key"]]
    assert bomb["position"] == -1
    assert bomb["reason"].startswith("object_too_large_expanded: ")
    assert bomb["raw_text"].startswith('{"event_id":"bomb"') and len(bomb["raw_text"]) <= 64 << 10
    big = quarantined[h["big_key"]]
    assert big["position"] == 1
    assert big["reason"].startswith("record_too_large: record of ")
    big_text = json.dumps(_records("big", 3)[1] | {"blob": "x" * (2 << 20)})
    assert f"record of {len(big_text)} bytes exceeds max_record_bytes=1048576" in big["reason"]
    assert big["raw_text"] == big_text[: 64 << 10]
    assert (report.records_in, report.records_cleaned, report.records_quarantined) == (
        len(expected) + 2,
        len(expected),
        2,
    )
    # a second run finds everything done: nothing is stuck
    again = clean_hour(spec, crawled.table, landing, lake, HOUR, list(landing.list(FOLDER)))
    assert (again.objects, again.objects_skipped, again.folder_markers) == (0, 8, [FOLDER])


def test_cleaned_asset_reports_the_folder_marker_on_s3(hostile_hour: dict, tmp_path) -> None:
    h = hostile_hour
    resources = s3_resources(h["bucket"], tmp_path / "warehouse.duckdb")
    result = materialize(
        ingest_assets(SPEC.name), partition_key="2026-11-21-09:00", resources=resources
    )
    assert result.success
    events = {e.asset_key: e for e in result.get_asset_materialization_events()}
    md = events[AssetKey(["cleaned", SPEC.name])].materialization.metadata
    assert md["batch_folder_markers_ignored"].value == 1
    landed = events[AssetKey(["landing", SPEC.name])].materialization.metadata
    assert landed["folder_markers_ignored"].value == 1
    assert FOLDER not in landed["keys"].value
    good = sum(len(r) for r in h["good"].values())
    # with the stream's default limits the 2 MB record and the 8 MB object are allowed
    assert md["records_cleaned"].value == good + 3 + 1
    assert md["records_in"].value == good + 3 + 1


def test_the_sensor_scan_finds_the_slash_key_and_reports_the_marker_once(
    hostile_hour: dict,
) -> None:
    h = hostile_hour
    first = scan_new_objects(h["landing"], SPEC.name, ScanCursor())
    found = {info.key: parsed for info, parsed in first.new}
    assert h["slash_key"] in found and found[h["slash_key"]].arrival_hour == HOUR
    assert set(found) == set(h["good"]) | {h["bomb_key"], h["big_key"]}
    assert first.unparsable == [FOLDER]
    assert list(first.by_hour()) == [HOUR]
    again = scan_new_objects(h["landing"], SPEC.name, first.cursor)
    assert (again.new, again.unparsable) == ([], [])
