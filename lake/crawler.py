"""A Glue-style crawler: infer an hour's schema, merge it into the stored catalog table,
and write the table (GetTable's `Table` shape), its versions and its partitions.

Layout under the lake: catalog/<database>/<table>.json, catalog/<database>/<table>/versions/<n>.json,
catalog/<database>/<table>/partitions/<values>.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lake.formats import UnreadableObject, decode_bytes, iter_records
from lake.hive_types import HiveType, MergeReport, Struct, infer, merge, parse_hive, to_hive
from lake.storage import ObjectNotFound, Storage
from lake.streams import StreamSpec

CRAWLER_NAME = "firehose-lake-crawler"
FIREHOSE_PARTITION_KEYS = ("partition_0", "partition_1", "partition_2", "partition_3")
JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"


@dataclass
class HourSchema:
    """What one crawl of one arrival hour saw."""

    schema: Struct = field(default_factory=Struct)
    objects: int = 0
    bytes: int = 0
    records: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)  # key -> reason
    conflicts: list[str] = field(default_factory=list)


@dataclass
class CrawlResult:
    table: dict[str, Any]
    version: int
    changed: bool
    diff: dict[str, list[str]]
    hour: HourSchema


def infer_objects(spec: StreamSpec, objects: Iterable[tuple[str, bytes]]) -> HourSchema:
    """Infer the merged schema of the given objects' records (bad records are ignored here;
    the cleaning step quarantines them)."""
    seen = HourSchema()
    report = MergeReport()
    for key, data in objects:
        seen.objects += 1
        seen.bytes += len(data)
        try:
            records = [r.value for r in iter_records(decode_bytes(data), spec) if r.error is None]
        except UnreadableObject as exc:
            seen.unreadable[key] = str(exc)
            continue
        seen.records += merge_records(seen.schema, records, report)
    seen.conflicts = report.conflicts
    type_event_time(seen.schema, spec)
    return seen


def merge_records(schema: Struct, records: Iterable[Any], report: MergeReport) -> int:
    """Merge the JSON objects among `records` into `schema` in place; return how many."""
    merged = 0
    for value in records:
        if isinstance(value, dict):
            merged += 1
            schema.fields = merge(schema, infer(value), report=report).fields
    return merged


def type_event_time(schema: Struct, spec: StreamSpec) -> None:
    name = spec.event_time_field.lower()
    if name in schema.fields:
        schema.fields[name] = "timestamp"


def table_columns(table: dict[str, Any] | None) -> Struct:
    if not table:
        return Struct()
    return Struct({c["Name"]: parse_hive(c["Type"]) for c in table["StorageDescriptor"]["Columns"]})


def diff_columns(old: Struct, new: Struct) -> dict[str, list[str]]:
    added = [n for n in new.fields if n not in old.fields]
    removed = [n for n in old.fields if n not in new.fields]
    changed = [
        f"{n}: {to_hive(old.fields[n])} -> {to_hive(new.fields[n])}"
        for n in new.fields
        if n in old.fields and to_hive(old.fields[n]) != to_hive(new.fields[n])
    ]
    return {"added": added, "removed": removed, "widened": changed}


def build_table(
    spec: StreamSpec,
    database: str,
    landing_uri: str,
    columns: Struct,
    stats: dict[str, Any],
    version: int,
) -> dict[str, Any]:
    """A dict in the shape of Glue GetTable's `Table`."""
    now = datetime.now(UTC).isoformat()
    return {
        "Name": spec.name,
        "DatabaseName": database,
        "TableType": "EXTERNAL_TABLE",
        "VersionId": str(version),
        "UpdateTime": now,
        "StorageDescriptor": {
            "Columns": [
                {"Name": name, "Type": to_hive(t), "Comment": ""}
                for name, t in columns.fields.items()
            ],
            "Location": f"{landing_uri.rstrip('/')}/{spec.name}/",
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "Compressed": spec.compression == "gzip",
            "SerdeInfo": {
                "SerializationLibrary": JSON_SERDE,
                "Parameters": {"paths": ",".join(columns.fields)},
            },
        },
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in FIREHOSE_PARTITION_KEYS],
        "Parameters": {
            "classification": "json",
            "compressionType": "gzip" if spec.compression == "gzip" else "none",
            "typeOfData": "file",
            "UPDATED_BY_CRAWLER": CRAWLER_NAME,
            **{k: str(v) for k, v in stats.items()},
        },
    }


class Catalog:
    """The Glue-shaped catalog kept as JSON files in the lake."""

    def __init__(self, lake: Storage, database: str) -> None:
        self.lake = lake
        self.database = database

    def table_key(self, table: str) -> str:
        return f"catalog/{self.database}/{table}.json"

    def get_table(self, table: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.lake.read(self.table_key(table)))
        except ObjectNotFound:
            return None

    def put_version(self, table: dict[str, Any], version: int, diff: dict[str, Any]) -> None:
        name = table["Name"]
        doc = {"version": version, "created_at": table["UpdateTime"], "diff": diff, "table": table}
        self.lake.write(f"catalog/{self.database}/{name}/versions/{version}.json", _dumps(doc))

    def put_table(self, table: dict[str, Any]) -> None:
        self.lake.write(self.table_key(table["Name"]), _dumps(table))

    def partition_key(self, table: str, values: list[str]) -> str:
        return f"catalog/{self.database}/{table}/partitions/{'-'.join(values)}.json"

    def get_partition(self, table: str, values: list[str]) -> dict[str, Any] | None:
        try:
            return json.loads(self.lake.read(self.partition_key(table, values)))
        except ObjectNotFound:
            return None

    def put_partition(
        self, table: str, values: list[str], location: str, stats: dict[str, int]
    ) -> None:
        doc = {
            "Values": values,
            "StorageDescriptor": {"Location": location},
            "Parameters": {k: str(v) for k, v in stats.items()},
        }
        self.lake.write(self.partition_key(table, values), _dumps(doc))


def crawl_hour(
    spec: StreamSpec,
    catalog: Catalog,
    landing_uri: str,
    hour: datetime,
    objects: Iterable[tuple[str, bytes]],
) -> CrawlResult:
    """Crawl one arrival hour and merge it into the stored table (a new version on change)."""
    seen = infer_objects(spec, objects)
    stored = catalog.get_table(spec.name)
    old = table_columns(stored)
    merged: HiveType = merge(old, seen.schema, report=MergeReport(seen.conflicts))
    assert isinstance(merged, Struct)
    diff = diff_columns(old, merged)
    version = int(stored["VersionId"]) if stored else 0
    changed = stored is None or any(diff.values())
    if changed:
        version += 1
    values = [f"{hour:%Y}", f"{hour:%m}", f"{hour:%d}", f"{hour:%H}"]
    partition_stats = {
        "recordCount": seen.records,
        "objectCount": seen.objects,
        "sizeKey": seen.bytes,
    }
    previous = catalog.get_partition(spec.name, values)
    stats = _table_stats(stored, previous, partition_stats)
    table = build_table(spec, catalog.database, landing_uri, merged, stats, version)
    if changed:
        catalog.put_version(table, version, diff)
    catalog.put_table(table)
    location = f"{table['StorageDescriptor']['Location']}{'/'.join(values)}/"
    catalog.put_partition(spec.name, values, location, partition_stats)
    return CrawlResult(table, version, changed, diff, seen)


STAT_KEYS = ("recordCount", "objectCount", "sizeKey")


def _table_stats(
    stored: dict[str, Any] | None, previous: dict[str, Any] | None, partition: dict[str, int]
) -> dict[str, int]:
    """Table totals = old totals - this partition's previous crawl + this crawl (idempotent)."""
    table_params = (stored or {}).get("Parameters", {})
    before = (previous or {}).get("Parameters", {})
    totals = {
        k: int(table_params.get(k, 0)) - int(before.get(k, 0)) + partition[k] for k in STAT_KEYS
    }
    records = totals["recordCount"]
    totals["averageRecordSize"] = totals["sizeKey"] // records if records else 0
    return totals


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, sort_keys=False).encode()
