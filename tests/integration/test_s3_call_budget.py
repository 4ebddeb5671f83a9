"""A one-object micro-batch on an S3 lake makes a bounded number of S3 calls (issue 15).

The schema and cleaning steps of a sensor-started run (listing from the hour's mark) over
one new object, after a run over the hour's earlier objects, on moto's S3 over HTTP; every
request is counted at the server (boto3's and pyarrow's alike, tests/s3_requests.py). The
bounds are what the run needs: main's code before this change made, in the cleaning step,
HeadObject 11, ListObjectsV2 13, GetObject 14 (ranged included) and 9 requests of
multipart uploads (53 requests; 35 now, with the Iceberg table's metadata read afresh)."""

from __future__ import annotations

import gzip
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from lake.cleaning.run import RunOptions, clean_run
from lake.crawl_run import CrawlOptions, crawl_run
from lake.firehose import object_key
from lake.iceberg import metadata_io
from lake.pii import PIIKey
from lake.settings import DEFAULTS
from lake.storage import open_storage
from lake.streams import load_streams
from tests.s3_requests import RequestLog, aws_variables, moto_server

pytestmark = pytest.mark.s3
SPEC = load_streams()["robot_telemetry"]
DATABASE = "firehose_raw"
HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
KEY = PIIKey(b"call-budget-pii-key", "test")
EARLIER = 4

# operation -> most calls of the one-object batch's cleaning step
CLEANED_BUDGET = {
    "ListObjectsV2": 11,
    "HeadObject": 5,
    "GetObject": 10,  # whole and ranged
    "PutObject": 8,  # plain and conditional
    "multipart": 0,  # CreateMultipartUpload, UploadPart, CompleteMultipartUpload
    "DeleteObject": 1,
}
SCHEMA_BUDGET = {"ListObjectsV2": 2, "HeadObject": 1, "GetObject": 5, "PutObject": 3}


class Log:
    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass


@pytest.fixture
def counted_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RequestLog, str]]:
    """A bucket on a moto server of its own whose requests are logged."""
    log = RequestLog()
    with moto_server(log) as endpoint:
        for name, value in aws_variables(endpoint).items():
            monkeypatch.setenv(name, value)
        bucket = f"calls-{uuid.uuid4().hex[:12]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        yield log, bucket


def _land(landing, minute: int) -> None:  # type: ignore[no-untyped-def]
    records = [
        {
            "event_id": f"e{minute}-{n}",
            "ts": f"2026-11-21T08:{minute:02d}:{n:02d}Z",
            "robot_id": "R1",
        }
        for n in range(5)
    ]
    key = object_key(SPEC.name, HOUR.replace(minute=minute), object_id=f"obj-{minute}")
    landing.write(key, gzip.compress("".join(json.dumps(r) for r in records).encode(), mtime=0))


def _by_operation(rows: list[tuple[str, str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for operation, _ in rows:
        if operation in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            operation = "multipart"
        counts[operation.split("(")[0]] += 1
    return counts


def _batch(settings, storages, phase_log: RequestLog | None) -> None:  # type: ignore[no-untyped-def]
    if phase_log is not None:
        phase_log.phase = "schema"
    crawl_run(SPEC, DATABASE, storages, [HOUR], CrawlOptions(from_mark=True), Log())
    if phase_log is not None:
        phase_log.phase = "cleaned"
    result = clean_run(
        settings, SPEC, DATABASE, storages, KEY, [HOUR], RunOptions(from_mark=True), Log()
    )
    assert result.total.records_cleaned == 5  # this batch's object alone
    if phase_log is not None:
        phase_log.phase = "after"


def test_one_object_batch_stays_within_its_s3_call_budget(
    counted_s3: tuple[RequestLog, str], tmp_path: Path
) -> None:
    log, bucket = counted_s3
    settings = replace(
        DEFAULTS,
        landing_uri=f"s3://{bucket}/landing",
        lake_uri=f"s3://{bucket}/lake",
        warehouse_path=str(tmp_path / "warehouse.duckdb"),
        iceberg_catalog_uri=f"sqlite:///{tmp_path / 'iceberg.db'}",
    )
    landing, lake = open_storage(settings.landing_uri), open_storage(settings.lake_uri)
    for minute in range(EARLIER):
        _land(landing, minute)
    crawl_run(SPEC, DATABASE, (landing, lake), [HOUR], CrawlOptions(), Log())
    clean_run(settings, SPEC, DATABASE, (landing, lake), KEY, [HOUR], RunOptions(), Log())
    _land(landing, 10)  # the earlier run's mark is its newest object: this one is after it
    _batch(settings, (landing, lake), None)
    _land(landing, 20)
    metadata_io.CACHE.clear()  # a run is a process of its own: nothing read before it
    _batch(settings, (landing, lake), log)

    for phase, budget in (("schema", SCHEMA_BUDGET), ("cleaned", CLEANED_BUDGET)):
        counts = _by_operation(log.of(phase))
        print(phase, dict(counts))  # shown with -s or on failure
        over = {op: (n, budget.get(op, 0)) for op, n in counts.items() if n > budget.get(op, 0)}
        assert not over, f"{phase}: (calls, budget) over budget: {over}; all: {dict(counts)}"
