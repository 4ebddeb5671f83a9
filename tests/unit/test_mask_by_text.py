"""Masking once per distinct text (lake.cleaning.typed.mask_by_text) gives what masking
each record's cell alone gives: same values, same types, same order; and the masking
query is written once per set of columns sharing their rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pytest

from lake.cleaning.columns import Column
from lake.cleaning.typed import mask_by_text
from lake.cleaning.typing_query import masked_by_value, masking_sql, typing_sql
from lake.pii import PIIKey, install_key
from lake.streams import load_streams

HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
SPEC = load_streams()["cloudtrail"]
IP, EMAIL = "10.1.2.3", "jane@x.example"
ARN = "arn:aws:iam::111122223333:user/ops/jane"
COLUMNS = [
    Column("eventtime", ("eventTime",), "timestamp"),
    Column("eventid", ("eventID",), "string"),
    Column("sourceipaddress", ("sourceIPAddress",), "string", "hash"),
    Column("useridentity_username", ("userIdentity", "userName"), "string", "hash"),
    Column("useridentity_arn", ("userIdentity", "arn"), "string"),
    Column("errormessage", ("errorMessage",), "string"),
    Column("readonly", ("readOnly",), "boolean"),
    Column("credentials", ("credentials",), "int", "redact"),
    Column("requestparameters", ("requestParameters",), "string", json=True),
    Column(
        "responseelements",
        ("responseElements",),
        "string",
        json=True,
        inner_keys=(("mail", "hash"),),
    ),
    # names that the masking query's own columns could take
    Column("_t", ("a",), "string"),
    Column("v", ("b",), "string"),
    Column("m__t", ("c",), "string"),
]


def _record(i: int, **fields: object) -> str:
    base = {"eventID": f"e{i}", "eventTime": "2026-11-21T08:00:00Z", "readOnly": i % 2 == 0}
    return json.dumps(base | fields)


RECORDS = [
    _record(0, sourceIPAddress=IP, errorMessage=f"user {EMAIL} from {IP}", a=IP, b=IP),
    _record(1, sourceIPAddress=IP, userIdentity={"userName": "jane", "arn": ARN}, c=ARN),
    _record(2, errorMessage=None, a=None, requestParameters=None, responseElements=None),
    _record(3, requestParameters={"userName": "bob", "password": 7, "ip": IP}, credentials=5),
    _record(4, requestParameters={"userName": "bob", "password": 7, "ip": IP}, a="plain"),
    _record(5, responseElements={"mail": EMAIL, "ok": True}, b={"x": [IP]}),
    _record(6, responseElements="not an object", c=""),
    _record(7, responseElements={"credentials": {"deep": {"er": 1}}}, a="plain", b="plain"),
    "[1, 2]",
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_key(con, PIIKey(b"unit-test-pii-key", "env"))
    rows = [(0, i, raw) for i, raw in enumerate(RECORDS)]
    con.execute("CREATE TABLE src (_object BIGINT, _position BIGINT, raw VARCHAR)")
    con.executemany("INSERT INTO src VALUES (?, ?, ?)", rows)
    return con


def _each_cell_alone(con: duckdb.DuckDBPyConnection, texts: pa.Table) -> dict[str, list]:
    """Every masked cell of `texts` through masking_sql on its own (no dictionary, no
    columns sharing a query); the typed values of the other columns as they are."""
    out = {}
    for c in COLUMNS:
        if not masked_by_value(c, SPEC):
            out[c.name] = texts[c.name].to_pylist()
            continue
        values = []
        for text in texts[c.name].cast(pa.string()).to_pylist():
            con.register("one_text", pa.table({"v": pa.array([text], pa.string())}))
            [(_, value)] = con.execute(masking_sql("one_text", [c], SPEC)).fetchall()
            values.append(value)
        out[c.name] = values
    con.unregister("one_text")
    return out


def test_masking_each_text_once_equals_masking_every_cell(con) -> None:
    assert sum(masked_by_value(c, SPEC) for c in COLUMNS) == 11  # all but time, boolean
    texts = con.sql(typing_sql("src", COLUMNS, SPEC, HOUR)).to_arrow_table()
    assert texts["_t"].to_pylist()[0] == IP  # left as text by the query...
    once = mask_by_text(con, texts, COLUMNS, SPEC)
    alone = _each_cell_alone(con, texts)
    assert {c.name: once[c.name].to_pylist() for c in COLUMNS} == alone
    flat = json.dumps(once.to_pylist(), default=str)
    assert IP not in flat and EMAIL not in flat and "jane" not in flat  # ...and masked after


def test_no_rows_keep_the_masked_types(con) -> None:
    full = mask_by_text(
        con, con.sql(typing_sql("src", COLUMNS, SPEC, HOUR)).to_arrow_table(), COLUMNS, SPEC
    )
    con.execute("DELETE FROM src")
    texts = con.sql(typing_sql("src", COLUMNS, SPEC, HOUR)).to_arrow_table()
    once = mask_by_text(con, texts, COLUMNS, SPEC)
    assert once.num_rows == 0 and once.schema == full.schema


def test_each_rule_is_written_once_however_many_columns_share_it() -> None:
    """Per column and record, CloudTrail's 30 text columns made a 600 kB typing query that
    took seconds to plan for one record (bench/README.md "Masking packed")."""
    one, many = ([Column(f"c{i}", (f"c{i}",), "string") for i in range(n)] for n in (1, 30))
    for rule in SPEC.pii.text_rules:
        pattern = rule.pattern.replace("'", "''")
        assert (
            masking_sql("t", many, SPEC).count(pattern)
            == masking_sql("t", one, SPEC).count(pattern)
            > 0
        )


def test_a_field_named_like_another_fields_text_keeps_its_own_value(con) -> None:
    """`v_x` beside `x`, `m_y` beside the masked `y`: each column is its own field's value
    (the query's inner names for a leaf's text were `v_<name>` and `m_<name>`, and the
    column `v_x` came out holding the text of `x`)."""
    spec = load_streams()["robot_telemetry"]
    columns = [
        Column("event_id", ("event_id",), "string"),
        Column("ts", ("ts",), "timestamp"),
        Column("x", ("x",), "string"),
        Column("v_x", ("v_x",), "string"),
        Column("y", ("y",), "string"),
        Column("m_y", ("m_y",), "string"),
    ]
    record = {"event_id": "e", "ts": "2026-11-21T08:00:00Z", "x": "1", "v_x": "2"}
    record |= {"y": EMAIL, "m_y": "3"}
    con.execute("DELETE FROM src")
    con.execute("INSERT INTO src VALUES (0, 0, ?)", [json.dumps(record)])
    table = con.sql(typing_sql("src", columns, spec, HOUR)).to_arrow_table()
    table = mask_by_text(con, table, columns, spec)
    [row] = table.to_pylist()
    assert (row["x"], row["v_x"], row["m_y"]) == ("1", "2", "3")
    assert row["y"] not in (EMAIL, None)
