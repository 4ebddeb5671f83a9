"""The PII scanner finds a planted raw value wherever the pipeline could leave one, so the
no-PII test (tests/integration/test_no_pii_in_outputs.py) can fail."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import DagsterInstance, MaterializeResult, asset, materialize

from tests.pii_scan.corpus import raw_values
from tests.pii_scan.scanner import RawValue, Scanner
from tests.pii_scan.sources import scan_dagster, scan_duckdb_file

PLANTED = RawValue("email", "Planted.Canary@pii-canary.example")
SCANNER = Scanner([PLANTED])


def _parquet(
    table: pa.Table, metadata: dict[bytes, bytes] | None = None, statistics: bool = True
) -> bytes:
    out = io.BytesIO()
    pq.write_table(
        table.replace_schema_metadata(metadata),
        out,
        compression="zstd",
        write_statistics=statistics,
    )
    return out.getvalue()


def test_finds_a_value_in_a_compressed_parquet_column_case_insensitively() -> None:
    notes = [f"row {i}, nothing here" for i in range(199)]
    notes.append("mail to planted.canary@PII-canary.example please")
    table = pa.table({"id": list(range(200)), "note": notes})
    data = _parquet(table, statistics=False)  # min/max statistics would hold the plain text
    assert b"planted.canary" not in data.lower()  # compressed: a grep would miss it
    [leak] = SCANNER.blob("cleaned.parquet", data)
    assert (leak.place, leak.field, leak.value) == ("cleaned.parquet", "note", PLANTED.value)


def test_finds_a_value_in_nested_parquet_values_names_and_metadata() -> None:
    table = pa.table({"user": [{"email": PLANTED.value}], f"x_{PLANTED.value}": [1]})
    leaks = SCANNER.parquet("f.parquet", _parquet(table, {b"origin": PLANTED.value.encode()}))
    assert {leak.field for leak in leaks} == {
        "(parquet key-value metadata)",
        "(column names)",
        "user",
    }


def test_finds_a_value_in_a_gzip_object_and_not_in_a_clean_one() -> None:
    assert SCANNER.blob("o.gz", gzip.compress(f'{{"e": "{PLANTED.value}"}}'.encode()))
    assert SCANNER.blob("o.gz", gzip.compress(b'{"e": "a3f1c2"}')) == []


def test_finds_a_value_in_a_duckdb_table_and_a_view(tmp_path: Path) -> None:
    path = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts")
    con.execute("CREATE TABLE marts.t AS SELECT range AS n, 'x' || range AS s FROM range(5000)")
    con.execute("INSERT INTO marts.t VALUES (5000, ?)", [PLANTED.value])
    con.execute(f"CREATE VIEW marts.v AS SELECT '{PLANTED.value}' AS who")
    con.execute("CHECKPOINT")
    con.close()
    leaks, relations = scan_duckdb_file(SCANNER, path)
    assert relations == ["marts.t", "marts.v"]
    assert {(leak.place.split(":")[-1], leak.field) for leak in leaks} == {
        ("marts.t", "s"),
        ("marts.v", "who"),
        ("marts.v", "(view sql)"),
    }


def test_finds_a_value_in_dagster_event_metadata_and_log_messages() -> None:
    @asset
    def leaky(context) -> MaterializeResult:  # unannotated: dagster refuses a string annotation
        context.log.info(f"processed a record of {PLANTED.value}")
        return MaterializeResult(metadata={"sample": {"user": PLANTED.value}, "clean": 3})

    with DagsterInstance.ephemeral() as instance:
        assert materialize([leaky], instance=instance).success
        leaks, events = scan_dagster(SCANNER, instance)
    assert events > 0
    fields = {(leak.place.split(" event ")[-1], leak.field) for leak in leaks}
    assert ("ASSET_MATERIALIZATION", "metadata[sample]") in fields
    assert any(field == "(message)" for _, field in fields)


def test_the_corpus_values_are_distinctive() -> None:
    """Values long and unusual enough that a match is not an accident, none inside another."""
    values = [v.value.lower() for v in raw_values()]
    assert len(set(values)) == len(values)
    assert all(len(v) >= 10 for v in values)
    kept = ("111122223333", "dataengineer", "consolelogin", "assumerole", "signin.amazonaws.com")
    assert not [v for v in values if any(k in v for k in kept)]
