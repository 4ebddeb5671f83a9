"""Quarantine reason codes: every kind of hostile record lands in quarantine with its
stable code and a free-text detail, codes stay few however many offsets and values the
reasons name, and the run's counts by code add up to its quarantined records. Crawler and
cleaning run for real on local folders; quarantine Parquet is read back."""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.cleaning.report import HourReport
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.storage import LocalStorage
from lake.streams import RecordLimits, load_streams

LIMITS = RecordLimits(max_columns=8, max_record_bytes=4096, max_object_expanded_bytes=64_000)
SPEC = dataclasses.replace(load_streams()["robot_telemetry"], limits=LIMITS)
H8 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H9 = datetime(2026, 11, 21, 9, tzinfo=UTC)
TS = "2026-11-21T09:10:00Z"


def rec(eid: str, ts: Any = TS, **extra: Any) -> str:
    return json.dumps({"event_id": eid, "ts": ts, "robot_id": "R1", "temp": 1.5, **extra})


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


BIG = rec("big", pad="x" * 5000)  # over max_record_bytes=4096
# one object per kind: a good record, then the hostile one, so the code is per source key
HOSTILE_RECORDS = {
    "invalid_json": '{"event_id": "bad" "ts": "2026-11-21T09:10:00Z"}',
    "not_an_object": "[1, 2, 3]",
    "duplicate_key": '{"event_id": "dk", "ts": "2026-11-21T09:10:00Z", "temp": 1, "temp": 2}',
    "missing_event_time": json.dumps({"event_id": "no-ts", "robot_id": "R1"}),
    "invalid_event_time": rec("bad-ts", ts="yesterday"),
    "event_time_out_of_range": rec("far", ts="9999-01-01T00:00:00Z"),
    "missing_dedup_key": json.dumps({"ts": TS, "robot_id": "R1"}),
    "cannot_cast": rec("hot", temp="hot"),
    "too_deep": rec("deep", deep=nested(150)),
    "key_too_long": rec("long-key", **{"k" * 2000: 1}),
    "too_many_columns": rec("wide", **{f"c{i}": i for i in range(8)}),
    "record_too_large": BIG,
}
WHOLE_OBJECTS = {  # objects refused whole: (stored bytes, code)
    "unreadable_object": gzip.compress(("".join(rec(f"t{i}") for i in range(50))).encode())[:40],
    "object_too_large_expanded": gzip.compress(
        "".join(rec(f"e{i}") for i in range(1000)).encode()  # ~90 KB > 64,000
    ),
}


def _land(landing: LocalStorage, hour: datetime, oid: str, data: bytes) -> str:
    key = object_key(SPEC.name, hour.replace(minute=5), object_id=oid)
    landing.write(key, data)
    return key


def _clean(landing: LocalStorage, lake: LocalStorage, hour: datetime) -> HourReport:
    objects = list(landing.list(hour_prefix(SPEC.name, hour)))
    table = Catalog(lake, "firehose_raw").get_table(SPEC.name)
    report = clean_hour(SPEC, table, landing, lake, hour, objects)
    assert report.unbalanced_objects == []
    return report


def _quarantined(lake: LocalStorage) -> list[dict[str, Any]]:
    rows = []
    for info in lake.list(f"quarantine/{SPEC.name}/"):
        rows += pq.read_table(lake.path(info.key)).to_pylist()
    return rows


def _catalog_hour(landing: LocalStorage, lake: LocalStorage) -> None:
    """H8: good records only, crawled, so the catalog types temp as a double."""
    _land(landing, H8, "good", gzip.compress("".join(rec(f"g{i}") for i in range(5)).encode()))
    objects = list(landing.list(hour_prefix(SPEC.name, H8)))
    crawl_objects(SPEC, Catalog(lake, "firehose_raw"), landing, objects)
    _clean(landing, lake, H8)


@pytest.fixture(scope="module")
def hostile_hour(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[HourReport, list[dict[str, Any]], dict[str, str]]:
    """H9, cleaned with H8's catalog: one object per kind of hostile record; returns the
    report, the quarantine rows and the expected code by source key."""
    root = tmp_path_factory.mktemp("reasons")
    landing, lake = LocalStorage(root / "landing"), LocalStorage(root / "lake")
    _catalog_hour(landing, lake)
    expected = {}
    for code, record in HOSTILE_RECORDS.items():
        data = gzip.compress((rec(f"ok-{code}") + record).encode())
        expected[_land(landing, H9, code.replace("_", "-"), data)] = code
    for code, data in WHOLE_OBJECTS.items():
        expected[_land(landing, H9, code.replace("_", "-"), data)] = code
    report = _clean(landing, lake, H9)
    return report, _quarantined(lake), expected


def test_each_kind_of_hostile_record_lands_with_its_code(
    hostile_hour: tuple[HourReport, list[dict[str, Any]], dict[str, str]],
) -> None:
    report, rows, expected = hostile_hour
    assert {r["source_key"]: r["reason_code"] for r in rows} == expected
    assert len(rows) == len(expected)  # one quarantined record or object per kind
    by_kind = {expected[r["source_key"]]: r for r in rows}
    assert {k: r["position"] for k, r in by_kind.items() if k in WHOLE_OBJECTS} == {
        k: -1 for k in WHOLE_OBJECTS
    }
    assert {k: r["position"] for k, r in by_kind.items() if k in HOSTILE_RECORDS} == {
        k: 1 for k in HOSTILE_RECORDS
    }
    # the good record of every record-level object is cleaned
    assert report.records_cleaned == len(HOSTILE_RECORDS)
    assert by_kind["cannot_cast"]["raw_text"] == HOSTILE_RECORDS["cannot_cast"]
    big = len(BIG.encode())
    assert by_kind["record_too_large"]["reason_detail"] == (
        f"record of {big} bytes exceeds max_record_bytes={LIMITS.max_record_bytes}"
    )
    assert by_kind["record_too_large"]["reason"] == (
        f"record_too_large: record of {big} bytes exceeds max_record_bytes=4096"
    )
    # the detail is the reason without its code's prefix, or the whole reason
    for r in rows:
        assert r["reason"] == r["reason_detail"] or r["reason"].endswith(": " + r["reason_detail"])


def test_counts_by_code_add_up_to_records_quarantined(
    hostile_hour: tuple[HourReport, list[dict[str, Any]], dict[str, str]],
) -> None:
    report, rows, expected = hostile_hour
    by_reason = report.as_metadata()["quarantined_by_reason"]
    assert by_reason == dict(Counter(expected.values()))
    assert sum(by_reason.values()) == report.records_quarantined == len(rows)
    assert report.records_in == (
        report.records_cleaned + report.records_quarantined + report.duplicates_dropped
    )


def test_distinct_codes_stay_few_for_many_offsets(tmp_path: Path) -> None:
    """20 records broken at 20 different offsets, 20 values that do not cast: 40 distinct
    reasons, two codes."""
    landing, lake = LocalStorage(tmp_path / "landing"), LocalStorage(tmp_path / "lake")
    _catalog_hour(landing, lake)
    broken = [f'{{"event_id": "b{i}", "pad": "{"x" * (7 * i)}" "ts": "{TS}"}}' for i in range(20)]
    uncastable = [rec(f"c{i}", temp=f"hot-{i}") for i in range(20)]
    for i, record in enumerate(broken):  # one object each: nothing resyncs past a record
        _land(landing, H9, f"broken-{i}", gzip.compress(record.encode()))
    _land(landing, H9, "uncastable", gzip.compress("".join(uncastable).encode()))
    report = _clean(landing, lake, H9)
    rows = _quarantined(lake)

    assert len({r["reason"] for r in rows}) == 40  # offsets and values differ...
    assert len({r["reason_detail"] for r in rows}) == 40
    assert Counter(r["reason_code"] for r in rows) == {"invalid_json": 20, "cannot_cast": 20}
    assert report.as_metadata()["quarantined_by_reason"] == {"cannot_cast": 20, "invalid_json": 20}
    assert report.records_quarantined == 40
