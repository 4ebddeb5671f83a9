"""Cleaning one arrival hour end to end: read landed objects, clean them, write Parquet.

Output names are deterministic from (arrival hour, source object), so a re-run rewrites
the same files; a per-object manifest under _state/ lets a re-run remove files an
earlier run wrote that the new run no longer produces (e.g. a record that moved from
quarantine to cleaned after a schema widening).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lake.cleaning import (
    Column,
    ObjectCleaned,
    Quarantined,
    clean_records,
    leaf_columns_of,
    read_object,
)
from lake.crawler import diff_schemas, merge_records, stored_schema, type_event_time
from lake.hive_types import MergeReport, Struct, add_new_fields
from lake.storage import ObjectInfo, ObjectNotFound, Storage
from lake.streams import StreamSpec

_ARROW_TYPES = {
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_key", pa.string()),
        ("position", pa.int64()),
        ("reason", pa.string()),
        ("raw_text", pa.string()),
        ("arrival_hour", pa.timestamp("us", tz="UTC")),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class HourReport:
    objects: int = 0
    bytes_in: int = 0
    records_in: int = 0
    records_cleaned: int = 0
    records_quarantined: int = 0
    duplicates_dropped: int = 0
    event_dates: set[str] = field(default_factory=set)
    files_written: list[str] = field(default_factory=list)
    unbalanced_objects: list[str] = field(default_factory=list)
    columns_not_in_catalog: dict[str, list[str]] = field(default_factory=dict)

    def add(self, cleaned: ObjectCleaned) -> None:
        self.objects += 1
        self.bytes_in += cleaned.bytes_in
        self.records_in += cleaned.records_in
        self.records_cleaned += len(cleaned.rows)
        self.records_quarantined += len(cleaned.quarantined)
        self.duplicates_dropped += cleaned.duplicates_dropped
        if not cleaned.balanced:
            self.unbalanced_objects.append(cleaned.key)

    def absorb(self, other: HourReport) -> None:
        """Add another hour's counts to this one (a backfill run covers many hours)."""
        for name in ("objects", "bytes_in", "records_in", "records_cleaned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.records_quarantined += other.records_quarantined
        self.duplicates_dropped += other.duplicates_dropped
        self.event_dates |= other.event_dates
        self.files_written += other.files_written
        self.unbalanced_objects += other.unbalanced_objects
        for kind, names in other.columns_not_in_catalog.items():
            known = self.columns_not_in_catalog.setdefault(kind, [])
            known += [n for n in names if n not in known]

    @property
    def quarantine_ratio(self) -> float:
        return self.records_quarantined / self.records_in if self.records_in else 0.0

    def as_metadata(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "bytes_in": self.bytes_in,
            "records_in": self.records_in,
            "records_cleaned": self.records_cleaned,
            "records_quarantined": self.records_quarantined,
            "duplicates_dropped": self.duplicates_dropped,
            "event_dates": sorted(self.event_dates),
        }


def arrow_schema(columns: list[Column]) -> pa.Schema:
    fields = [pa.field(c.name, _ARROW_TYPES.get(c.type, pa.string())) for c in columns]
    fields += [
        pa.field("_source_key", pa.string()),
        pa.field("_position", pa.int64()),
        pa.field("_arrival_hour", pa.timestamp("us", tz="UTC")),
        pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(fields)


def clean_hour(
    spec: StreamSpec,
    table: dict[str, Any] | None,
    landing: Storage,
    lake: Storage,
    hour: datetime,
    objects: list[ObjectInfo],
    ingested_at: datetime | None = None,
) -> HourReport:
    """Clean every given object of one arrival hour, in key order, deduplicating across them.

    Columns and types come from the catalog table; fields the hour holds that the table
    lacks (the schema asset has not crawled them yet) are added for this run with their
    inferred types and reported in `columns_not_in_catalog`, never dropped.
    """
    ingested_at = ingested_at or datetime.now(UTC)
    objects = sorted(objects, key=lambda o: o.key)
    read = [(info.key, landing.read(info.key)) for info in objects]
    parsed = [(key, len(data), read_object(key, data, spec)) for key, data in read]
    del read
    catalog = stored_schema(table)
    in_hour = Struct()
    for _, _, records in parsed:
        if not isinstance(records, Quarantined):
            merge_records(in_hour, (r.value for r in records if r.error is None), MergeReport())
    type_event_time(in_hour, spec)
    widened = add_new_fields(catalog, in_hour)
    columns = leaf_columns_of(widened, spec)
    schema = arrow_schema(columns)
    report = HourReport(columns_not_in_catalog=diff_schemas(catalog, widened).as_dict())
    time_column = next((c.name for c in columns if c.path == (spec.event_time_field,)), None)
    seen: set[str] = set()
    for key, size, records in parsed:
        cleaned = clean_records(spec, columns, key, records, size, seen, hour, ingested_at)
        report.add(cleaned)
        written = _write_object_outputs(spec, lake, hour, cleaned, schema, time_column, ingested_at)
        report.files_written.extend(written)
        report.event_dates.update(
            k.split("/dt=")[1].split("/")[0] for k in written if k.startswith("cleaned/")
        )
    return report


def output_name(hour: datetime, source_key: str) -> str:
    stem = source_key.rsplit("/", 1)[-1].removesuffix(".gz")
    return f"{hour:%Y%m%dT%H}-{stem}.parquet"


def _write_object_outputs(
    spec: StreamSpec,
    lake: Storage,
    hour: datetime,
    cleaned: ObjectCleaned,
    schema: pa.Schema,
    time_col: str | None,
    ingested_at: datetime,
) -> list[str]:
    name = output_name(hour, cleaned.key)
    by_date: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in cleaned.rows:
        by_date[f"{row[time_col]:%Y-%m-%d}" if time_col else f"{hour:%Y-%m-%d}"].append(row)
    written = []
    for dt, rows in sorted(by_date.items()):
        key = f"cleaned/{spec.name}/dt={dt}/{name}"
        lake.write(key, parquet_bytes(pa.Table.from_pylist(rows, schema=schema)))
        written.append(key)
    if cleaned.quarantined:
        key = f"quarantine/{spec.name}/dt={hour:%Y-%m-%d}/{name}"
        rows = [
            {**q.__dict__, "arrival_hour": hour, "quarantined_at": ingested_at}
            for q in cleaned.quarantined
        ]
        lake.write(key, parquet_bytes(pa.Table.from_pylist(rows, schema=QUARANTINE_SCHEMA)))
        written.append(key)
    _replace_manifest(lake, spec, hour, cleaned, written)
    return written


def _replace_manifest(
    lake: Storage, spec: StreamSpec, hour: datetime, cleaned: ObjectCleaned, written: list[str]
) -> None:
    manifest_key = f"_state/cleaned/{spec.name}/{output_name(hour, cleaned.key)}.json"
    try:
        previous = json.loads(lake.read(manifest_key))["files"]
    except ObjectNotFound:
        previous = []
    for stale in set(previous) - set(written):
        with contextlib.suppress(ObjectNotFound):
            lake.delete(stale)
    manifest = {
        "source_key": cleaned.key,
        "files": written,
        "records_in": cleaned.records_in,
        "records_cleaned": len(cleaned.rows),
        "records_quarantined": len(cleaned.quarantined),
        "duplicates_dropped": cleaned.duplicates_dropped,
    }
    lake.write(manifest_key, json.dumps(manifest, indent=1).encode())


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
