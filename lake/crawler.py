"""A Glue-style crawler: sample an hour's objects, infer their schema, merge it into the
stored catalog table under the stream's change policy and compatibility mode, and write
the table (GetTable's `Table` shape), its versions and its partitions.

Layout under the lake: catalog/<database>/<table>.json,
catalog/<database>/<table>/versions/<n>.json, catalog/<database>/<table>/partitions/<values>.json.
The rules are written down in docs/schema-rules.md.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lake.classifiers import Classified, SampleLimits, classify_object
from lake.firehose import hour_prefix, is_folder_marker, parse_key
from lake.hive_types import (
    NULL,
    Array,
    HiveType,
    MergeReport,
    Struct,
    add_new_fields,
    catalog_names,
    from_catalog,
    infer,
    is_widening,
    merge,
    to_hive,
)
from lake.storage import ObjectInfo, ObjectNotFound, Storage
from lake.streams import StreamSpec

CRAWLER_NAME = "firehose-lake-crawler"
STAT_KEYS = ("recordCount", "objectCount", "sizeKey")
_FORMATS = {
    "json": (
        "org.apache.hadoop.mapred.TextInputFormat",
        "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "org.openx.data.jsonserde.JsonSerDe",
    ),
    "csv": (
        "org.apache.hadoop.mapred.TextInputFormat",
        "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
    ),
    "parquet": (
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
    ),
}


@dataclass
class SchemaDiff:
    """Dotted paths of original keys; `widened`/`conflicting` entries say `path: old -> new`."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    widened: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.widened or self.conflicting)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "removed": self.removed,
            "widened": self.widened,
            "conflicting": self.conflicting,
        }


@dataclass
class Partition:
    names: list[str]
    values: list[str]
    folder: str  # key prefix of the partition under the landing root, ending with '/'
    stats: Counter = field(default_factory=Counter)


@dataclass
class HourSchema:
    """What one crawl saw in the objects it sampled."""

    schema: Struct = field(default_factory=Struct)
    objects: int = 0
    bytes: int = 0
    records_sampled: int = 0
    sampled_bytes: int = 0
    classifications: Counter = field(default_factory=Counter)
    unknown: dict[str, str] = field(default_factory=dict)  # key -> reason
    conflicts: list[str] = field(default_factory=list)
    partitions: dict[str, Partition] = field(default_factory=dict)  # by folder
    csv_delimiter: str | None = None


@dataclass
class CrawlResult:
    table: dict[str, Any]
    version: int
    changed: bool  # a new table version was written
    proposed: SchemaDiff  # what the sampled data asks for
    applied: SchemaDiff  # what the policy let into the table
    incompatible: list[str]  # changes the compatibility mode forbids (not applied)
    hour: HourSchema


def sample_objects(spec: StreamSpec, landing: Storage, objects: Iterable[ObjectInfo]) -> HourSchema:
    """Classify and sample every object (Glue: first 1 MB or 1,000 records of each)."""
    limits = SampleLimits(
        max_bytes=spec.crawler.sample_bytes, max_records=spec.crawler.sample_records
    )
    seen = HourSchema()
    report = MergeReport()
    for info in objects:
        if is_folder_marker(info.key, info.size):
            seen.unknown[info.key] = "folder_marker: an S3 console folder, not data (ignored)"
            continue
        seen.objects += 1
        seen.bytes += info.size
        found = classify_object(landing, info.key, info.size, limits, spec.records_key)
        seen.classifications[found.classification] += 1
        partition = _partition_of(spec, info.key, seen.partitions)
        partition.stats["objectCount"] += 1
        partition.stats["sizeKey"] += info.size
        if found.classification == "UNKNOWN":
            seen.unknown[info.key] = found.reason or "no classifier accepted it"
            continue
        schema = _schema_of(found, report)
        seen.schema = merge(seen.schema, schema, report=report)  # type: ignore[assignment]
        estimate = _record_estimate(found, info.size)
        seen.records_sampled += len(found.records)
        seen.sampled_bytes += found.sampled_bytes
        partition.stats["recordCount"] += estimate
        seen.csv_delimiter = seen.csv_delimiter or found.delimiter
    seen.conflicts = report.conflicts
    type_event_time(seen.schema, spec)
    return seen


def _schema_of(found: Classified, report: MergeReport) -> Struct:
    if found.schema_hint is not None:
        return found.schema_hint
    schema = Struct()
    merge_records(schema, found.records, report)
    return schema


def _record_estimate(found: Classified, size: int) -> int:
    """Exact when the classifier knows; else scaled from the sample, as Glue estimates."""
    if found.record_count is not None:
        return found.record_count
    sampled = len(found.records) + found.bad_records
    if found.complete or found.raw_bytes_consumed <= 0:
        return sampled
    if found.records_span > 0:  # records per text byte, times the object's text size
        text_size = size * found.sampled_bytes / found.raw_bytes_consumed
        return max(sampled, round(sampled * text_size / found.records_span))
    return max(sampled, round(sampled * size / found.raw_bytes_consumed))


def merge_records(schema: Struct, records: Iterable[Any], report: MergeReport) -> int:
    """Merge the JSON objects among `records` into `schema` in place; return how many."""
    merged = 0
    for value in records:
        if isinstance(value, dict):
            merged += 1
            schema.fields = merge(schema, infer(value), report=report).fields  # type: ignore[union-attr]
    return merged


def type_event_time(schema: Struct, spec: StreamSpec) -> None:
    """The declared event-time field is a timestamp, even when it holds epoch numbers."""
    if spec.event_time_field in schema.fields:
        schema.fields[spec.event_time_field] = "timestamp"


def _partition_of(spec: StreamSpec, key: str, partitions: dict[str, Partition]) -> Partition:
    """Hive-style `k=v` folders name their keys; plain folders are partition_0.. (Glue),
    unless the stream names them."""
    parsed = parse_key(key)  # `HH//name` is in the hour folder, like `HH/name`
    folder = (
        hour_prefix(parsed.stream, parsed.arrival_hour)
        if parsed is not None
        else "/".join(key.split("/")[:-1]) + "/"
    )
    folders = folder.split("/")[1:-1]
    if folder in partitions:
        return partitions[folder]
    if folders and all("=" in f for f in folders):
        names = [f.split("=", 1)[0] for f in folders]
        values = [f.split("=", 1)[1] for f in folders]
    else:
        declared = list(spec.crawler.partition_keys)
        names = [
            declared[i] if i < len(declared) else f"partition_{i}" for i in range(len(folders))
        ]
        values = folders
    partitions[folder] = Partition(names, values, folder)
    return partitions[folder]


def diff_schemas(old: Struct, new: Struct, prefix: str = "") -> SchemaDiff:
    diff = SchemaDiff()
    for name, t in new.fields.items():
        path = f"{prefix}{name}"
        if name not in old.fields or old.fields[name] == NULL:
            if t != NULL:
                diff.added.append(path)
            continue
        _diff_type(old.fields[name], t, path, diff)
    diff.removed = [f"{prefix}{n}" for n in old.fields if n not in new.fields]
    return diff


def _diff_type(old: HiveType, new: HiveType, path: str, diff: SchemaDiff) -> None:
    if isinstance(old, Struct) and isinstance(new, Struct):
        sub = diff_schemas(old, new, f"{path}.")
        for kind in ("added", "removed", "widened", "conflicting"):
            getattr(diff, kind).extend(getattr(sub, kind))
    elif isinstance(old, Array) and isinstance(new, Array):
        _diff_type(old.element, new.element, f"{path}[]", diff)
    elif to_hive(old) != to_hive(new):
        change = f"{path}: {to_hive(old)} -> {to_hive(new)}"
        scalar = isinstance(old, str) and isinstance(new, str)
        (diff.widened if scalar and is_widening(old, new) else diff.conflicting).append(change)


def incompatibilities(diff: SchemaDiff, mode: str) -> list[str]:
    """Changes the compatibility mode forbids. Every JSON field is optional, so adding or
    dropping one is always compatible. BACKWARD (new readers read old data) allows
    widening; FORWARD and FULL (old readers read new data) do not; a struct or array
    turning into a string breaks every mode but NONE."""
    if mode == "none":
        return []
    if mode == "backward":
        return list(diff.conflicting)
    return diff.widened + diff.conflicting


class Catalog:
    """The Glue-shaped catalog kept as JSON files in the lake."""

    def __init__(self, lake: Storage, database: str) -> None:
        self.lake = lake
        self.database = database

    def table_key(self, table: str) -> str:
        return f"catalog/{self.database}/{table}.json"

    def get_table(self, table: str) -> dict[str, Any] | None:
        return self._get(self.table_key(table))

    def put_table(self, table: dict[str, Any]) -> None:
        self.lake.write(self.table_key(table["Name"]), _dumps(table))

    def put_version(self, table: dict[str, Any], version: int, diff: SchemaDiff) -> None:
        doc = {
            "version": version,
            "created_at": table["UpdateTime"],
            "diff": diff.as_dict(),
            "table": table,
        }
        self.lake.write(
            f"catalog/{self.database}/{table['Name']}/versions/{version}.json", _dumps(doc)
        )

    def partition_key(self, table: str, values: list[str]) -> str:
        return f"catalog/{self.database}/{table}/partitions/{'-'.join(values)}.json"

    def get_partition(self, table: str, values: list[str]) -> dict[str, Any] | None:
        return self._get(self.partition_key(table, values))

    def put_partition(self, table: str, doc: dict[str, Any]) -> None:
        self.lake.write(self.partition_key(table, doc["Values"]), _dumps(doc))

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.lake.read(key))
        except ObjectNotFound:
            return None


def stored_schema(table: dict[str, Any] | None) -> Struct:
    """The table's columns as a Struct keyed by the records' original keys."""
    if not table:
        return Struct()
    params = table.get("Parameters", {})
    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    schema = from_catalog(columns, json.loads(params.get("fieldNameMap", "{}")))
    for path in json.loads(params.get("nullOnlyFields", "[]")):
        _set_null(schema, path.split("."))
    return schema


def _set_null(schema: Struct, path: list[str]) -> None:
    node: HiveType = schema
    for part in path[:-1]:
        node = node.fields.get(part) if isinstance(node, Struct) else None  # type: ignore[assignment]
    if isinstance(node, Struct) and path[-1] in node.fields:
        node.fields[path[-1]] = NULL


def crawl_objects(
    spec: StreamSpec,
    catalog: Catalog,
    landing: Storage,
    objects: list[ObjectInfo],
) -> CrawlResult:
    """Crawl the given objects (an arrival hour) and merge them into the stored table."""
    seen = sample_objects(spec, landing, objects)
    stored = catalog.get_table(spec.name)
    old = stored_schema(stored)
    proposed_schema = merge(old, seen.schema, report=MergeReport())
    assert isinstance(proposed_schema, Struct)
    proposed = diff_schemas(old, proposed_schema)
    incompatible = incompatibilities(proposed, spec.crawler.compatibility)
    new = _apply_policy(spec.crawler.change_policy, old, seen.schema, proposed_schema, incompatible)
    applied = diff_schemas(old, new)
    version = int(stored["VersionId"]) if stored else 0
    changed = stored is None or bool(applied)
    version += 1 if changed else 0
    previous = _previous_partition_stats(catalog, spec.name, seen.partitions.values())
    stats = _table_stats(stored, previous, seen.partitions.values())
    classification = _classification(stored, seen)
    table = build_table(
        spec, catalog.database, landing.uri, new, stats, version, classification, seen
    )
    if changed:
        catalog.put_version(table, version, applied)
    catalog.put_table(table)
    for partition in seen.partitions.values():
        catalog.put_partition(spec.name, partition_doc(table, landing, partition))
    return CrawlResult(table, version, changed, proposed, applied, incompatible, seen)


def _apply_policy(
    policy: str, old: Struct, sampled: Struct, proposed: Struct, incompatible: list[str]
) -> Struct:
    if incompatible or policy == "log":
        return old
    if policy == "merge_new_columns":
        return add_new_fields(old, sampled)
    return proposed


def _classification(stored: dict[str, Any] | None, seen: HourSchema) -> str:
    if stored:
        return stored["Parameters"].get("classification", "json")
    known = [(n, c) for c, n in seen.classifications.items() if c != "UNKNOWN"]
    return max(known)[1] if known else "UNKNOWN"


def build_table(
    spec: StreamSpec,
    database: str,
    landing_uri: str,
    schema: Struct,
    stats: dict[str, int],
    version: int,
    classification: str,
    seen: HourSchema,
) -> dict[str, Any]:
    """A dict in the shape of Glue GetTable's `Table`."""
    columns, name_map = catalog_names(schema)
    input_format, output_format, serde = _FORMATS.get(classification, _FORMATS["json"])
    serde_params = _serde_parameters(classification, name_map, columns, seen)
    partition_names = next(iter(seen.partitions.values())).names if seen.partitions else []
    return {
        "Name": spec.name,
        "DatabaseName": database,
        "TableType": "EXTERNAL_TABLE",
        "VersionId": str(version),
        "UpdateTime": datetime.now(UTC).isoformat(),
        "StorageDescriptor": {
            "Columns": [
                {"Name": name, "Type": hive, "Comment": _comment(name, name_map)}
                for name, hive in columns
            ],
            "Location": f"{landing_uri.rstrip('/')}/{spec.name}/",
            "InputFormat": input_format,
            "OutputFormat": output_format,
            "Compressed": spec.compression == "gzip",
            "SerdeInfo": {"SerializationLibrary": serde, "Parameters": serde_params},
        },
        "PartitionKeys": [{"Name": n, "Type": "string"} for n in partition_names],
        "Parameters": {
            "classification": classification,
            "compressionType": "gzip" if spec.compression == "gzip" else "none",
            "typeOfData": "file",
            "UPDATED_BY_CRAWLER": CRAWLER_NAME,
            "fieldNameMap": json.dumps(name_map, sort_keys=True),
            "nullOnlyFields": json.dumps(_null_paths(schema)),
            "changePolicy": spec.crawler.change_policy.upper(),
            "compatibility": spec.crawler.compatibility.upper(),
            **{k: str(v) for k, v in stats.items()},
        },
    }


def _comment(name: str, name_map: dict[str, str]) -> str:
    return f"from JSON key {name_map[name]!r}" if name in name_map else ""


def _serde_parameters(
    classification: str, name_map: dict[str, str], columns: list[tuple[str, str]], seen: HourSchema
) -> dict[str, str]:
    if classification == "csv":
        return {"field.delim": seen.csv_delimiter or ","}
    if classification != "json":
        return {}
    # OpenX JsonSerDe reads a top-level column from a differently named key via mapping.<col>
    params = {"paths": ",".join(name for name, _ in columns), "case.insensitive": "FALSE"}
    params.update({f"mapping.{n}": o for n, o in name_map.items() if "." not in n})
    return params


def _null_paths(schema: Struct, prefix: str = "") -> list[str]:
    out = []
    for name, t in schema.fields.items():
        if t == NULL:
            out.append(f"{prefix}{name}")
        elif isinstance(t, Struct):
            out += _null_paths(t, f"{prefix}{name}.")
    return out


def partition_doc(table: dict[str, Any], landing: Storage, partition: Partition) -> dict[str, Any]:
    return {
        "Values": partition.values,
        "StorageDescriptor": {"Location": landing.uri_of(partition.folder.rstrip("/")) + "/"},
        "Parameters": {k: str(partition.stats[k]) for k in STAT_KEYS},
    }


def _previous_partition_stats(
    catalog: Catalog, table: str, partitions: Iterable[Partition]
) -> Counter:
    total: Counter = Counter()
    for partition in partitions:
        doc = catalog.get_partition(table, partition.values) or {}
        total.update({k: int(v) for k, v in doc.get("Parameters", {}).items() if k in STAT_KEYS})
    return total


def _table_stats(
    stored: dict[str, Any] | None, previous: Counter, partitions: Iterable[Partition]
) -> dict[str, int]:
    """Table totals = old totals - these partitions' previous crawl + this crawl (idempotent)."""
    params = (stored or {}).get("Parameters", {})
    now: Counter = Counter()
    for partition in partitions:
        now.update(partition.stats)
    totals = {k: int(params.get(k, 0)) - previous[k] + now[k] for k in STAT_KEYS}
    records = totals["recordCount"]
    totals["averageRecordSize"] = totals["sizeKey"] // records if records else 0
    return totals


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2).encode()
