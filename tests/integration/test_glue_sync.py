"""GlueSync against moto's Glue over HTTP on 127.0.0.1 (the session's ThreadedMotoServer)."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from lake.athena_ddl import table_problems
from lake.catalog_store import Catalog
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.glue_sync import GlueSync, GlueSyncError, SyncResult
from lake.storage import LocalStorage
from lake.streams import load_streams
from orchestration.aws_resources import GlueResource

pytestmark = pytest.mark.s3

LOCATION = "s3://landing/orders/"
NESTED = "struct<a:int,b:array<struct<c:string>>>"


@pytest.fixture
def glue(aws_env: str) -> Any:
    return boto3.client("glue")


@pytest.fixture
def sync(glue: Any) -> GlueSync:
    # the resource builds the client from the environment, as in production
    found = GlueResource(database=f"firehose_raw_{uuid.uuid4().hex[:8]}").sync()
    assert found is not None
    return found


def make_table(columns: dict[str, str], record_count: int = 10) -> dict[str, Any]:
    """A dict in lake.crawler's GetTable `Table` shape, read-only keys included."""
    return {
        "Name": "orders",
        "DatabaseName": "lake_local",
        "TableType": "EXTERNAL_TABLE",
        "VersionId": "3",
        "UpdateTime": "2026-11-21T08:00:00+00:00",
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t, "Comment": ""} for n, t in columns.items()],
            "Location": LOCATION,
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "Compressed": True,
            "SerdeInfo": {
                "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
                "Parameters": {"paths": ",".join(columns)},
            },
        },
        "PartitionKeys": [{"Name": f"partition_{i}", "Type": "string"} for i in range(4)],
        "Parameters": {
            "classification": "json",
            "compressionType": "gzip",
            "recordCount": record_count,  # an int on purpose: Glue wants strings
            "averageRecordSize": 120,
        },
    }


def make_partitions(hours: range, day: int = 21) -> list[dict[str, Any]]:
    out = []
    for hour in hours:
        values = ["2026", "11", f"{day:02d}", f"{hour:02d}"]
        out.append(
            {
                "Values": values,
                "StorageDescriptor": {"Location": f"{LOCATION}{'/'.join(values)}/"},
                "Parameters": {"recordCount": "5", "objectCount": 1},
            }
        )
    return out


def all_partitions(glue: Any, database: str) -> list[dict[str, Any]]:
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName="orders")
    return [p for page in pages for p in page["Partitions"]]


def version_count(glue: Any, database: str) -> int:
    pages = glue.get_paginator("get_table_versions").paginate(
        DatabaseName=database, TableName="orders"
    )
    return sum(len(page["TableVersions"]) for page in pages)


COLUMNS = {"order_id": "string", "amount": "double", "ts": "timestamp"}


def test_create_from_scratch(sync: GlueSync, glue: Any) -> None:
    result = sync.sync_table(make_table(COLUMNS), make_partitions(range(8, 11)))

    assert result == SyncResult(True, True, False, 3, 0)
    table = glue.get_table(DatabaseName=sync.database, Name="orders")["Table"]
    sd = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == list(COLUMNS.items())
    assert sd["Location"] == LOCATION
    assert [k["Name"] for k in table["PartitionKeys"]] == [f"partition_{i}" for i in range(4)]
    assert table["Parameters"]["recordCount"] == "10"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert table["VersionId"] == "1"  # ours ("3") is read-only and was not sent

    partitions = sorted(all_partitions(glue, sync.database), key=lambda p: p["Values"])
    assert [p["Values"] for p in partitions] == [
        ["2026", "11", "21", f"{h:02d}"] for h in (8, 9, 10)
    ]
    first = partitions[0]["StorageDescriptor"]
    assert first["Location"] == f"{LOCATION}2026/11/21/08/"
    assert first["Columns"] == sd["Columns"]  # inherited from the table
    assert partitions[0]["Parameters"] == {"recordCount": "5", "objectCount": "1"}


def test_resync_unchanged_is_a_no_op(sync: GlueSync, glue: Any) -> None:
    sync.sync_table(make_table(COLUMNS), make_partitions(range(8, 11)))
    versions = version_count(glue, sync.database)

    again = GlueSync(sync.database, glue)  # a fresh run: checks the database again
    result = again.sync_table(make_table(COLUMNS), make_partitions(range(8, 11)))

    assert result == SyncResult(False, False, False, 0, 3)
    assert version_count(glue, sync.database) == versions


def test_new_column_and_partitions_update_the_table(sync: GlueSync, glue: Any) -> None:
    sync.sync_table(make_table(COLUMNS), make_partitions(range(8, 11)))
    versions = version_count(glue, sync.database)

    wider = {**COLUMNS, "coupon": "string"}
    result = sync.sync_table(make_table(wider), make_partitions(range(8, 13)))

    assert result == SyncResult(False, False, True, 2, 3)
    assert version_count(glue, sync.database) == versions + 1
    table = glue.get_table(DatabaseName=sync.database, Name="orders")["Table"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][-1] == "coupon"
    assert len(all_partitions(glue, sync.database)) == 5


def test_parameter_change_updates_and_foreign_parameters_survive(sync: GlueSync, glue: Any) -> None:
    sync.sync_table(make_table(COLUMNS), [])
    current = glue.get_table(DatabaseName=sync.database, Name="orders")["Table"]
    table_input = sync.table_input(current)
    table_input["Parameters"]["projection.enabled"] = "false"  # someone else's key
    glue.update_table(DatabaseName=sync.database, TableInput=table_input)

    result = sync.sync_table(make_table(COLUMNS, record_count=11), [])

    assert result.table_updated
    params = glue.get_table(DatabaseName=sync.database, Name="orders")["Table"]["Parameters"]
    assert params["recordCount"] == "11"
    assert params["projection.enabled"] == "false"


def test_250_partitions_go_in_chunks_of_100(sync: GlueSync, glue: Any) -> None:
    batch_sizes: list[int] = []
    sync.client.meta.events.register(
        "provide-client-params.glue.BatchCreatePartition",
        lambda params, **_: batch_sizes.append(len(params["PartitionInputList"])),
    )
    partitions = [p for day in range(1, 12) for p in make_partitions(range(24), day=day)][:250]

    result = sync.sync_table(make_table(COLUMNS), partitions)

    assert batch_sizes == [100, 100, 50]
    assert result.partitions_created == 250
    seen = {tuple(p["Values"]) for p in all_partitions(glue, sync.database)}
    assert seen == {tuple(p["Values"]) for p in partitions}


def test_nested_struct_type_round_trips(sync: GlueSync, glue: Any) -> None:
    sync.sync_table(make_table({"order_id": "string", "detail": NESTED}), [])

    columns = glue.get_table(DatabaseName=sync.database, Name="orders")["Table"][
        "StorageDescriptor"
    ]["Columns"]
    assert columns[1] == {"Name": "detail", "Type": NESTED}


def test_other_partition_errors_raise_naming_the_partition(sync: GlueSync) -> None:
    def fail_one(parsed: dict[str, Any], **_: Any) -> None:
        # moto only ever reports AlreadyExists; inject the kind of error real Glue can return.
        parsed.setdefault("Errors", []).append(
            {
                "PartitionValues": ["2026", "11", "21", "09"],
                "ErrorDetail": {"ErrorCode": "InvalidInputException", "ErrorMessage": "bad"},
            }
        )

    sync.client.meta.events.register("after-call.glue.BatchCreatePartition", fail_one)

    with pytest.raises(GlueSyncError) as info:
        sync.sync_table(make_table(COLUMNS), make_partitions(range(8, 11)))

    assert "['2026', '11', '21', '09']: InvalidInputException: bad" in str(info.value)
    assert info.value.result.partitions_created == 2


def test_crawled_cloudtrail_table_syncs_as_athena_reads_it(
    sync: GlueSync, glue: Any, tmp_path: Path
) -> None:
    """A real crawl of a gzip CloudTrail object (empty objects, `accountId`/`accountid` in
    resources, `Status`/`status`) pushed to Glue: what Glue holds is what Athena needs."""
    spec = load_streams()["cloudtrail"]
    landing = LocalStorage(tmp_path / "landing")
    catalog = Catalog(LocalStorage(tmp_path / "lake"), sync.database)
    hour = datetime(2026, 11, 21, 8, 3, tzinfo=UTC)
    records = [
        {
            "eventTime": "2026-11-21T08:03:00Z",
            "eventID": "e1",
            "userIdentity": {"accountId": "1", "sessionContext": {"webIdFederationData": {}}},
            "environment": {},
            "resources": [{"ARN": "arn:aws:s3:::b", "accountId": "1"}],
            "Status": "ok",
        },
        {
            "eventTime": "2026-11-21T08:04:00Z",
            "eventID": "e2",
            "status": 2,
            "resources": [{"ARN": "arn:aws:s3:::c", "accountid": "1"}],
        },
    ]
    body = gzip.compress(json.dumps({"Records": records}).encode())
    landing.write(object_key("cloudtrail", hour, object_id="ct"), body)
    result = crawl_objects(
        spec, catalog, landing, list(landing.list(hour_prefix("cloudtrail", hour)))
    )
    partitions = [catalog.get_partition("cloudtrail", ["2026", "11", "21", "08"])]

    assert sync.sync_table(result.table, partitions).table_created
    table = glue.get_table(DatabaseName=sync.database, Name="cloudtrail")["Table"]
    sd = table["StorageDescriptor"]
    assert sd["InputFormat"] == "com.amazon.emr.cloudtrail.CloudTrailInputFormat"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hive.hcatalog.data.JsonSerDe"
    columns = {c["Name"]: c["Type"] for c in sd["Columns"]}
    assert columns["resources"] == "array<struct<arn:string,accountid:string>>"
    assert columns["environment"] == "string" and columns["status"] == "string"
    assert "struct<>" not in json.dumps(columns)
    assert table_problems({**table, "DatabaseName": sync.database}) == []
    (partition,) = glue.get_partitions(DatabaseName=sync.database, TableName="cloudtrail")[
        "Partitions"
    ]
    assert partition["StorageDescriptor"]["InputFormat"] == sd["InputFormat"]
