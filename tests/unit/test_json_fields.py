"""JSON fields (docs/schema-rules.md, 3a): CloudTrail's per-API sub-objects kept as one JSON
text column, end to end on real gzip objects, the crawler, DuckDB and Parquet."""

from __future__ import annotations

import dataclasses
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from lake.catalog_store import Catalog
from lake.cleaning.hour import clean_hour
from lake.crawler import crawl_objects
from lake.firehose import hour_prefix, object_key
from lake.json_fields import JsonSettings
from lake.marts import MartSpec
from lake.redshift import columns_of, create_table_ddl, load_script, load_statements
from lake.storage import LocalStorage
from lake.streams import StreamConfigError, load_streams

STREAMS = load_streams()
CLOUDTRAIL = STREAMS["cloudtrail"]
H8 = datetime(2026, 11, 21, 8, tzinfo=UTC)
H9 = datetime(2026, 11, 21, 9, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", "test-key-for-json-fields-0123456789")


@pytest.fixture
def catalog(lake: LocalStorage) -> Catalog:
    return Catalog(lake, "firehose_raw")


def _event(i: int, hour: datetime, api: str, **extra: object) -> dict:
    return {
        "eventVersion": "1.08",
        "eventTime": f"{hour:%Y-%m-%dT%H}:{i % 60:02d}:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": api,
        "eventID": f"id-{hour:%H}-{i}",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:iam::111122223333:role/x"},
        **extra,
    }


def _many_apis(hour: datetime, n: int = 60) -> list[dict]:
    """n calls of n different APIs, each with its own requestParameters shape."""
    out = []
    for i in range(n):
        params = {f"param{i}_{k}": {"nested": k, f"deep{i}": [k]} for k in range(5)}
        out.append(_event(i, hour, f"Api{i}", requestParameters=params, responseElements=None))
    return out


def _put(landing: LocalStorage, hour: datetime, name: str, records: list[dict]) -> None:
    data = gzip.compress(json.dumps({"Records": records}).encode())
    landing.write(object_key("cloudtrail", hour.replace(minute=1), object_id=name), data)


def _objects(landing: LocalStorage, hour: datetime) -> list:
    return list(landing.list(hour_prefix("cloudtrail", hour)))


def _columns(table: dict) -> dict[str, str]:
    return {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}


def _cleaned(lake: LocalStorage) -> duckdb.DuckDBPyRelation:
    files = [str(lake.root / o.key) for o in lake.list("cleaned/cloudtrail/")]
    return duckdb.connect().read_parquet(files, union_by_name=True)


ROLE_OBJECT = {"role": {"arn": "arn:aws:iam::111122223333:role/app", "roleName": "app"}}


def _role_records(hour: datetime) -> list[dict]:
    return [
        _event(101, hour, "CreateRole", responseElements=ROLE_OBJECT),
        _event(
            102, hour, "GetFunction", responseElements={"role": "arn:aws:iam::111122223333:role/fn"}
        ),
        _event(103, hour, "ConsoleLogin", responseElements={"ConsoleLogin": "Failure"}),
    ]


def test_declared_json_fields_are_one_string_column_and_one_json_text_column(
    landing: LocalStorage, lake: LocalStorage, catalog: Catalog
) -> None:
    _put(landing, H8, "a", _many_apis(H8) + _role_records(H8))
    result = crawl_objects(CLOUDTRAIL, catalog, landing, _objects(landing, H8))
    columns = _columns(result.table)
    assert columns["requestparameters"] == "string"
    assert columns["responseelements"] == "string"
    assert not [c for c in columns if c.startswith("requestparameters_")]
    assert result.hour.conflicts == [] and result.incompatible == []
    names = json.loads(result.table["Parameters"]["columnNames"])
    assert names["responseelements_consolelogin"] == ["responseElements", "ConsoleLogin"]

    report = clean_hour(CLOUDTRAIL, result.table, landing, lake, H8, _objects(landing, H8))
    assert report.records_quarantined == 0
    cleaned = _cleaned(lake)
    assert len(cleaned.columns) < 30  # 60 APIs x 5 params would be hundreds of columns
    rows = dict(
        cleaned.query(
            "t",
            "SELECT eventname, json_extract_string(responseelements, '$.role.roleName') FROM t "
            "WHERE eventname IN ('CreateRole', 'GetFunction')",
        ).fetchall()
    )
    assert rows == {"CreateRole": "app", "GetFunction": None}
    text = cleaned.query(
        "t", "SELECT responseelements FROM t WHERE eventname = 'CreateRole'"
    ).fetchall()[0][0]
    assert json.loads(text) == ROLE_OBJECT  # the exact value, as JSON text
    login = cleaned.query(
        "t", "SELECT responseelements_consolelogin FROM t WHERE eventname = 'ConsoleLogin'"
    ).fetchall()[0][0]
    assert login == "Failure"
    described = {r[0]: r[1] for r in cleaned.query("t", "DESCRIBE t").fetchall()}
    assert described["requestparameters"] == "JSON"


def test_a_struct_string_conflict_under_a_key_becomes_json_and_never_blocks(
    landing: LocalStorage, lake: LocalStorage, catalog: Catalog
) -> None:
    spec = dataclasses.replace(CLOUDTRAIL, json=JsonSettings())  # nothing declared
    _put(landing, H8, "a", [_role_records(H8)[0]])
    first = crawl_objects(spec, catalog, landing, _objects(landing, H8))
    assert _columns(first.table)["responseelements"].startswith("struct<role:struct<")
    _put(landing, H9, "b", [_role_records(H9)[1]])
    second = crawl_objects(spec, catalog, landing, _objects(landing, H9))
    assert second.incompatible == []  # the schema_compatible check passes (backward)
    assert second.hour.json_fields == [("responseElements", "role")]
    assert _columns(second.table)["responseelements"] == "struct<role:string>"
    assert json.loads(second.table["Parameters"]["jsonFields"]) == [["responseElements", "role"]]
    assert any("(JSON text)" in w for w in second.applied.widened)
    report = clean_hour(spec, second.table, landing, lake, H9, _objects(landing, H9))
    assert report.records_quarantined == 0 and report.records_cleaned == 1
    value = _cleaned(lake).query("t", "SELECT responseelements_role FROM t").fetchall()[0][0]
    assert (
        json.loads(value) == "arn:aws:iam::111122223333:role/fn"
    )  # a JSON string, still valid JSON


def test_a_conflict_within_one_sample_becomes_json(landing: LocalStorage, catalog: Catalog) -> None:
    spec = dataclasses.replace(CLOUDTRAIL, json=JsonSettings())
    _put(landing, H8, "a", _role_records(H8))
    result = crawl_objects(spec, catalog, landing, _objects(landing, H8))
    assert result.hour.conflicts == []
    assert result.hour.json_fields == [("responseElements", "role")]
    assert _columns(result.table)["responseelements"] == "struct<role:string,consolelogin:string>"


def test_structs_with_many_shapes_are_proposed_not_applied(
    landing: LocalStorage, catalog: Catalog
) -> None:
    spec = dataclasses.replace(CLOUDTRAIL, json=JsonSettings())
    _put(landing, H8, "a", _many_apis(H8, 25))
    result = crawl_objects(spec, catalog, landing, _objects(landing, H8))
    assert result.hour.json_field_candidates == ["requestParameters"]
    assert _columns(result.table)["requestparameters"].startswith("struct<")
    few = dataclasses.replace(spec, crawler=dataclasses.replace(spec.crawler, json_max_shapes=30))
    again = crawl_objects(few, Catalog(catalog.lake, "other"), landing, _objects(landing, H8))
    assert again.hour.json_field_candidates == []


def test_a_pii_path_inside_a_json_field_masks_that_key_in_its_text(
    landing: LocalStorage, lake: LocalStorage, catalog: Catalog
) -> None:
    pii = dataclasses.replace(
        CLOUDTRAIL.pii, paths={**CLOUDTRAIL.pii.paths, "requestParameters.policyName": "redact"}
    )
    spec = dataclasses.replace(CLOUDTRAIL, pii=pii)
    params = {"policyName": "secret-policy", "roleName": "app"}
    _put(landing, H8, "a", [_event(1, H8, "PutRolePolicy", requestParameters=params)])
    result = crawl_objects(spec, catalog, landing, _objects(landing, H8))
    clean_hour(spec, result.table, landing, lake, H8, _objects(landing, H8))
    text = _cleaned(lake).query("t", "SELECT requestparameters FROM t").fetchall()[0][0]
    assert json.loads(text) == {"policyName": "[REDACTED]", "roleName": "app"}


def test_json_text_columns_are_super_in_redshift_loaded_with_json_parse(tmp_path: Path) -> None:
    con = duckdb.connect()
    result = con.sql(
        "SELECT DATE '2026-11-21' AS dt, '{\"a\": [1, 2]}'::JSON AS params, 'x' AS name"
    )
    from lake.json_fields import as_json_columns

    table = as_json_columns(result.to_arrow_table(), ["params"])
    assert isinstance(table.schema.field("params").type, pa.JsonType)
    columns = columns_of(table)
    assert [c.type for c in columns][:2] == ["DATE", "SUPER"]
    spec = MartSpec("api_calls", tmp_path / "api_calls.sql", "SELECT 1", ())
    ddl = create_table_ddl(spec, columns)
    setup, transaction = load_statements(spec, columns, "s3://b/m.json", "2026-11-21", [])
    script = load_script(setup, transaction)
    parsed = [s for s in sqlglot.parse(ddl + script, read="redshift") if s is not None]
    assert not any(isinstance(s, exp.Command) for s in parsed)
    assert '"params" SUPER' in ddl
    assert '"params" VARCHAR(65535)' in transaction[0]
    assert 'JSON_PARSE("params")' in transaction[3]


def test_json_fields_syntax_is_checked(tmp_path: Path) -> None:
    base = {"format": "ndjson", "event_time": "ts", "dedup_key": "id"}
    for bad in ({"a": {"promote": {"b": "struct"}}}, {"ts": {}}, {"a": {"x": 1}}, ["a", "a.b"]):
        path = tmp_path / "streams.yaml"
        path.write_text(json.dumps({"streams": {"s": {**base, "json_fields": bad}}}))
        with pytest.raises(StreamConfigError):
            load_streams(path)
    assert [f.path for f in CLOUDTRAIL.json.fields] == [
        ("requestParameters",),
        ("responseElements",),
        ("additionalEventData",),
        ("serviceEventDetails",),
    ]
