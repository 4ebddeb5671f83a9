"""The Redshift load with NULL key columns, and columns a deployed table lacks.

The load's replace step (DELETE the day, INSERT the staged rows) is run in DuckDB after
sqlglot transpiles it from Redshift's dialect: what runs is the generated SQL.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from lake.marts import load_marts
from lake.redshift import RedshiftTypeError, columns_of, create_table_ddl, load_statements
from lake.redshift_files import write_redshift_files
from lake.storage import LocalStorage

STREAMS = {"robot_telemetry", "clickstream", "cloudtrail"}
DAY = date(2026, 11, 20)
MART = "security_events_daily"


def _day(events: list[int]) -> pa.Table:
    """Two rows whose key holds a NULL (unknown source IP or principal), one without."""
    return pa.table(
        {
            "dt": pa.array([DAY] * 3, pa.date32()),
            "kind": ["access_denied", "failed_console_login", "root_account_use"],
            "source_ip": [None, "ab12", "cd34"],
            "principal": ["arn-hash", None, "Root"],
            "event_name": ["GetObject", "ConsoleLogin", "ListBuckets"],
            "events": pa.array(events, pa.int64()),
        }
    )


def _replace_step(statements: list[str]) -> list[str]:
    """The DELETE and INSERT of the load's transaction, in DuckDB's dialect."""
    return [
        sqlglot.transpile(s, read="redshift", write="duckdb")[0]
        for s in statements
        if s.startswith(("DELETE", "INSERT"))
    ]


def test_reloading_a_day_with_null_keys_replaces_its_rows_not_doubles_them() -> None:
    spec = load_marts(STREAMS)[MART]
    assert {"source_ip", "principal"} <= set(spec.unique_key)
    first, second = _day([3, 7, 1]), _day([4, 9, 1])  # a rebuild with more events
    columns = columns_of(first)
    _, transaction = load_statements(spec, columns, "s3://b/m.json", str(DAY), [])
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.register("first", first)
    con.execute(f'CREATE TABLE marts."{MART}" AS SELECT * FROM first WHERE false')
    for staged in (first, second, second):
        con.register("staged", staged)
        con.execute(f'CREATE OR REPLACE TABLE "stage_{MART}" AS SELECT * FROM staged')
        for statement in _replace_step(transaction):
            con.execute(statement)
    got = con.execute(
        f'SELECT kind, source_ip, principal, events FROM marts."{MART}" ORDER BY kind'
    ).fetchall()
    assert got == [
        ("access_denied", None, "arn-hash", 4),
        ("failed_console_login", "ab12", None, 9),
        ("root_account_use", "cd34", "Root", 1),
    ]


def test_the_ddl_declares_no_column_not_null() -> None:
    spec = load_marts(STREAMS)[MART]
    create = sqlglot.parse_one(create_table_ddl(spec, columns_of(_day([1, 1, 1]))), read="redshift")
    assert list(create.find_all(exp.NotNullColumnConstraint)) == []


def _state(lake: LocalStorage, columns: list[str]) -> None:
    state = {"varchar_widths": {}, "columns": columns}
    lake.write(f"_state/redshift/{MART}.json", json.dumps(state).encode())


def test_a_column_the_deployed_table_lacks_is_added_before_the_load(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    spec = load_marts(STREAMS)[MART]
    old = _day([1, 1, 1])
    _state(lake, old.column_names)  # deployed before day_complete existed
    new = old.append_column("day_complete", pa.array([True] * 3))
    parquet = f"marts/{MART}/dt={DAY}/{MART}-0a1b.parquet"
    write_redshift_files(lake, spec, DAY, parquet, 1, new, "default")
    script = lake.read(f"redshift/{MART}/dt={DAY}/load.sql").decode()
    assert f'ALTER TABLE marts."{MART}" ADD COLUMN "day_complete" BOOLEAN;' in script
    assert script.index("ADD COLUMN") < script.index("BEGIN")
    state = json.loads(lake.read(f"_state/redshift/{MART}.json"))
    assert state["columns"] == new.column_names

    # the next day: the table has it now
    write_redshift_files(lake, spec, DAY, parquet, 1, new, "default")
    assert "ADD COLUMN" not in lake.read(f"redshift/{MART}/dt={DAY}/load.sql").decode()


def test_a_new_column_not_last_is_refused(tmp_path: Path) -> None:
    lake = LocalStorage(tmp_path / "lake")
    spec = load_marts(STREAMS)[MART]
    old = _day([1, 1, 1])
    _state(lake, old.column_names)
    new = old.add_column(1, "day_complete", pa.array([True] * 3))
    with pytest.raises(RedshiftTypeError, match="must come last"):
        write_redshift_files(lake, spec, DAY, "marts/x.parquet", 1, new, "default")
