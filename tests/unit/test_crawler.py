"""The Glue-shaped crawler over real files in a LocalStorage lake."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lake.crawler import Catalog, crawl_hour
from lake.firehose import object_key
from lake.storage import LocalStorage
from lake.streams import load_streams

STREAMS = load_streams()
SPEC = STREAMS["robot_telemetry"]
DB = "firehose_raw"
LANDING_URI = "file:///landing"
H1 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H2 = datetime(2026, 11, 21, 9, tzinfo=UTC)


def _gz(records: list[dict]) -> bytes:
    return gzip.compress("".join(json.dumps(r) for r in records).encode())


def _rec(i: int, hour: datetime, **extra: object) -> dict:
    return {
        "event_id": f"e{i}",
        "ts": hour.replace(minute=i % 60).isoformat(),
        "robot_id": "R1",
        "yield": i,
        "sensors": {"vacuum_kpa": 42.1},
        **extra,
    }


HOUR1 = [
    (object_key(SPEC.name, H1.replace(minute=1), object_id="a"), _gz([_rec(1, H1), _rec(2, H1)])),
    (object_key(SPEC.name, H1.replace(minute=2), object_id="b"), _gz([_rec(3, H1)])),
]
HOUR2 = [
    (
        object_key(SPEC.name, H2.replace(minute=5), object_id="c"),
        _gz(
            [_rec(4, H2, firmware="5.0.0"), _rec(5, H2, sensors={"vacuum_kpa": 1, "temp_c": 38.5})]
        ),
    )
]


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "lake")


def _columns(table: dict) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}


def test_first_crawl_creates_version_one_with_glue_shape(lake: LocalStorage) -> None:
    catalog = Catalog(lake, DB)
    result = crawl_hour(SPEC, catalog, LANDING_URI, H1, HOUR1)
    assert result.version == 1
    assert result.changed is True
    assert result.diff["added"] == ["event_id", "ts", "robot_id", "yield", "sensors"]

    table = json.loads(lake.read(f"catalog/{DB}/{SPEC.name}.json"))
    assert table == catalog.get_table(SPEC.name)
    assert table["Name"] == "robot_telemetry"
    assert table["DatabaseName"] == DB
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["VersionId"] == "1"
    sd = table["StorageDescriptor"]
    for k in ("Columns", "Location", "InputFormat", "OutputFormat", "Compressed", "SerdeInfo"):
        assert k in sd
    assert sd["Location"] == "file:///landing/robot_telemetry/"
    assert sd["Compressed"] is True
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert all(set(c) >= {"Name", "Type"} for c in sd["Columns"])
    assert _columns(table) == {
        "event_id": "string",
        "ts": "timestamp",  # the event time field
        "robot_id": "string",
        "yield": "int",
        "sensors": "struct<vacuum_kpa:double>",
    }
    assert [p["Name"] for p in table["PartitionKeys"]] == [
        "partition_0",
        "partition_1",
        "partition_2",
        "partition_3",
    ]
    params = table["Parameters"]
    assert params["classification"] == "json"
    assert params["compressionType"] == "gzip"
    assert params["UPDATED_BY_CRAWLER"]
    size = sum(len(data) for _, data in HOUR1)
    assert params["recordCount"] == "3"
    assert params["objectCount"] == "2"
    assert params["sizeKey"] == str(size)
    assert params["averageRecordSize"] == str(size // 3)

    assert lake.exists(f"catalog/{DB}/{SPEC.name}/versions/1.json")
    partition = json.loads(lake.read(f"catalog/{DB}/{SPEC.name}/partitions/2026-11-21-08.json"))
    assert partition["Values"] == ["2026", "11", "21", "08"]
    assert (
        partition["StorageDescriptor"]["Location"]
        == "file:///landing/robot_telemetry/2026/11/21/08/"
    )
    assert partition["Parameters"]["recordCount"] == "3"


def test_new_field_in_second_hour_creates_version_two(lake: LocalStorage) -> None:
    catalog = Catalog(lake, DB)
    crawl_hour(SPEC, catalog, LANDING_URI, H1, HOUR1)
    result = crawl_hour(SPEC, catalog, LANDING_URI, H2, HOUR2)
    assert result.version == 2
    assert result.changed is True
    assert result.diff["added"] == ["firmware"]
    assert result.diff["removed"] == []
    assert result.diff["widened"] == [
        "sensors: struct<vacuum_kpa:double> -> struct<vacuum_kpa:double,temp_c:double>"
    ]

    v1 = json.loads(lake.read(f"catalog/{DB}/{SPEC.name}/versions/1.json"))
    v2 = json.loads(lake.read(f"catalog/{DB}/{SPEC.name}/versions/2.json"))
    assert v1["version"] == 1 and v2["version"] == 2
    assert "firmware" not in _columns(v1["table"])
    assert v2["diff"]["added"] == ["firmware"]
    table = catalog.get_table(SPEC.name)
    assert table is not None
    assert table["VersionId"] == "2"
    assert list(_columns(table)) == ["event_id", "ts", "robot_id", "yield", "sensors", "firmware"]
    # int then int (vacuum_kpa 1 in hour 2) stays double: widening never narrows
    assert _columns(table)["sensors"] == "struct<vacuum_kpa:double,temp_c:double>"
    assert table["Parameters"]["recordCount"] == "5"
    assert table["Parameters"]["objectCount"] == "3"
    sizes = sum(len(d) for _, d in HOUR1 + HOUR2)
    assert table["Parameters"]["sizeKey"] == str(sizes)
    assert sorted(
        o.key.rsplit("/", 1)[1] for o in lake.list(f"catalog/{DB}/{SPEC.name}/versions/")
    ) == [
        "1.json",
        "2.json",
    ]


def test_recrawl_is_idempotent(lake: LocalStorage) -> None:
    catalog = Catalog(lake, DB)
    crawl_hour(SPEC, catalog, LANDING_URI, H1, HOUR1)
    crawl_hour(SPEC, catalog, LANDING_URI, H2, HOUR2)
    before = catalog.get_table(SPEC.name)
    again = crawl_hour(SPEC, catalog, LANDING_URI, H1, HOUR1)
    assert again.changed is False
    assert again.version == 2
    assert again.diff == {"added": [], "removed": [], "widened": []}
    after = catalog.get_table(SPEC.name)
    assert after is not None and before is not None
    assert after["VersionId"] == "2"
    for k in ("recordCount", "objectCount", "sizeKey", "averageRecordSize"):
        assert after["Parameters"][k] == before["Parameters"][k]
    assert after["StorageDescriptor"]["Columns"] == before["StorageDescriptor"]["Columns"]
    assert not lake.exists(f"catalog/{DB}/{SPEC.name}/versions/3.json")


def test_recrawl_with_more_objects_replaces_the_hour_stats(lake: LocalStorage) -> None:
    catalog = Catalog(lake, DB)
    crawl_hour(SPEC, catalog, LANDING_URI, H1, HOUR1[:1])
    crawl_hour(SPEC, catalog, LANDING_URI, H1, HOUR1)  # the hour grew
    table = catalog.get_table(SPEC.name)
    assert table is not None
    assert table["Parameters"]["recordCount"] == "3"
    assert table["Parameters"]["objectCount"] == "2"


def test_unreadable_object_is_reported(lake: LocalStorage) -> None:
    good_key, good = HOUR1[0]
    bad_key = object_key(SPEC.name, H1.replace(minute=9), object_id="bad")
    bad = gzip.compress(b'{"event_id":"x"}' * 50)[:30]
    result = crawl_hour(
        SPEC, Catalog(lake, DB), LANDING_URI, H1, [(good_key, good), (bad_key, bad)]
    )
    assert list(result.hour.unreadable) == [bad_key]
    assert "gzip" in result.hour.unreadable[bad_key]
    assert result.hour.objects == 2
    assert result.hour.records == 2  # only the readable object's records
    assert "ts" in _columns(result.table)


def test_bad_records_are_ignored_for_inference(lake: LocalStorage) -> None:
    text = (
        '{"event_id":"a","ts":"2026-11-21T08:00:00Z","n":1}{"event_id":"b","n":'
        + '{"event_id":"c","ts":"2026-11-21T08:01:00Z","n":2}'
    )
    key = object_key(SPEC.name, H1, object_id="m")
    result = crawl_hour(SPEC, Catalog(lake, DB), LANDING_URI, H1, [(key, text.encode())])
    assert result.hour.records == 2
    assert _columns(result.table) == {"event_id": "string", "ts": "timestamp", "n": "int"}


def test_type_conflict_is_reported_and_widened_to_string(lake: LocalStorage) -> None:
    catalog = Catalog(lake, DB)
    crawl_hour(SPEC, catalog, LANDING_URI, H1, HOUR1)
    odd = [(object_key(SPEC.name, H2, object_id="o"), _gz([_rec(9, H2, sensors="offline")]))]
    result = crawl_hour(SPEC, catalog, LANDING_URI, H2, odd)
    assert _columns(result.table)["sensors"] == "string"
    assert any(c.startswith("sensors:") for c in result.hour.conflicts)
    assert result.diff["widened"] == ["sensors: struct<vacuum_kpa:double> -> string"]
