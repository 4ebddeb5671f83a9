"""The masking's per-record guard (lake.cleaning.typing_query.HINTED): where a set's
hints are raw_safe, only the cells of records whose raw text holds a hint or a backslash
are tested for one; the masked values are those of testing every cell."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import pytest

from lake.cleaning.columns import Column
from lake.cleaning.typed import mask_by_text
from lake.cleaning.typing_query import _REWRITTEN, HINTED, raw_safe, typing_sql
from lake.pii import PIIKey, install_key
from lake.streams import load_streams

HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
SPEC = load_streams()["robot_telemetry"]  # pii_values: email (hint "@") on every text column
EMAIL = "jane@x.example"
COLUMNS = [
    Column("event_id", ("event_id",), "string"),
    Column("ts", ("ts",), "timestamp"),
    Column("note", ("note",), "string"),
    Column("tags", ("tags",), "array<string>"),
    Column("inner_text", ("inner", "text"), "string"),
    Column("count", ("count",), "int"),
    Column("operator_email", ("operator", "email"), "string", "hash"),
]


def _record(i: int, **fields: object) -> str:
    return json.dumps({"event_id": f"e{i}", "ts": "2026-11-21T08:00:00Z"} | fields)


RECORDS = [
    _record(0, note="plain", count=3),
    _record(1, note=f"mail {EMAIL} now"),
    _record(2, tags=["a", EMAIL]),
    _record(3, inner={"text": EMAIL}),
    _record(4, note="escaped").replace("escaped", "jane\\u0040x.example"),  # no '@' in raw
    _record(5, note="\\u00e9t\\u00e9").replace("\\\\", "\\"),
    _record(6, operator={"email": EMAIL}),  # masked by its own rule, not the text rules
    _record(7, inner={"text": {"deep": [EMAIL, 1e5]}}),
    _record(8, note=None, tags=[], inner=None, count=1e5),
    "[1, 2]",
    '"a string record holding @"',
]


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    install_key(con, PIIKey(b"unit-test-pii-key", "env"))
    con.execute("CREATE TABLE src (_object BIGINT, _position BIGINT, raw VARCHAR)")
    con.executemany("INSERT INTO src VALUES (?, ?, ?)", [(0, i, r) for i, r in enumerate(RECORDS)])
    return con


def test_records_are_flagged_by_their_raw_text(con) -> None:
    table = con.sql(typing_sql("src", COLUMNS, SPEC, HOUR)).to_arrow_table()
    flagged = [i for i, f in enumerate(table[HINTED].to_pylist()) if f]
    assert flagged == [1, 2, 3, 4, 5, 6, 7, 10]  # '@' or a backslash in the record's text


def test_guarded_masking_equals_testing_every_cell(con) -> None:
    table = con.sql(typing_sql("src", COLUMNS, SPEC, HOUR)).to_arrow_table()
    guarded = mask_by_text(con, table, COLUMNS, SPEC)
    every_cell = mask_by_text(con, table.drop_columns([HINTED]), COLUMNS, SPEC)
    assert guarded.schema == every_cell.schema and HINTED not in guarded.column_names
    assert guarded.to_pylist() == every_cell.to_pylist()
    flat = json.dumps(guarded.to_pylist(), default=str)
    assert EMAIL not in flat and "jane@" not in flat
    assert guarded["note"].to_pylist()[0] == "plain"


def test_a_column_with_no_hint_in_flagged_records_is_left_whole(con) -> None:
    con.execute("DELETE FROM src WHERE _position IN (1, 4, 5)")  # the notes holding '@'
    table = con.sql(typing_sql("src", COLUMNS, SPEC, HOUR)).to_arrow_table()
    guarded = mask_by_text(con, table, COLUMNS, SPEC)
    assert guarded["note"] is table["note"] or guarded["note"].equals(table["note"])
    assert guarded["tags"].to_pylist() != table["tags"].to_pylist()  # one holds an e-mail


def test_raw_safe_hints() -> None:
    assert raw_safe(["@"]) and raw_safe(["@", "%"])
    for unsafe in (".", ":", '"', "AKIA", "arn:aws", "resource: user ", "e", "0", ""):
        assert not raw_safe(["@", unsafe])


@pytest.mark.parametrize(
    "value",
    [
        "1e5",
        "-1e-400",
        "1E400",
        "0.1e-2",
        "-0",
        "NaN",
        "-Infinity",
        "12345678901234567890123",
        '{ "a" : [ 1e2 , true , null , { } ] }',
        '[ "x" , -2.50E+3 ]',
        '"café / x y"',
        '{"k y": ["a b", {"c": "d e"}], "n": -0.0}',
    ],
)
def test_a_leaf_text_adds_only_rewritten_characters_to_its_raw_text(value: str) -> None:
    """What raw_safe stands on: from a raw value without a backslash (an escape can spell
    anything: such a record is always HINTED), json_extract_string brings into a leaf's
    text no character outside _REWRITTEN that the raw value lacks."""
    [(text,)] = duckdb.execute(
        "SELECT json_extract_string(?, ['/v']::VARCHAR[])[1]", [f'{{"v": {value}}}']
    ).fetchall()
    assert set(text) - set(value) <= _REWRITTEN
