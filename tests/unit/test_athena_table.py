"""The crawled Glue table is one Athena can query: real crawls over gzip CloudTrail objects
(nested userIdentity, resources arrays, empty objects, keys equal but for case, hostile
keys), every type and the table's DDL checked with sqlglot."""

from __future__ import annotations

import copy
import dataclasses
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from lake.athena_ddl import ddl_type, show_create_table, table_problems, type_problems
from lake.catalog_store import Catalog, column_assignment, stored_schema
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.hive_types import Array, Struct
from lake.storage import LocalStorage
from lake.streams import load_streams
from lake.table_formats import CLOUDTRAIL_INPUT, HIVE_JSON_SERDE, OPENX_JSON_SERDE, TEXT_INPUT

CLOUDTRAIL = load_streams()["cloudtrail"]
ROBOT = load_streams()["robot_telemetry"]
H8 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H9 = datetime(2026, 11, 21, 9, tzinfo=UTC)
LONG_KEY = "K" * 300
HOSTILE = {
    "a`b": 1,
    "with space": "x",
    "ünïcødé": "u",
    LONG_KEY: True,
    "select": "kw",
    "end": 2,
    "'; DROP TABLE x; --": "sql",
    "back\\slash": "b",
}


def _record(i: int, **extra: object) -> dict:
    return {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:alice",
            "arn": "arn:aws:sts::123456789012:assumed-role/Admin/alice",
            "accountId": "123456789012",
            "sessionContext": {
                "sessionIssuer": {},
                "webIdFederationData": {},
                "attributes": {"creationDate": "2026-11-21T07:50:00Z", "mfaAuthenticated": "false"},
            },
        },
        "eventTime": f"2026-11-21T08:{i % 60:02d}:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "environment": {},
        "requestParameters": {"bucketName": "b", "Host": "b.s3.amazonaws.com"},
        "eventID": f"e-{i}",
        **extra,
    }


RESOURCES_CAMEL = [
    {"ARN": "arn:aws:s3:::b/k", "accountId": "123456789012", "type": "AWS::S3::Object"}
]
RESOURCES_LOWER = [
    {"ARN": "arn:aws:s3:::b", "accountid": "123456789012", "type": "AWS::S3::Bucket"}
]


def _put(landing: LocalStorage, hour: datetime, name: str, records: list[dict]) -> None:
    body = gzip.compress(json.dumps({"Records": records}).encode())
    landing.write(object_key("cloudtrail", hour.replace(minute=3), object_id=name), body)


def _crawl(spec, catalog: Catalog, landing: LocalStorage, hour: datetime = H8) -> dict:
    objects = list(landing.list(hour_prefix(spec.name, hour)))
    return crawl_objects(spec, catalog, landing, objects).table


def _columns(table: dict) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}


@pytest.fixture
def landing(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "landing")


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog(LocalStorage(tmp_path / "lake"), "firehose_raw")


@pytest.fixture
def crawled(landing: LocalStorage, catalog: Catalog) -> dict:
    _put(landing, H8, "a", [_record(1, resources=RESOURCES_CAMEL, Status="ok")])
    _put(
        landing,
        H8,
        "b",
        [_record(2, resources=RESOURCES_LOWER, status=1, items=[{}], **HOSTILE)],
    )
    return _crawl(CLOUDTRAIL, catalog, landing)


def test_cloudtrail_is_read_as_aws_reference_table_reads_it(crawled: dict) -> None:
    sd = crawled["StorageDescriptor"]
    assert sd["InputFormat"] == CLOUDTRAIL_INPUT
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    assert sd["SerdeInfo"]["SerializationLibrary"] == HIVE_JSON_SERDE
    # The Hive JSON SerDe has no mapping.* or paths (OpenX's); it matches keys ignoring case.
    params = sd["SerdeInfo"]["Parameters"]
    assert not any(k.startswith("mapping.") or k in ("paths", "case.insensitive") for k in params)
    assert "yyyy-MM-dd'T'HH:mm:ss'Z'" in params["timestamp.formats"].split(",")


def test_no_empty_struct_anywhere(crawled: dict) -> None:
    columns = _columns(crawled)
    assert all("struct<>" not in t for t in columns.values())
    assert columns["environment"] == "string"  # only ever `{}`: its JSON text
    assert columns["items"] == "array<string>"  # [{}] too, inside an array
    assert "sessionissuer:string,webidfederationdata:string," in columns["useridentity"]
    empty = json.loads(crawled["Parameters"]["emptyObjectFields"])
    assert ["environment"] in empty and ["items", None] in empty
    assert ["userIdentity", "sessionContext", "webIdFederationData"] in empty


def test_later_non_empty_shape_merges_into_the_empty_object(landing, catalog, crawled) -> None:
    later = _record(3)
    later["userIdentity"]["sessionContext"]["webIdFederationData"] = {
        "federatedProvider": "arn:aws:iam::123456789012:oidc-provider/x",
        "attributes": {"aud": "sts"},
    }
    later["items"] = [{"itemId": "i-1"}]
    _put(landing, H9, "c", [later])
    result = crawl_objects(
        CLOUDTRAIL, catalog, landing, list(landing.list(hour_prefix("cloudtrail", H9)))
    )
    columns = _columns(result.table)
    assert (
        "webidfederationdata:struct<federatedprovider:string,attributes:struct<aud:string>>"
        in columns["useridentity"]
    )
    assert columns["items"] == "array<struct<itemid:string>>"
    assert columns["environment"] == "string"
    assert not result.incompatible and not result.proposed.conflicting
    assert "userIdentity.sessionContext.webIdFederationData.federatedProvider" in (
        result.applied.added
    )


def test_keys_equal_but_for_case_are_one_athena_field(crawled: dict) -> None:
    columns = _columns(crawled)
    assert columns["resources"] == "array<struct<arn:string,accountid:string,type:string>>"
    # Top level too: one column `status` (string + int = string), no `status_2`.
    assert columns["status"] == "string" and "status_2" not in columns
    lowered = [n.lower() for n in columns]
    assert len(lowered) == len(set(lowered))
    # The crawler still knows both keys with their own types...
    schema = stored_schema(crawled)
    assert schema.fields["Status"] == "string" and schema.fields["status"] == "int"
    element = schema.fields["resources"]
    assert isinstance(element, Array) and isinstance(element.element, Struct)
    assert sorted(element.element.fields) == ["ARN", "accountId", "accountid", "type"]
    # ...so cleaning keeps both values, in columns of their own.
    names = column_assignment(crawled)
    assert names[("Status",)] == "status" and names[("status",)] == "status_2"
    assert names[("resources",)] == "resources"  # arrays stay one JSON text column


def test_every_type_and_the_ddl_parse_in_hive_and_athena(crawled: dict) -> None:
    assert table_problems(crawled) == []
    for column in crawled["StorageDescriptor"]["Columns"]:
        assert type_problems(column["Type"], column["Name"]) == []
        cast = sqlglot.parse_one(f"CAST(x AS {ddl_type(column['Type'])})", read="hive")
        assert isinstance(cast, exp.Cast)
    ddl = show_create_table(crawled)
    for dialect in ("hive", "athena"):
        statements = sqlglot.parse(ddl, read=dialect)
        assert len(statements) == 1 and isinstance(statements[0], exp.Create)
        parsed = [c.name for c in statements[0].find(exp.Schema).expressions]
        assert parsed == list(_columns(crawled))
    assert "STORED AS INPUTFORMAT\n  'com.amazon.emr.cloudtrail.CloudTrailInputFormat'" in ddl
    assert "PARTITIONED BY (\n  `partition_0` string," in ddl


def test_hostile_keys_give_safe_names_and_are_listed_as_unreadable(crawled: dict) -> None:
    columns = _columns(crawled)
    for name in ("a_b", "with_space", "_n_c_d_", "select", "end", "back_slash"):
        assert name in columns, name
    assert max(len(n) for n in columns) <= 127
    unreadable = json.loads(crawled["Parameters"]["athenaUnreadableFields"])
    # The Hive JSON SerDe finds a key only by its name ignoring case: renamed keys read NULL.
    assert "a_b" in unreadable and "with_space" in unreadable and "select" not in unreadable
    assert "useridentity" not in unreadable and "resources.accountid" not in unreadable
    ddl = show_create_table(crawled)
    assert """COMMENT 'from JSON key "\\'; DROP TABLE x; --"'""" in ddl
    assert len(sqlglot.parse(ddl, read="hive")) == 1


def test_type_problems_catch_what_athena_refuses() -> None:
    assert type_problems("struct<a:struct<>>", "c") == [
        "c.a: struct<> (a row type needs at least one field)"
    ]
    assert type_problems("array<struct<id:int,ID:string>>", "c") == [
        "c[]: fields equal but for case: id"
    ]
    assert type_problems("struct<end:int,select:string,type:array<string>>", "c") == []
    table = {
        "Name": "t",
        "DatabaseName": "d",
        "StorageDescriptor": {
            "Columns": [{"Name": "A", "Type": "int"}, {"Name": "a", "Type": "string"}],
            "Location": "s3://b/t/",
            "InputFormat": TEXT_INPUT,
            "OutputFormat": "o",
            "SerdeInfo": {"SerializationLibrary": OPENX_JSON_SERDE},
        },
    }
    assert table_problems(table) == ["columns equal but for case: a"]


def test_other_json_records_keys_say_athena_cannot_unwrap_them(landing, catalog) -> None:
    spec = dataclasses.replace(CLOUDTRAIL, name="wrapped", records_key="items")
    record = copy.deepcopy(_record(1))
    body = gzip.compress(json.dumps({"items": [record]}).encode())
    landing.write(object_key("wrapped", H8.replace(minute=3), object_id="w"), body)
    table = _crawl(spec, catalog, landing)
    sd = table["StorageDescriptor"]
    assert sd["InputFormat"] == TEXT_INPUT
    assert table["Parameters"]["athenaReadable"] == "false"
    assert "'items'" in table["Parameters"]["athenaNote"]
    assert table_problems(table) == []


def test_concatenated_json_stays_on_openx_with_mappings(landing, catalog) -> None:
    record = {"event_id": "e1", "ts": "2026-11-21T08:00:00Z", "Robot-Id": "R1", "gate": {}}
    data = gzip.compress(json.dumps(record).encode())
    landing.write(object_key("robot_telemetry", H8.replace(minute=1), object_id="r"), data)
    table = _crawl(ROBOT, catalog, landing)
    serde = table["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == OPENX_JSON_SERDE
    assert serde["Parameters"]["mapping.robot_id"] == "Robot-Id"
    assert serde["Parameters"]["case.insensitive"] == "FALSE"
    assert _columns(table)["gate"] == "string"
    assert json.loads(table["Parameters"]["athenaUnreadableFields"]) == []
    assert table_problems(table) == []
