"""The Glue-style crawler on realistic objects in a real landing folder and lake."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lake.catalog_store import Catalog, stored_schema
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.hive_types import Struct
from lake.schema_drift import incompatibilities
from lake.storage import LocalStorage
from lake.streams import CrawlerSettings, load_streams

STREAMS = load_streams()
ROBOT = STREAMS["robot_telemetry"]
CLOUDTRAIL = STREAMS["cloudtrail"]
DB = "firehose_raw"
H8 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H9 = datetime(2026, 11, 21, 9, tzinfo=UTC)

# The example record of AWS's CloudTrail documentation (an EC2 call by an IAM user),
# with a requestParameters array of structs.
CLOUDTRAIL_DOC_RECORD = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "EX_PRINCIPAL_ID",
        "arn": "arn:aws:iam::123456789012:user/Alice",
        "accessKeyId": "EXAMPLE_KEY_ID",
        "accountId": "123456789012",
        "userName": "Alice",
        "sessionContext": {
            "sessionIssuer": {},
            "webIdFederationData": {},
            "attributes": {"creationDate": "2026-11-21T07:50:00Z", "mfaAuthenticated": "false"},
        },
    },
    "eventTime": "2026-11-21T08:01:02Z",
    "eventSource": "ec2.amazonaws.com",
    "eventName": "StartInstances",
    "awsRegion": "us-east-2",
    "sourceIPAddress": "198.51.100.7",
    "userAgent": "ec2-api-tools 1.6.12.2",
    "requestParameters": {
        "instancesSet": {"items": [{"instanceId": "i-EXAMPLE56789"}, {"instanceId": "i-EXAMPLE12"}]}
    },
    "responseElements": {
        "instancesSet": {
            "items": [
                {
                    "instanceId": "i-EXAMPLE56789",
                    "currentState": {"code": 0, "name": "pending"},
                    "previousState": {"code": 80, "name": "stopped"},
                }
            ]
        }
    },
    "requestID": "a9f7d6d5-example",
    "eventID": "e1b6d6d5-example",
    "readOnly": False,
    "eventType": "AwsApiCall",
    "managementEvent": True,
    "recipientAccountId": "123456789012",
}


@pytest.fixture
def landing(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "landing")


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(LocalStorage(tmp_path / "lake"), DB)


def _robot(i: int, hour: datetime = H8, **extra: object) -> dict:
    return {
        "event_id": f"e{i}",
        "ts": f"{hour:%Y-%m-%dT%H}:{i % 60:02d}:00.000Z",
        "robot_id": "R01",
        **extra,
    }


def _put(landing: LocalStorage, stream: str, hour: datetime, name: str, data: bytes) -> None:
    landing.write(object_key(stream, hour.replace(minute=1), object_id=name), data)


def _concatenated(records: list[dict]) -> bytes:
    return gzip.compress("".join(json.dumps(r) for r in records).encode())


def _crawl(spec, catalog: Catalog, landing: LocalStorage, hour: datetime = H8):
    return crawl_objects(spec, catalog, landing, list(landing.list(hour_prefix(spec.name, hour))))


def _columns(table: dict) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}


def _with(spec, **crawler: object):
    return dataclasses.replace(spec, crawler=dataclasses.replace(spec.crawler, **crawler))


def test_firehose_concatenated_json_gives_a_glue_table(landing, catalog) -> None:
    _put(
        landing,
        "robot_telemetry",
        H8,
        "a",
        _concatenated([_robot(1, sensors={"vacuum_kpa": 44.1}), _robot(2)]),
    )
    result = _crawl(ROBOT, catalog, landing)

    table = catalog.get_table("robot_telemetry")
    assert table == result.table and result.version == 1
    assert table["TableType"] == "EXTERNAL_TABLE" and table["DatabaseName"] == DB
    sd = table["StorageDescriptor"]
    assert sd["Location"] == f"{landing.uri}/robot_telemetry/"
    assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert sd["Compressed"] is True
    assert _columns(table) == {
        "event_id": "string",
        "ts": "timestamp",
        "robot_id": "string",
        "sensors": "struct<vacuum_kpa:double>",
    }
    params = table["Parameters"]
    assert params["classification"] == "json" and params["compressionType"] == "gzip"
    assert params["recordCount"] == "2" and params["objectCount"] == "1"
    assert int(params["sizeKey"]) == sum(o.size for o in landing.list())
    assert params["UPDATED_BY_CRAWLER"]
    # robot_telemetry names Firehose's folders; the partition is the arrival hour.
    assert [k["Name"] for k in table["PartitionKeys"]] == ["year", "month", "day", "hour"]
    partition = catalog.get_partition("robot_telemetry", ["2026", "11", "21", "08"])
    assert (
        partition["StorageDescriptor"]["Location"]
        == f"{landing.uri}/robot_telemetry/2026/11/21/08/"
    )
    assert partition["Parameters"]["recordCount"] == "2"


def test_cloudtrail_documentation_record_keeps_nested_types(landing, catalog) -> None:
    doc = json.dumps({"Records": [CLOUDTRAIL_DOC_RECORD]}).encode()
    _put(landing, "cloudtrail", H8, "ct", gzip.compress(doc))
    table = _crawl(CLOUDTRAIL, catalog, landing).table
    columns = _columns(table)

    assert columns["eventtime"] == "timestamp"
    assert columns["readonly"] == "boolean"
    assert columns["useridentity"] == (
        "struct<type:string,principalid:string,arn:string,accesskeyid:string,accountid:string,"
        "username:string,sessioncontext:struct<sessionissuer:string,webidfederationdata:string,"
        "attributes:struct<creationdate:timestamp,mfaauthenticated:string>>>"
    )
    # per-API sub-objects are declared json_fields: one string column each (Athena's table)
    assert columns["requestparameters"] == columns["responseelements"] == "string"
    # CloudTrail's partitions are Glue's default names for plain folders.
    assert [k["Name"] for k in table["PartitionKeys"]] == [
        "partition_0",
        "partition_1",
        "partition_2",
        "partition_3",
    ]
    name_map = json.loads(table["Parameters"]["fieldNameMap"])
    assert name_map["useridentity"] == "userIdentity"
    assert name_map["useridentity.sessioncontext"] == "sessionContext"
    # CloudTrail is read as AWS's reference table reads it (the Hive JSON SerDe matches keys
    # ignoring case, so it needs no mapping).
    sd = table["StorageDescriptor"]
    assert sd["InputFormat"] == "com.amazon.emr.cloudtrail.CloudTrailInputFormat"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hive.hcatalog.data.JsonSerDe"
    # The map brings back the original keys exactly.
    restored = stored_schema(table)
    assert list(restored.fields) == list(CLOUDTRAIL_DOC_RECORD)


def test_int_in_one_object_and_string_in_another_widens_to_string(landing, catalog) -> None:
    _put(landing, "robot_telemetry", H8, "a", _concatenated([_robot(1, code=7)]))
    landing.write(
        object_key("robot_telemetry", H8.replace(minute=2), object_id="b"),
        _concatenated([_robot(2, code="E7")]),
    )
    result = _crawl(ROBOT, catalog, landing)
    assert _columns(result.table)["code"] == "string"
    assert result.incompatible == []  # widening is BACKWARD-compatible


def test_field_in_a_later_hour_makes_version_two_with_a_diff(landing, catalog) -> None:
    _put(
        landing, "robot_telemetry", H8, "a", _concatenated([_robot(1, milking={"yield_kg": 11.5})])
    )
    _crawl(ROBOT, catalog, landing, H8)
    _put(
        landing,
        "robot_telemetry",
        H9,
        "b",
        _concatenated(
            [
                _robot(
                    2,
                    H9,
                    milking={"yield_kg": 12, "duration_s": 400},
                    milk_quality={"fat_pct": 4.1},
                )
            ]
        ),
    )
    result = _crawl(ROBOT, catalog, landing, H9)

    assert result.version == 2 and result.changed
    assert result.applied.added == ["milking.duration_s", "milk_quality"]
    assert list(_columns(result.table)) == ["event_id", "ts", "robot_id", "milking", "milk_quality"]
    version = json.loads(catalog.lake.read(f"catalog/{DB}/robot_telemetry/versions/2.json"))
    assert version["diff"]["added"] == ["milking.duration_s", "milk_quality"]
    assert catalog.lake.exists(f"catalog/{DB}/robot_telemetry/versions/1.json")
    # Re-crawling the same hour changes nothing and keeps the statistics.
    again = _crawl(ROBOT, catalog, landing, H9)
    assert again.version == 2 and not again.changed
    assert again.table["Parameters"]["recordCount"] == "2"


def test_all_null_field_is_string_until_a_value_arrives(landing, catalog) -> None:
    _put(
        landing,
        "robot_telemetry",
        H8,
        "a",
        _concatenated([_robot(1, note=None), _robot(2, note=None)]),
    )
    first = _crawl(ROBOT, catalog, landing, H8)
    assert _columns(first.table)["note"] == "string"
    _put(landing, "robot_telemetry", H9, "b", _concatenated([_robot(3, H9, note=5)]))
    second = _crawl(ROBOT, catalog, landing, H9)
    assert _columns(second.table)["note"] == "int"
    assert second.applied.widened == [] and second.applied.added == ["note"]


def test_64_levels_of_nesting(landing, catalog) -> None:
    deep: dict = {"leaf": 1}
    for level in range(63):
        deep = {f"l{level}": deep}
    _put(landing, "robot_telemetry", H8, "deep", _concatenated([_robot(1, deep=deep)]))
    hive = _columns(_crawl(ROBOT, catalog, landing).table)["deep"]
    assert hive.count("struct<") == 64 and hive.endswith("leaf:int" + ">" * 64)


def test_five_mb_single_record_is_crawled(landing, catalog) -> None:
    big = _robot(1, blob="x" * 5_000_000, tail={"after_blob": True})
    _put(landing, "robot_telemetry", H8, "big", gzip.compress(json.dumps(big).encode()))
    columns = _columns(_crawl(ROBOT, catalog, landing).table)
    assert columns["blob"] == "string" and columns["tail"] == "struct<after_blob:boolean>"


def test_empty_object_is_unknown_and_counted_not_skipped(landing, catalog) -> None:
    _put(landing, "robot_telemetry", H8, "a", _concatenated([_robot(1)]))
    landing.write(object_key("robot_telemetry", H8.replace(minute=3), object_id="empty"), b"")
    result = _crawl(ROBOT, catalog, landing)
    [(key, reason)] = result.hour.unknown.items()
    assert key.endswith("empty.gz") and "empty" in reason
    assert result.table["Parameters"]["objectCount"] == "2"
    assert result.hour.classifications == {"json": 1, "UNKNOWN": 1}


def test_csv_with_and_without_header(landing, catalog) -> None:
    spec = dataclasses.replace(ROBOT, name="meter_readings")
    with_header = "meter_id,reading,ok\nM1,12.5,true\nM2,13,false\n"
    _put(landing, "meter_readings", H8, "h", with_header.encode())
    table = _crawl(spec, catalog, landing).table
    assert table["Parameters"]["classification"] == "csv"
    assert _columns(table) == {"meter_id": "string", "reading": "double", "ok": "boolean"}
    assert table["StorageDescriptor"]["SerdeInfo"]["Parameters"]["field.delim"] == ","

    other = Catalog(catalog.lake, "other")
    spec2 = dataclasses.replace(ROBOT, name="pipes")
    _put(landing, "pipes", H8, "p", b"M1|12|x\nM2|13|y\n")
    assert _columns(_crawl(spec2, other, landing).table) == {
        "col1": "string",
        "col2": "int",
        "col3": "string",
    }


def test_parquet_schema_comes_from_the_footer(landing, catalog) -> None:
    spec = dataclasses.replace(ROBOT, name="exports", compression="none")
    rows = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "price": pa.array([1.5, 2.5]),
            "tags": pa.array([["a"], ["b", "c"]]),
            "dims": pa.array([{"w": 1, "h": 2}, {"w": 3, "h": 4}]),
        }
    )
    buf = io.BytesIO()
    pq.write_table(rows, buf)
    _put(landing, "exports", H8, "pq", buf.getvalue())
    table = _crawl(spec, catalog, landing).table
    assert table["Parameters"]["classification"] == "parquet"
    assert table["Parameters"]["recordCount"] == "2"
    assert _columns(table) == {
        "id": "bigint",
        "price": "double",
        "tags": "array<string>",
        "dims": "struct<w:bigint,h:bigint>",
    }
    assert "Parquet" in table["StorageDescriptor"]["InputFormat"]


def test_unsafe_keys_become_safe_unique_names_with_a_map_back(landing, catalog) -> None:
    evil = 'a"; drop table x; --'
    _put(
        landing,
        "robot_telemetry",
        H8,
        "a",
        _concatenated([_robot(1, **{evil: 1, "Foo": 1, "foo": "x", "9lives": True})]),
    )
    table = _crawl(ROBOT, catalog, landing).table
    names = list(_columns(table))
    # Athena's names are case-insensitive: `Foo` and `foo` are one column (its SerDe reads
    # either key), typed by merging both; cleaning still keeps two columns (section 4).
    assert names[3:] == ["a___drop_table_x____", "foo", "_9lives"]
    assert _columns(table)["foo"] == "string"
    assert all(n.replace("_", "").isalnum() and n == n.lower() for n in names)
    name_map = json.loads(table["Parameters"]["fieldNameMap"])
    assert name_map == {"a___drop_table_x____": evil, "foo": "Foo", "_9lives": "9lives"}
    assert list(stored_schema(table).fields)[3:] == [evil, "Foo", "foo", "9lives"]
    assert stored_schema(table).fields["Foo"] == "int"
    cleaned = json.loads(table["Parameters"]["columnNames"])
    assert cleaned["foo"] == ["Foo"] and cleaned["foo_2"] == ["foo"]


def test_hive_style_folders_name_the_partition_keys(landing, catalog) -> None:
    spec = dataclasses.replace(ROBOT, name="events", crawler=CrawlerSettings())
    landing.write("events/region=eu/day=2026-11-21/part-0.json", json.dumps(_robot(1)).encode())
    result = crawl_objects(spec, catalog, landing, list(landing.list("events/")))
    assert [k["Name"] for k in result.table["PartitionKeys"]] == ["region", "day"]
    assert catalog.get_partition("events", ["eu", "2026-11-21"])["Values"] == ["eu", "2026-11-21"]


def test_struct_turning_into_a_string_is_incompatible_and_not_applied(landing, catalog) -> None:
    strict = _with(ROBOT, json_on_conflict=False)  # the default makes `gate` JSON text
    _put(landing, "robot_telemetry", H8, "a", _concatenated([_robot(1, gate={"gate_id": "G1"})]))
    _crawl(strict, catalog, landing, H8)
    _put(landing, "robot_telemetry", H9, "b", _concatenated([_robot(2, H9, gate="G1")]))
    result = _crawl(strict, catalog, landing, H9)
    assert result.proposed.conflicting == ["gate: struct<gate_id:string> -> string"]
    assert result.incompatible == result.proposed.conflicting
    assert _columns(result.table)["gate"] == "struct<gate_id:string>" and result.version == 1
    # With compatibility NONE the same change is applied.
    applied = _crawl(_with(strict, compatibility="none"), catalog, landing, H9)
    assert _columns(applied.table)["gate"] == "string" and applied.version == 2


def test_compatibility_modes() -> None:
    from lake.schema_drift import SchemaDiff

    diff = SchemaDiff(
        added=["a"],
        removed=["r"],
        widened=["w: int -> bigint"],
        conflicting=["c: struct<x:int> -> string"],
    )
    assert incompatibilities(diff, "none") == []
    assert incompatibilities(diff, "backward") == ["c: struct<x:int> -> string"]
    assert incompatibilities(diff, "forward") == ["w: int -> bigint", "c: struct<x:int> -> string"]
    assert incompatibilities(diff, "full") == ["w: int -> bigint", "c: struct<x:int> -> string"]


def test_change_policies_log_and_merge_new_columns(landing, catalog) -> None:
    _put(landing, "robot_telemetry", H8, "a", _concatenated([_robot(1, code=1, s={"x": 1})]))
    _crawl(ROBOT, catalog, landing, H8)
    _put(
        landing,
        "robot_telemetry",
        H9,
        "b",
        _concatenated([_robot(2, H9, code=2**40, s={"x": 1, "y": "new"}, extra=True)]),
    )

    logged = _crawl(_with(ROBOT, change_policy="log"), catalog, landing, H9)
    assert logged.proposed.added == ["s.y", "extra"] and logged.proposed.widened == [
        "code: int -> bigint"
    ]
    assert not logged.applied and logged.version == 1

    merged = _crawl(_with(ROBOT, change_policy="merge_new_columns"), catalog, landing, H9)
    columns = _columns(merged.table)
    assert columns["code"] == "int"  # no type changes
    assert columns["s"] == "struct<x:int,y:string>" and columns["extra"] == "boolean"
    assert merged.version == 2


def test_sampling_reads_the_first_records_of_each_object_only(landing, catalog) -> None:
    records = [_robot(i) for i in range(50)] + [_robot(50, late_field=1)]
    _put(landing, "robot_telemetry", H8, "a", _concatenated(records))
    result = _crawl(_with(ROBOT, sample_records=10), catalog, landing)
    assert "late_field" not in _columns(result.table)
    assert result.hour.records_sampled == 10
    # Estimated from the sample: 10 records over a tenth of the text -> about 51.
    assert 45 <= int(result.table["Parameters"]["recordCount"]) <= 57


def test_incremental_crawls_equal_a_full_recrawl(landing, tmp_path) -> None:
    hours = [datetime(2026, 11, 21, h, tzinfo=UTC) for h in (6, 7, 8)]
    payloads = [
        [_robot(1, hours[0], a=1)],
        [_robot(2, hours[1], a=2**40, b={"x": None})],
        [_robot(3, hours[2], b={"x": "s", "y": [1]}, c=None)],
    ]
    for hour, records in zip(hours, payloads, strict=True):
        _put(landing, "robot_telemetry", hour, hour.strftime("%H"), _concatenated(records))
    incremental = Catalog(LocalStorage(tmp_path / "inc"), DB)
    for hour in hours:
        _crawl(ROBOT, incremental, landing, hour)
    full = Catalog(LocalStorage(tmp_path / "full"), DB)
    crawl_objects(ROBOT, full, landing, list(landing.list("robot_telemetry/")))

    a, b = incremental.get_table("robot_telemetry"), full.get_table("robot_telemetry")
    assert a["StorageDescriptor"]["Columns"] == b["StorageDescriptor"]["Columns"]
    for key in ("recordCount", "objectCount", "sizeKey", "fieldNameMap", "nullOnlyFields"):
        assert a["Parameters"][key] == b["Parameters"][key]
    assert _columns(a)["a"] == "bigint" and _columns(a)["b"] == "struct<x:string,y:array<int>>"


def test_stored_schema_of_no_table_is_empty() -> None:
    assert stored_schema(None) == Struct()
