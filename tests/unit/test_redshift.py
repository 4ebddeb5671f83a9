"""Redshift load files of a mart partition: DDL, manifest and load script, parsed by sqlglot."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from lake.marts import load_marts
from lake.redshift import RedshiftTypeError, columns_of
from lake.redshift_data_api import split_script
from lake.redshift_files import write_redshift_files
from lake.storage import LocalStorage
from lake.warehouse import Warehouse
from tests.mart_days import build_and_write

STREAMS = {"robot_telemetry", "clickstream", "cloudtrail"}
DAY = date(2026, 11, 21)


def parse_redshift(sql: str) -> list[exp.Expression]:
    statements = [s for s in sqlglot.parse(sql, read="redshift") if s is not None]
    for s in statements:  # a statement sqlglot does not understand comes back as a Command
        assert not isinstance(s, exp.Command), f"not parsed: {s.sql()[:80]}"
    return statements


def test_types_follow_the_parquet_copy_rules() -> None:
    table = pa.table(
        {
            "dt": pa.array([DAY], pa.date32()),
            "n": pa.array([1], pa.int64()),
            "small": pa.array([1], pa.int32()),
            "ratio": pa.array([0.5], pa.float64()),
            "ok": pa.array([True]),
            "at": pa.array([0], pa.timestamp("us", tz="UTC")),
            "name": pa.array(["x" * 40]),
            "amount": pa.array([1], pa.decimal128(38, 0)),
            "tags": pa.array([["a", "b"]]),
        }
    )
    got = {c.name: c.type for c in columns_of(table)}
    assert got == {
        "dt": "DATE",
        "n": "BIGINT",
        "small": "INTEGER",
        "ratio": "DOUBLE PRECISION",
        "ok": "BOOLEAN",
        "at": "TIMESTAMPTZ",
        "name": "VARCHAR(64)",  # 40 bytes, rounded up to a power of two
        "amount": "DECIMAL(38,0)",
        "tags": "SUPER",
    }
    # a width already deployed is kept, a column never narrows
    assert columns_of(table, {"name": 256})[6].type == "VARCHAR(256)"
    with pytest.raises(RedshiftTypeError, match="uint64"):
        columns_of(pa.table({"u": pa.array([1], pa.uint64())}))


def test_varchar_width_counts_bytes_not_characters() -> None:
    (column,) = columns_of(pa.table({"s": ["é" * 10]}))  # 20 bytes in UTF-8
    assert column.type == "VARCHAR(32)"


@pytest.fixture
def built(tmp_path: Path) -> tuple[LocalStorage, str]:
    """milking_per_cow_daily built for one day over a small cleaned file."""
    lake = LocalStorage(tmp_path / "lake")
    rows = pa.table(
        {
            "event_id": ["a", "b", "c"],
            "ts": pa.array([1, 2, 3], pa.timestamp("us", tz="UTC")),
            "robot_id": ["R1", "R1", "R2"],
            "cow_id": ["C1", "C1", "C2"],
            "event_type": ["milking_end"] * 3,
            "milking_yield_kg": [10.0, 11.0, 9.0],
            "milking_duration_s": pa.array([300, 310, 280], pa.int32()),
        }
    )
    path = lake.path(f"cleaned/robot_telemetry/dt={DAY}/x.parquet")
    path.parent.mkdir(parents=True)
    pq.write_table(rows, path)
    manifest = {"files": [f"cleaned/robot_telemetry/dt={DAY}/x.parquet"]}  # committed
    lake.write("_state/cleaned/robot_telemetry/x.parquet.json", json.dumps(manifest).encode())
    spec = load_marts(STREAMS)["milking_per_cow_daily"]
    warehouse = Warehouse(tmp_path / "wh.duckdb")
    build_and_write(spec, DAY, lake, warehouse)
    return lake, spec.name


def test_ddl_manifest_and_load_script_parse_and_match_the_parquet(
    built: tuple[LocalStorage, str],
) -> None:
    lake, name = built
    ddl = lake.read(f"redshift/{name}/create_table.sql").decode()
    (create,) = parse_redshift(ddl)
    schema = create.this
    ddl_columns = [(c.name, c.args["kind"].sql(dialect="redshift")) for c in schema.expressions]
    [parquet_key] = [o.key for o in lake.list(f"marts/{name}/dt={DAY}/")]
    parquet = pq.read_schema(lake.path(parquet_key))
    assert [n for n, _ in ddl_columns] == parquet.names  # same order: COPY maps by position
    types = dict(ddl_columns)
    assert types["dt"] == "DATE" and types["milkings"] == "BIGINT"
    assert types["cow_id"].startswith("VARCHAR(")
    assert 'DISTKEY ("cow_id")' in ddl and 'COMPOUND SORTKEY ("dt", "cow_id")' in ddl

    manifest = json.loads(lake.read(f"redshift/{name}/dt={DAY}/manifest.json"))
    (entry,) = manifest["entries"]
    assert entry["url"] == lake.uri_of(parquet_key) and entry["mandatory"] is True
    assert entry["meta"]["content_length"] == lake.path(parquet_key).stat().st_size

    script = lake.read(f"redshift/{name}/dt={DAY}/load.sql").decode()
    kinds = [type(s).__name__ for s in parse_redshift(script)]
    assert kinds == [
        "Create",  # schema
        "Create",  # table
        "Transaction",
        "Create",  # staging table
        "Copy",
        "Delete",
        "Insert",
        "Drop",
        "Commit",
    ]
    setup, transaction = split_script(script)
    assert len(setup) == 2 and transaction[1].startswith("COPY")
    assert f"DATE '{DAY}'" in script or f"CAST('{DAY}' AS DATE)" in transaction[2]


def test_a_wider_value_widens_the_column_outside_the_transaction(
    built: tuple[LocalStorage, str],
) -> None:
    lake, name = built
    spec = load_marts(STREAMS)[name]
    wide = pa.table({"dt": pa.array([DAY], pa.date32()), "cow_id": ["C" * 100]})
    write_redshift_files(
        lake, spec, DAY, f"marts/{name}/dt={DAY}/{name}-0a1b.parquet", 1, wide, "default"
    )
    script = lake.read(f"redshift/{name}/dt={DAY}/load.sql").decode()
    setup, _ = split_script(script)
    assert setup[-1] == f'ALTER TABLE marts."{name}" ALTER COLUMN "cow_id" TYPE VARCHAR(128)'
    assert "VARCHAR(128)" in lake.read(f"redshift/{name}/create_table.sql").decode()


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/la'ke/redshift/m/manifest.json",
        "s3://bucket/x'; DROP TABLE marts.milking_per_cow_daily; --/manifest.json",
        "s3://bucket/back\\slash/manifest.json",
        "s3://bucket/new\nline/manifest.json",
    ],
)
def test_a_manifest_url_that_would_break_out_of_its_literal_is_refused(url: str) -> None:
    from lake.redshift import UnsafeLiteralError, load_statements

    spec = load_marts(STREAMS)["milking_per_cow_daily"]
    columns = columns_of(pa.table({"dt": pa.array([DAY]), "cow_id": ["C1"]}))
    with pytest.raises(UnsafeLiteralError):
        load_statements(spec, columns, url, str(DAY), [])
    with pytest.raises(UnsafeLiteralError):
        load_statements(spec, columns, "s3://b/m.json", str(DAY), [], iam_role=f"arn:{url}")


def test_the_load_script_is_exactly_its_statements_for_a_plain_url() -> None:
    from lake.redshift import load_script, load_statements

    spec = load_marts(STREAMS)["milking_per_cow_daily"]
    columns = columns_of(pa.table({"dt": pa.array([DAY]), "cow_id": ["C1"]}))
    role = "arn:aws:iam::123456789012:role/load"
    script = load_script(*load_statements(spec, columns, "s3://b/p/m.json", str(DAY), [], role))
    statements = parse_redshift(script)
    assert len(statements) == 9
    (copy,) = [s for s in statements if isinstance(s, exp.Copy)]
    assert "'s3://b/p/m.json'" in copy.sql(dialect="redshift")
