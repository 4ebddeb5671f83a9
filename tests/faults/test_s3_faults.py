"""S3 faults between the pipeline and its buckets: 503/500 answers, dropped connections
and bodies cut off mid-stream, injected by a proxy in front of moto's S3 over HTTP."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from fault_kit import (
    HOUR,
    STREAM,
    FaultProxy,
    assert_all_accounted,
    expected_ids,
    land,
    records_for,
    s3_storage_via,
)

from lake.cleaning.hour import clean_hour
from lake.firehose import hour_prefix
from lake.marts import parse_mart
from lake.s3_retry import ReadFailed
from lake.settings import DEFAULTS
from lake.streams import load_streams
from lake.warehouse import Warehouse
from tests.mart_days import build_and_write

pytestmark = pytest.mark.s3
SPEC = load_streams()[STREAM]
BLOB = os.urandom(3 << 20)
COUNT_SQL = """-- partitioned_by: day
SELECT dt, count(*) AS records, count(DISTINCT event_id) AS distinct_ids
FROM cleaned.robot_telemetry WHERE dt = getvariable('mart_day') GROUP BY dt
"""


def _put_blob(bucket: str) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key="raw/blob.bin", Body=BLOB)


def _cut(times: int):
    """Cut off the first `times` GETs of the blob, mid-body."""
    return lambda method, path, n: (
        "truncate" if method == "GET" and path.endswith("blob.bin") and n <= times else None
    )


def test_a_body_cut_off_mid_stream_is_read_whole(proxy: FaultProxy, s3_bucket: str) -> None:
    _put_blob(s3_bucket)
    storage = s3_storage_via(proxy.client(), s3_bucket, "raw")
    proxy.plan = _cut(2)
    assert storage.read("blob.bin") == BLOB
    assert proxy.injected["truncate"] == 2


def test_streams_and_ranges_resume_from_the_byte_they_stopped_at(
    proxy: FaultProxy, s3_bucket: str
) -> None:
    _put_blob(s3_bucket)
    storage = s3_storage_via(proxy.client(), s3_bucket, "raw")
    proxy.plan = _cut(1)
    with storage.open("blob.bin") as body:
        assert body.read(10) == BLOB[:10]
        assert body.read() == BLOB[10:]
    proxy.plan = lambda method, path, n: "truncate" if method == "GET" and n <= 3 else None
    assert storage.read_range("blob.bin", 1000, 500_000) == BLOB[1000:501_000]
    assert proxy.injected["truncate"] == 2


def test_a_body_that_keeps_breaking_fails_after_bounded_attempts(
    proxy: FaultProxy, s3_bucket: str
) -> None:
    _put_blob(s3_bucket)
    storage = s3_storage_via(proxy.client(), s3_bucket, "raw")
    proxy.plan = _cut(1000)
    with pytest.raises(ReadFailed):
        storage.read("blob.bin")
    assert proxy.injected["truncate"] == DEFAULTS.s3_read_attempts


def test_an_object_replaced_while_resuming_is_an_error_not_a_mix(
    proxy: FaultProxy, s3_bucket: str
) -> None:
    _put_blob(s3_bucket)
    storage = s3_storage_via(proxy.client(), s3_bucket, "raw")
    direct = boto3.client("s3")

    def plan(method: str, path: str, n: int) -> str | None:
        if method == "GET" and path.endswith("blob.bin"):
            if n == 2:  # before the resumed GET reaches S3, the object changes
                direct.put_object(Bucket=s3_bucket, Key="raw/blob.bin", Body=b"new" * 1000)
            return "truncate" if n == 1 else None
        return None

    proxy.plan = plan
    with pytest.raises(ClientError, match="PreconditionFailed|412"):
        storage.read("blob.bin")


def _mixed_faults() -> Callable[[str, str, int], str | None]:
    """Every kind, on the first attempts of many requests, so each is retried.

    Which PUTs fail is chosen by their order, not by their names: object names carry
    random run tokens, so a name-based choice could pick none of them."""
    puts = 0

    def plan(method: str, path: str, n: int) -> str | None:
        nonlocal puts
        if "/landing/" in path and method == "GET" and n == 1:
            return "truncate"
        if method == "PUT" and n == 1:
            puts += 1
            return "503" if puts % 3 == 1 else None
        if method == "GET" and "list-type" in path and n == 1:
            return "500"
        if method in ("GET", "HEAD") and "_state" in path and n == 1:
            return "drop"
        return None

    return plan


def test_a_cleaning_run_through_faults_accounts_for_every_record(
    proxy: FaultProxy, s3_bucket: str, tmp_path: Path
) -> None:
    upstream = boto3.client("s3")
    direct_landing = s3_storage_via(upstream, s3_bucket, "landing")
    objects = records_for(n_objects=6, per_object=20)
    keys = land(direct_landing, objects)

    client = proxy.client()
    landing = s3_storage_via(client, s3_bucket, "landing")
    lake = s3_storage_via(client, s3_bucket, "lake")
    proxy.plan = _mixed_faults()
    infos = list(landing.list(hour_prefix(STREAM, HOUR)))
    report = clean_hour(SPEC, None, landing, lake, HOUR, infos)
    assert report.records_in == sum(len(r) for r in objects)
    assert proxy.injected["truncate"] >= 6 and proxy.injected["503"] >= 1
    assert proxy.injected["drop"] >= 1
    proxy.plan = lambda method, path, n: None
    assert_all_accounted(lake, keys, objects)

    # a mart over the S3 lake, through the same faults, counts each record once
    proxy.plan = _mixed_faults()
    sql = tmp_path / "record_count.sql"
    sql.write_text(COUNT_SQL)
    spec = parse_mart(sql, {STREAM}, {"record_count"})
    build, written = build_and_write(spec, HOUR.date(), lake, Warehouse(tmp_path / "wh.duckdb"))
    want = len(expected_ids(objects))
    assert build.result is not None
    assert build.result.select(["records", "distinct_ids"]).to_pylist() == [
        {"records": want, "distinct_ids": want}
    ]
    assert written["warehouse_pending"] == ""

    # the next hour is cleaned as usual
    nxt = HOUR + timedelta(hours=1)
    more = records_for(n_objects=1, per_object=5)
    land(direct_landing, more, nxt)
    proxy.plan = _mixed_faults()
    later = clean_hour(SPEC, None, landing, lake, nxt, list(landing.list(hour_prefix(STREAM, nxt))))
    assert later.records_in == 6 and later.objects == 1
