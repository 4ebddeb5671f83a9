"""The places a pipeline run leaves data: S3 objects, Glue tables, DuckDB, Dagster's instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from dagster import DagsterInstance
from dagster._serdes import serialize_value

from tests.pii_scan.scanner import Leak, Scanner


def scan_bucket(
    scanner: Scanner, s3: Any, bucket: str, excepted: tuple[str, ...] = ()
) -> tuple[list[Leak], list[str]]:
    """Every object of `bucket` (its key, user metadata and content) except those under
    the `excepted` prefixes; also returns the keys it left out."""
    leaks: list[Leak] = []
    left_out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.startswith(excepted):
                left_out.append(key)
                continue
            place = f"s3://{bucket}/{key}"
            got = s3.get_object(Bucket=bucket, Key=key)
            leaks += scanner.text(place, "(key)", key)
            leaks += scanner.value(place, "(object metadata)", got.get("Metadata") or None)
            leaks += scanner.blob(place, got["Body"].read())
    return leaks, left_out


def scan_glue(scanner: Scanner, glue: Any) -> tuple[list[Leak], list[str]]:
    """Every table (and its partitions) of every Glue database; also returns the tables read
    (`database.table`)."""
    leaks: list[Leak] = []
    tables: list[str] = []
    for page in glue.get_paginator("get_databases").paginate():
        for db in page["DatabaseList"]:
            name = db["Name"]
            leaks += scanner.value(f"glue:{name}", "(database)", db)
            for tpage in glue.get_paginator("get_tables").paginate(DatabaseName=name):
                for table in tpage["TableList"]:
                    tables.append(f"{name}.{table['Name']}")
                    place = f"glue:{tables[-1]}"
                    leaks += scanner.value(place, "(table)", table)
                    parts = glue.get_paginator("get_partitions").paginate(
                        DatabaseName=name, TableName=table["Name"]
                    )
                    for ppage in parts:
                        leaks += scanner.value(place, "(partitions)", ppage["Partitions"])
    return leaks, tables


def scan_duckdb_file(scanner: Scanner, path: Path) -> tuple[list[Leak], list[str]]:
    """Every table and view (rows, column names, view SQL) of a DuckDB database file;
    also returns the relations it read."""
    leaks: list[Leak] = []
    con = duckdb.connect(str(path), read_only=True)
    try:
        relations = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY ALL"
        ).fetchall()
        for schema, name in relations:
            ident = (
                f'"{schema.replace(chr(34), chr(34) * 2)}"."{name.replace(chr(34), chr(34) * 2)}"'
            )
            table = con.sql(f"SELECT * FROM {ident}").to_arrow_table()
            leaks += scanner.arrow(f"duckdb:{path.name}:{schema}.{name}", table)
        for schema, name, sql in con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal"
        ).fetchall():
            leaks += scanner.text(f"duckdb:{path.name}:{schema}.{name}", "(view sql)", sql)
    finally:
        con.close()
    return leaks, [f"{s}.{n}" for s, n in relations]


def scan_dagster(scanner: Scanner, instance: DagsterInstance) -> tuple[list[Leak], int]:
    """Every run (tags, config) and every event of every run in the instance's storage:
    messages, error texts, metadata values, and the whole serialized entry for anything
    else. Returns the leaks and the number of events read."""
    leaks: list[Leak] = []
    events = 0
    for run in instance.get_runs():
        place = f"dagster run {run.run_id[:8]} ({run.job_name})"
        leaks += scanner.value(place, "(tags)", dict(run.tags))
        leaks += scanner.value(place, "(run config)", run.run_config)
        for entry in instance.all_logs(run.run_id):
            events += 1
            leaks += _event_leaks(scanner, place, entry)
    return leaks, events


def _event_leaks(scanner: Scanner, run_place: str, entry: Any) -> list[Leak]:
    event = entry.dagster_event
    kind = event.event_type_value if event else "log"
    step = f" step {entry.step_key}" if entry.step_key else ""
    place = f"{run_place}{step} event {kind}"
    found = scanner.text(place, "(message)", entry.user_message)
    if entry.error_info is not None:
        found += scanner.text(place, "(error)", entry.error_info.to_string())
    for key, value in _event_metadata(event).items():
        found += scanner.text(place, f"metadata[{key}]", _metadata_text(value))
    if not found:  # the rest of the entry (only reported when nothing above explains it)
        found = scanner.text(place, "(serialized event)", serialize_value(entry))
    return found


def _metadata_text(value: Any) -> str:
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, str) else serialize_value(value)


def _event_metadata(event: Any) -> dict[str, Any]:
    if event is None:
        return {}
    data = event.event_specific_data
    for attr in ("materialization", "asset_observation", "asset_check_evaluation"):
        inner = getattr(data, attr, None)
        if inner is not None and getattr(inner, "metadata", None):
            return dict(inner.metadata)
    return dict(getattr(data, "metadata", None) or {})
