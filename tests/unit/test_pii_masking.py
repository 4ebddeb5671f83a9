"""PII rules fail closed: path rules follow a value whatever its shape or case, key rules
reach into JSON text, value rules mask matches wherever they occur (real DuckDB, real
Parquet files written by clean_hour)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from lake.cleaning.hour import clean_hour
from lake.cleaning.masking import _hmac_sql
from lake.firehose import hour_prefix, object_key
from lake.pii import REDACTED, PIIKey, install_key
from lake.pii_rules import PiiRules, parse_pii_rules, text_rule_stages
from lake.storage import LocalStorage
from lake.streams import StreamConfigError, load_streams

HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
KEY = "unit-test-pii-key"


@pytest.fixture(autouse=True)
def _pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", KEY)


def h(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def clean(
    stream: str,
    text: str,
    landing: LocalStorage,
    lake: LocalStorage,
    table: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    spec = load_streams()[stream]
    landing.write(
        object_key(stream, HOUR.replace(minute=5), object_id="o1"), gzip.compress(text.encode())
    )
    report = clean_hour(
        spec, table, landing, lake, HOUR, list(landing.list(hour_prefix(stream, HOUR)))
    )
    assert report.records_quarantined == 0, report
    return [
        r
        for o in lake.list(f"cleaned/{stream}/")
        for r in pq.read_table(lake.path(o.key)).to_pylist()
    ]


def values_of(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str)


def robot(eid: str, operator: Any) -> str:
    return json.dumps(
        {"event_id": eid, "ts": "2026-11-21T08:10:00Z", "robot_id": "R1", "operator": operator}
    )


def robot_table(**extra: str) -> dict[str, Any]:
    """A robot_telemetry catalog table (only Columns matter to cleaning): the stream's
    identity columns plus `extra` name -> Hive type."""
    types = {"event_id": "string", "ts": "timestamp", "robot_id": "string", **extra}
    columns = [{"Name": n, "Type": t} for n, t in types.items()]
    return {"Name": "robot_telemetry", "StorageDescriptor": {"Columns": columns}}


ROBOT_TABLE_OPERATOR_STRING = robot_table(operator="string")  # the catalog followed a string


def test_a_pii_object_arriving_as_a_string_is_masked_whole(landing, lake) -> None:
    text = robot("e1", "Jane Doe <jane.doe@farm.example>") + robot(
        "e2", {"name": "Jane Doe", "email": "jane.doe@farm.example"}
    )
    rows = clean("robot_telemetry", text, landing, lake, ROBOT_TABLE_OPERATOR_STRING)
    assert [r["operator"] for r in rows] == [REDACTED, REDACTED]
    assert "Jane" not in values_of(rows) and "jane.doe" not in values_of(rows)


def test_pii_paths_match_keys_in_any_case(landing, lake) -> None:
    text = robot("e1", {"Name": "Jane Doe", "EMAIL": "jane.doe@farm.example"})
    rows = clean("robot_telemetry", text, landing, lake)
    (row,) = rows
    masked = {k: v for k, v in row.items() if k.startswith("operator")}
    assert sorted(masked.values()) == sorted([REDACTED, h("jane.doe@farm.example")])


def test_an_email_anywhere_in_robot_text_is_hashed(landing, lake) -> None:
    text = json.dumps(
        {
            "event_id": "e1",
            "ts": "2026-11-21T08:10:00Z",
            "robot_id": "R1",
            "note": "call jane.doe@farm.example or bob@farm.example",
        }
    )
    (row,) = clean("robot_telemetry", text, landing, lake)
    assert row["note"] == f"call {h('jane.doe@farm.example')} or {h('bob@farm.example')}"


ACCOUNT = "111122223333"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/JaneDoe"
SESSION = "jane.doe@corp.example"
ROLE_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/{SESSION}"


def cloudtrail_records() -> list[dict[str, Any]]:
    """Shapes from AWS's CloudTrail record examples (console sign-in, AssumeRole, IAM user
    calls, access denied), with distinctive personal values."""
    base = {"eventVersion": "1.08", "awsRegion": "eu-west-1", "recipientAccountId": ACCOUNT}
    iam_user = {
        "type": "IAMUser",
        "principalId": "AIDAJ45Q7YFFAREXAMPLE",
        "arn": USER_ARN,
        "accountId": ACCOUNT,
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "userName": "JaneDoe",
    }
    return [
        {
            **base,
            "eventID": "c1",
            "eventTime": "2026-11-21T08:01:00Z",
            "eventName": "ConsoleLogin",
            "eventSource": "signin.amazonaws.com",
            "sourceIPAddress": "198.51.100.23",
            "userIdentity": iam_user,
            "responseElements": {"ConsoleLogin": "Failure"},
            "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/", "MFAUsed": "No"},
            "errorMessage": "Failed authentication",
        },
        {
            **base,
            "eventID": "c2",
            "eventTime": "2026-11-21T08:02:00Z",
            "eventName": "AssumeRole",
            "eventSource": "sts.amazonaws.com",
            "sourceIPAddress": "2001:db8:85a3::8a2e:370:7334",
            "userIdentity": iam_user,
            "requestParameters": {
                "roleArn": f"arn:aws:iam::{ACCOUNT}:role/Admin",
                "roleSessionName": SESSION,
                "serialNumber": f"arn:aws:iam::{ACCOUNT}:mfa/JaneDoe",
            },
            "responseElements": {
                "credentials": {
                    "accessKeyId": "ASIAXQJZ3EXAMPLEKEY1",
                    "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLETOKENvalue",
                    "expiration": "Nov 21, 2026, 9:02:00 AM",
                },
                "assumedRoleUser": {
                    "assumedRoleId": f"AROAJ2UCCR6DPCEXAMPLE:{SESSION}",
                    "arn": ROLE_ARN,
                },
            },
            "additionalEventData": {"ipaddress": "203.0.113.77"},
        },
        {
            **base,
            "eventID": "c3",
            "eventTime": "2026-11-21T08:03:00Z",
            "eventName": "CreateAccessKey",
            "eventSource": "iam.amazonaws.com",
            "sourceIPAddress": "198.51.100.23",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": f"AROAJ2UCCR6DPCEXAMPLE:{SESSION}",
                "arn": ROLE_ARN,
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/Admin"}
                },
            },
            "requestParameters": {"userName": "BobRoe"},
            "responseElements": {
                "accessKey": {
                    "accessKeyId": "AKIAI44QH8DHBEXAMPLE",
                    "secretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "userName": "BobRoe",
                    "status": "Active",
                }
            },
            "resources": [{"ARN": f"arn:aws:iam::{ACCOUNT}:user/BobRoe", "accountId": ACCOUNT}],
        },
        {
            **base,
            "eventID": "c4",
            "eventTime": "2026-11-21T08:04:00Z",
            "eventName": "ListBuckets",
            "eventSource": "s3.amazonaws.com",
            "sourceIPAddress": "198.51.100.23",
            "userIdentity": iam_user,
            "errorCode": "AccessDenied",
            "errorMessage": f"User: {USER_ARN} is not authorized to perform: iam:DeleteUser on "
            "resource: user BobRoe because no identity-based policy allows the iam:DeleteUser action",
        },
    ]


RAW_VALUES = [
    "JaneDoe",
    "BobRoe",
    "jane.doe",
    "198.51.100.23",
    "2001:db8:85a3",
    "203.0.113.77",
    "AKIAIOSFODNN7EXAMPLE",
    "ASIAXQJZ3EXAMPLEKEY1",
    "AKIAI44QH8DHBEXAMPLE",
    "IQoJb3JpZ2luX2VjEXAMPLETOKENvalue",
    "wJalrXUtnFEMI",
]


def test_cloudtrail_shapes_carry_no_personal_value(landing, lake) -> None:
    rows = clean("cloudtrail", json.dumps({"Records": cloudtrail_records()}), landing, lake)
    text = values_of(rows)
    assert [v for v in RAW_VALUES if v.lower() in text.lower()] == []
    by_id = {r["eventid"]: r for r in rows}
    # the user's name is hashed the same way in the ARN, the userName field and messages,
    # so the security mart's principal joins with userName and the account stays readable
    assert by_id["c1"]["useridentity_arn"] == f"arn:aws:iam::{ACCOUNT}:user/{h('JaneDoe')}"
    assert by_id["c1"]["useridentity_username"] == h("JaneDoe")
    assert by_id["c4"]["errormessage"] == (
        f"User: arn:aws:iam::{ACCOUNT}:user/{h('JaneDoe')} is not authorized to perform: "
        f"iam:DeleteUser on resource: user {h('BobRoe')} because no identity-based policy "
        "allows the iam:DeleteUser action"
    )
    assumed = by_id["c2"]
    # per-API fields are JSON text (json_fields): masked inside the text; the flat
    # `credentials` object becomes "[REDACTED]" and the rest of the response stays
    response = json.loads(assumed["responseelements"])
    assert response["credentials"] == REDACTED
    assert response["assumedRoleUser"]["arn"] == (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/{h(SESSION)}"
    )
    assert json.loads(assumed["requestparameters"])["roleSessionName"] == h(SESSION)
    assert assumed["sourceipaddress"] == h("2001:db8:85a3::8a2e:370:7334")
    assert h("203.0.113.77") in assumed["additionaleventdata"]
    created = by_id["c3"]
    assert json.loads(created["responseelements"])["accessKey"]["secretAccessKey"] == REDACTED
    assert json.loads(created["requestparameters"])["userName"] == h("BobRoe")
    assert json.loads(created["resources"]) == [
        {"ARN": f"arn:aws:iam::{ACCOUNT}:user/{h('BobRoe')}", "accountId": ACCOUNT}
    ]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_key(con, PIIKey(KEY.encode(), "env"))
    return con


def mask_texts(con: duckdb.DuckDBPyConnection, rules: PiiRules, texts: list[str | None]) -> list:
    """The texts through the masking stages cleaning runs (lake.cleaning.typing_query.typing_sql)."""
    con.execute("CREATE OR REPLACE TABLE t (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    stages = text_rule_stages("v", "m", rules, _hmac_sql, REDACTED)
    ctes = ", ".join(
        f"s{i} AS (SELECT {stage} FROM {'t' if i == 0 else f's{i - 1}'})"
        for i, stage in enumerate(stages)
    )
    return [
        r[0]
        for r in con.execute(f"WITH {ctes} SELECT m FROM s{len(stages) - 1} ORDER BY i").fetchall()
    ]


CLOUDTRAIL_RULES = load_streams()["cloudtrail"].pii


def test_text_rules_mask_every_match_and_leave_the_rest(con) -> None:
    texts = [
        None,
        "",
        "nothing to mask at 12:30:45 on 2026-11-21",
        "from 10.1.2.3 and 10.1.2.4, then ::1 and fe80::1ff:fe23:4567:890a",
        "it's jane@x.example's; DROP TABLE t; --",
        "arn:aws:iam::111122223333:role/Admin arn:aws:s3:::bucket/key eu-west-1::x",
    ]
    assert mask_texts(con, CLOUDTRAIL_RULES, texts) == [
        None,
        "",
        "nothing to mask at 12:30:45 on 2026-11-21",
        f"from {h('10.1.2.3')} and {h('10.1.2.4')}, then {h('::1')} and "
        f"{h('fe80::1ff:fe23:4567:890a')}",
        f"it's {h('jane@x.example')}'s; DROP TABLE t; --",
        "arn:aws:iam::111122223333:role/Admin arn:aws:s3:::bucket/key eu-west-1::x",
    ]


@pytest.mark.parametrize(
    "address",
    [
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "2001:db8:85a3::8a2e:370:7334",
        "2001:db8::",
        "::ffff:192.0.2.1",
        "::1",
        "FE80::1FF:FE23:4567:890A",
    ],
)
def test_ipv6_forms_are_masked_whole(con, address: str) -> None:
    assert mask_texts(con, CLOUDTRAIL_RULES, [f"from {address}."]) == [f"from {h(address)}."]


def test_pii_keys_inside_json_text(con) -> None:
    texts = [
        '[{"userName":"JaneDoe","note":"x"}]',
        '[{"USERNAME":"Jane \\"JD\\" Doe"}]',
        '[{"password":"hunter2"}]',
        '[{"userName":12345}]',
        '[{"credentials":{"anything":"secret-value","n":1},"kept":"yes"}]',
        '[{"password": 123, "kept": true}]',
        '[{"credentials":{"deeper":{"anything":"secret-value"}}}]',
        '[{"credentials":{"anything":"an \\"escaped\\" secret"}}]',
    ]
    assert mask_texts(con, CLOUDTRAIL_RULES, texts) == [
        f'[{{"userName":"{h("JaneDoe")}","note":"x"}}]',
        f'[{{"USERNAME":"{h(chr(74) + "ane " + chr(92) + chr(34) + "JD" + chr(92) + chr(34) + " Doe")}"}}]',
        f'[{{"password":"{REDACTED}"}}]',
        REDACTED,  # a number under a hash key cannot be hashed in place: the whole text goes
        # a redact key's flat object, number or array becomes the JSON string; the rest stays
        f'[{{"credentials":"{REDACTED}","kept":"yes"}}]',
        f'[{{"password": "{REDACTED}", "kept": true}}]',
        REDACTED,  # nested deeper, or a string with an escape: the whole text is redacted
        REDACTED,
    ]
    for text in mask_texts(con, CLOUDTRAIL_RULES, texts):
        assert "secret-value" not in text and "hunter2" not in text and "secret" not in text


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"pii": {"a": "encrypt"}}, "mask 'encrypt'"),
        ({"pii": {"a..b": "hash"}}, "empty field name"),
        ({"pii_keys": ["userName"]}, "must map a field to a mask"),
        ({"pii_values": {"phone": "hash"}}, "not a built-in rule"),
        ({"pii_values": {"mine": {"pattern": "(unclosed", "mask": "hash"}}}, "not a valid RE2"),
        ({"pii_values": {"mine": {"pattern": "x*", "mask": "hash"}}}, "matches the empty text"),
        ({"pii_values": {"mine": {"pattern": "x", "mask": "scramble"}}}, "mask 'scramble'"),
    ],
)
def test_bad_pii_rules_are_refused_when_streams_yaml_is_read(tmp_path, entry, message) -> None:
    body = {"format": "ndjson", "event_time": "ts", "dedup_key": "id", **entry}
    path = tmp_path / "streams.yaml"
    path.write_text(json.dumps({"streams": {"s": body}}))
    with pytest.raises(StreamConfigError, match=message):
        load_streams(path)


def test_custom_value_rule_is_applied_after_the_built_ins(con) -> None:
    rules = parse_pii_rules(
        {"pii_values": {"cow_tag": {"pattern": "COW-[0-9]{6}", "mask": "redact"}, "email": "hash"}},
        "test",
    )
    assert [r.name for r in rules.values] == ["email", "cow_tag"]
    assert mask_texts(con, rules, ["COW-123456 by a@b.example"]) == [
        f"{REDACTED} by {h('a@b.example')}"
    ]


def test_a_pii_field_the_catalog_lacks_is_masked_when_added_for_the_run(landing, lake) -> None:
    table = robot_table()
    text = robot("e1", {"name": "Jane Doe", "email": "jane.doe@farm.example"}) + robot(
        "e2", {"name": "Jane Doe", "email": "jane.doe@farm.example"}
    )
    rows = clean("robot_telemetry", text, landing, lake, table)
    assert [(r["operator_name"], r["operator_email"]) for r in rows] == [
        (REDACTED, h("jane.doe@farm.example"))
    ] * 2
