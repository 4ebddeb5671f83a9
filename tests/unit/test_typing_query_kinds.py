"""The typing query's record kinds (read from a record's first character, whitespace before
it skipped) and its event date `_dt`."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb

from lake.cleaning.columns import Column
from lake.cleaning.typing_query import typing_sql
from lake.streams import load_streams

HOUR = datetime(2026, 11, 21, 8, tzinfo=UTC)
SPEC = load_streams()["robot_telemetry"]
COLUMNS = [Column("event_id", ("event_id",), "string"), Column("ts", ("ts",), "timestamp")]
OBJECT = '{"event_id": "e", "ts": "2026-11-21T08:30:00Z"}'
KINDS = {
    OBJECT: None,
    " " + OBJECT: None,
    "[1, 2]": "array",
    "  [1]": "array",
    "\n\t[1]": "array",
    '"text"': "string",
    ' "text"': "string",
    "true": "boolean",
    "false": "boolean",
    "null": "null",
    "-1.5": "number",
    " 7": "number",
}


def _typed(records: list[str]) -> dict[str, list]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE src (_object BIGINT, _position BIGINT, raw VARCHAR)")
    con.executemany("INSERT INTO src VALUES (0, ?, ?)", list(enumerate(records)))
    return con.sql(typing_sql("src", COLUMNS, SPEC, HOUR)).to_arrow_table().to_pydict()


def test_a_records_kind_is_read_past_leading_spaces() -> None:
    reasons = _typed(list(KINDS))["_reason"]
    assert reasons == [
        None if kind is None else f"record is a JSON {kind}, not an object"
        for kind in KINDS.values()
    ]


def test_the_event_date_comes_with_the_typed_columns() -> None:
    late = '{"event_id": "l", "ts": "2026-11-20T23:59:59.5Z"}'
    table = _typed([OBJECT, late, "[1]"])
    assert table["_dt"] == [date(2026, 11, 21), date(2026, 11, 20), None]
    assert list(table)[-1] == "_dt"
