"""The catalog table in the shape of Glue GetTable's `Table`, and its partitions' docs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from lake.catalog_store import Catalog
from lake.column_names import PARAMETER, RESERVED_NAMES, assign_columns, to_parameter
from lake.crawl_sample import HourSchema, Partition
from lake.hive_types import (
    NULL,
    Struct,
    case_variants,
    catalog_names,
    empty_object_paths,
    leaf_columns,
)
from lake.storage import Storage
from lake.streams import StreamSpec
from lake.table_formats import table_format

CRAWLER_NAME = "firehose-lake-crawler"
STAT_KEYS = ("recordCount", "objectCount", "sizeKey")


def with_promoted(
    assigned: dict[tuple[str, ...], str], spec: StreamSpec
) -> dict[tuple[str, ...], str]:
    """The cleaned column names plus one for each promoted sub-field of a declared JSON
    field (docs/schema-rules.md, 3a), so they never move either."""
    leaves = [(flat, path) for flat, path, _ in spec.json.promoted()]
    return assign_columns(leaves, assigned, spec.limits.max_name_bytes, RESERVED_NAMES)


def table_classification(stored: dict[str, Any] | None, seen: HourSchema) -> str:
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
    assigned: dict[tuple[str, ...], str] | None = None,
) -> dict[str, Any]:
    """A dict in the shape of Glue GetTable's `Table`; `assigned` holds the cleaned column
    names given so far (they never move; new leaves get theirs here)."""
    columns, name_map = catalog_names(schema)
    leaves = [(flat, path) for flat, path, _ in leaf_columns(schema)]
    names = assign_columns(leaves, assigned or {}, spec.limits.max_name_bytes, RESERVED_NAMES)
    fmt = table_format(spec, classification, schema, name_map, columns, seen.csv_delimiter)
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
            "InputFormat": fmt.input_format,
            "OutputFormat": fmt.output_format,
            "Compressed": spec.compression == "gzip",
            "SerdeInfo": {"SerializationLibrary": fmt.serde, "Parameters": fmt.serde_parameters},
        },
        "PartitionKeys": [{"Name": n, "Type": "string"} for n in partition_names],
        "Parameters": {
            "classification": classification,
            "compressionType": "gzip" if spec.compression == "gzip" else "none",
            "typeOfData": "file",
            "UPDATED_BY_CRAWLER": CRAWLER_NAME,
            "fieldNameMap": json.dumps(name_map, sort_keys=True),
            "nullOnlyFields": json.dumps(_null_paths(schema)),
            "caseVariants": json.dumps(case_variants(schema)),
            "emptyObjectFields": json.dumps(empty_object_paths(schema)),
            **fmt.parameters,
            PARAMETER: to_parameter(names),
            "changePolicy": spec.crawler.change_policy.upper(),
            "compatibility": spec.crawler.compatibility.upper(),
            **{k: str(v) for k, v in stats.items()},
        },
    }


def _comment(name: str, name_map: dict[str, str]) -> str:
    return f"from JSON key {name_map[name]!r}" if name in name_map else ""


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


def previous_partition_stats(
    catalog: Catalog, table: str, partitions: Iterable[Partition]
) -> Counter:
    total: Counter = Counter()
    for partition in partitions:
        doc = catalog.get_partition(table, partition.values) or {}
        total.update({k: int(v) for k, v in doc.get("Parameters", {}).items() if k in STAT_KEYS})
    return total


def table_stats(
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
