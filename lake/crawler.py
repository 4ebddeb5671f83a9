"""A Glue-style crawler: sample an hour's objects, infer their schema, merge it into the
stored catalog table under the stream's change policy and compatibility mode, and write
the table (GetTable's `Table` shape), its versions and its partitions.

Layout under the lake: catalog/<database>/<table>.json,
catalog/<database>/<table>/versions/<n>.json, catalog/<database>/<table>/partitions/<values>.json.
The rules are written down in docs/schema-rules.md.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lake.classifiers import Classified, SampleLimits, classify_object
from lake.column_names import (
    LINEAGE_NAMES,
    PARAMETER,
    assign_columns,
    from_parameter,
    legacy_assignment,
    to_parameter,
)
from lake.firehose import hour_prefix, is_folder_marker, parse_key
from lake.hive_types import (
    NULL,
    Array,
    HiveType,
    MergeReport,
    Struct,
    add_new_fields,
    case_variants,
    catalog_names,
    empty_object_paths,
    from_catalog,
    infer,
    is_widening,
    leaf_columns,
    leaf_count,
    merge,
    restore_empty_objects,
    to_hive,
    without_paths,
)
from lake.json_fields import PARAMETER as JSON_PARAMETER
from lake.json_fields import (
    Path,
    ShapeCounter,
    collapse_record,
    collapse_schema,
    conflict_paths,
    dotted,
    paths_from_parameter,
)
from lake.json_fields import to_parameter as json_parameter
from lake.record_limits import value_problem
from lake.storage import (
    ConcurrentUpdateError,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    Storage,
)
from lake.streams import RecordLimits, StreamSpec
from lake.table_formats import table_format

CRAWLER_NAME = "firehose-lake-crawler"
STAT_KEYS = ("recordCount", "objectCount", "sizeKey")


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
    # sampled records past the stream's limits (leaves, depth, key length): left out
    records_over_limits: int = 0
    # new leaves (dotted original keys) not added: the table would pass max_columns
    columns_over_limit: list[str] = field(default_factory=list)
    # keys made JSON text because they held a struct or array and something else (applied)
    json_fields: list[Path] = field(default_factory=list)
    # structs with more field sets than json_max_shapes in the sample (proposed only)
    json_field_candidates: list[str] = field(default_factory=list)


@dataclass
class JsonTracking:
    """What merge_records needs to keep JSON fields whole: the declared and known JSON
    paths, whether conflicts make new ones, and the per-path shape counts."""

    declared: frozenset[Path]
    on_conflict: bool
    shapes: ShapeCounter
    found: list[Path] = field(default_factory=list)  # new JSON paths, from conflicts

    @classmethod
    def of(cls, spec: StreamSpec, known: frozenset[Path] = frozenset()) -> JsonTracking:
        return cls(
            spec.json.paths | known,
            spec.crawler.json_on_conflict,
            ShapeCounter(spec.crawler.json_max_shapes),
        )

    @property
    def paths(self) -> frozenset[Path]:
        return self.declared | frozenset(self.found)


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
    tracking = JsonTracking.of(spec)
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
        schema = _schema_of(found, report, spec.limits, seen, tracking)
        seen.schema = _merge_json_aware(seen.schema, schema, report, tracking)
        estimate = _record_estimate(found, info.size)
        seen.records_sampled += len(found.records)
        seen.sampled_bytes += found.sampled_bytes
        partition.stats["recordCount"] += estimate
        seen.csv_delimiter = seen.csv_delimiter or found.delimiter
    seen.conflicts = report.conflicts
    seen.json_fields = list(tracking.found)
    seen.json_field_candidates = [dotted(p) for p in tracking.shapes.candidates()]
    type_event_time(seen.schema, spec)
    return seen


def _merge_json_aware(
    schema: Struct, other: Struct, report: MergeReport, tracking: JsonTracking | None
) -> Struct:
    """merge(schema, other), with a struct/array-versus-other conflict under a key making
    that key JSON text (when the stream lets conflicts do so) instead of a conflict."""
    if tracking is not None:
        if tracking.on_conflict:
            for path in conflict_paths(schema, other):
                if path not in tracking.found:
                    tracking.found.append(path)
        paths = tracking.paths
        schema, other = collapse_schema(schema, paths), collapse_schema(other, paths)
    merged = merge(schema, other, report=report)
    assert isinstance(merged, Struct)
    return merged


def _schema_of(
    found: Classified,
    report: MergeReport,
    limits: RecordLimits,
    seen: HourSchema,
    tracking: JsonTracking | None = None,
) -> Struct:
    if found.schema_hint is not None:
        return found.schema_hint
    schema = Struct()
    merged = merge_records(schema, found.records, report, limits, tracking)
    seen.records_over_limits += sum(isinstance(r, dict) for r in found.records) - merged
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


def merge_records(
    schema: Struct,
    records: Iterable[Any],
    report: MergeReport,
    limits: RecordLimits | None = None,
    tracking: JsonTracking | None = None,
) -> int:
    """Merge the JSON objects among `records` into `schema` in place; return how many.
    A record past the stream's `limits` (nested too deep, a key too long, more leaves than
    max_columns) could never be cleaned (cleaning quarantines it): it is left out, so
    that it cannot fill the table with its keys or break the type code's recursion.
    With `tracking`, JSON fields are inferred as one string, never descended into."""
    merged = 0
    for value in records:
        if isinstance(value, dict):
            if limits is not None and value_problem(value, limits):
                continue
            if tracking is not None:
                tracking.shapes.observe(value, tracking.paths)
                value = collapse_record(value, tracking.paths)
            inferred = infer(value)
            if limits is not None and leaf_count(inferred) > limits.max_columns:
                continue
            merged += 1
            assert isinstance(inferred, Struct)
            schema.fields = _merge_json_aware(schema, inferred, report, tracking).fields
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
    """The Glue-shaped catalog kept as JSON files in the lake.

    The table is read-merged-written, so it is committed by compare-and-swap
    (read_table gives its version tag, commit_table writes only if it is unchanged); the
    commit's winner alone owns the new VersionId, so version files are numbered without
    gaps or overwrites however many crawls race."""

    COMMIT_ATTEMPTS = 20

    def __init__(self, lake: Storage, database: str) -> None:
        self.lake = lake
        self.database = database

    def table_key(self, table: str) -> str:
        return f"catalog/{self.database}/{table}.json"

    def get_table(self, table: str) -> dict[str, Any] | None:
        return self._get(self.table_key(table))

    def read_table(self, table: str) -> tuple[dict[str, Any] | None, str | None]:
        """The table and its version tag for commit_table (None, None when absent)."""
        found = self.lake.read_versioned(self.table_key(table))
        return (json.loads(found[0]), found[1]) if found else (None, None)

    def commit_table(
        self, table: dict[str, Any], read_tag: str | None, diff: SchemaDiff | None
    ) -> None:
        """Write the table if it is still as read (PreconditionFailed otherwise: re-read,
        re-merge, retry); with a diff, then its version file (the table names the version:
        a crash in between leaves that one version file missing, never a wrong one)."""
        self.lake.write_if(self.table_key(table["Name"]), _dumps(table), read_tag)
        if diff is not None:
            self.put_version(table, int(table["VersionId"]), diff)

    def version_key(self, table: str, version: int) -> str:
        return f"catalog/{self.database}/{table}/versions/{version}.json"

    def repair_version(self, table: dict[str, Any]) -> None:
        """Write the committed table's version file if a crash left it out (its diff is
        then unknown). Create-only: the committing writer's own, later write wins."""
        key = self.version_key(table["Name"], int(table["VersionId"]))
        if self.lake.exists(key):
            return
        doc = {"version": int(table["VersionId"]), "created_at": table["UpdateTime"]}
        doc |= {"diff": None, "repaired": "written after a crash, diff unknown", "table": table}
        with contextlib.suppress(PreconditionFailed):
            self.lake.write_if(key, _dumps(doc), None)

    def put_version(self, table: dict[str, Any], version: int, diff: SchemaDiff) -> None:
        doc = {
            "version": version,
            "created_at": table["UpdateTime"],
            "diff": diff.as_dict(),
            "table": table,
        }
        self.lake.write(self.version_key(table["Name"], version), _dumps(doc))

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
    name_map = json.loads(params.get("fieldNameMap", "{}"))
    schema = from_catalog(columns, name_map, json.loads(params.get("caseVariants", "{}")))
    for path in json.loads(params.get("nullOnlyFields", "[]")):
        _set_null(schema, path.split("."))
    restore_empty_objects(schema, json.loads(params.get("emptyObjectFields", "[]")))
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
    """Crawl the given objects (an arrival hour) and merge them into the stored table;
    a concurrent crawl's commit makes this one re-read and re-merge (the sample is kept)."""
    seen = sample_objects(spec, landing, objects)
    for _ in range(catalog.COMMIT_ATTEMPTS):
        try:
            return _merge_into_table(spec, catalog, landing, seen)
        except PreconditionFailed:
            time.sleep(random.uniform(0, 0.05))  # de-synchronise the racers
    raise ConcurrentUpdateError(f"catalog table {spec.name}: still changing after retries")


def _merge_into_table(
    spec: StreamSpec, catalog: Catalog, landing: Storage, seen: HourSchema
) -> CrawlResult:
    stored, read_tag = catalog.read_table(spec.name)
    if stored:
        catalog.repair_version(stored)
    stored_old = stored_schema(stored)
    tracking = JsonTracking.of(spec, paths_from_parameter(stored) | frozenset(seen.json_fields))
    sampled = collapse_schema(seen.schema, tracking.paths)
    # a key the stored table has as a struct and the sample as a string (or the reverse)
    proposed_schema = _merge_json_aware(stored_old, sampled, MergeReport(), tracking)
    seen.json_fields += [p for p in tracking.found if p not in seen.json_fields]
    json_paths = tracking.paths
    old = collapse_schema(stored_old, json_paths)
    sampled = collapse_schema(sampled, json_paths)
    proposed = diff_schemas(old, proposed_schema)
    incompatible = incompatibilities(proposed, spec.crawler.compatibility)
    policy = spec.crawler.change_policy
    new = _apply_policy(policy, old, sampled, proposed_schema, incompatible)
    if policy == "log":  # the table stays as it is, JSON fields included
        old = new = stored_old
        json_paths = paths_from_parameter(stored)
    new, seen.columns_over_limit = within_column_limit(old, new, spec.limits.max_columns)
    applied = diff_schemas(old, new)
    applied.widened += _made_json(stored_old, new, json_paths)
    version = int(stored["VersionId"]) if stored else 0
    json_text = json_parameter(p for p in json_paths if _has_path(new, p))
    json_changed = json_text != (stored or {}).get("Parameters", {}).get(JSON_PARAMETER, "[]")
    changed = stored is None or bool(applied) or json_changed
    version += 1 if changed else 0
    previous = _previous_partition_stats(catalog, spec.name, seen.partitions.values())
    stats = _table_stats(stored, previous, seen.partitions.values())
    classification = _classification(stored, seen)
    table = build_table(
        spec,
        catalog.database,
        landing.uri,
        new,
        stats,
        version,
        classification,
        seen,
        with_promoted(column_assignment(stored), spec),
    )
    table["Parameters"][JSON_PARAMETER] = json_text
    catalog.commit_table(table, read_tag, applied if changed else None)
    for partition in seen.partitions.values():
        catalog.put_partition(spec.name, partition_doc(table, landing, partition))
    return CrawlResult(table, version, changed, proposed, applied, incompatible, seen)


def _has_path(schema: Struct, path: Path) -> bool:
    node: HiveType = schema
    for key in path:
        if not isinstance(node, Struct) or key not in node.fields:
            return False
        node = node.fields[key]
    return True


def _made_json(before: Struct, after: Struct, paths: Iterable[Path]) -> list[str]:
    """`path: struct<...> -> string (JSON text)` for each stored struct or array made JSON."""
    out = []
    for path in paths:
        old: HiveType = before
        for key in path:
            old = old.fields.get(key, NULL) if isinstance(old, Struct) else NULL
        if isinstance(old, Struct | Array) and _has_path(after, path):
            out.append(f"{dotted(path)}: {to_hive(old)} -> string (JSON text)")
    return out


def with_promoted(
    assigned: dict[tuple[str, ...], str], spec: StreamSpec
) -> dict[tuple[str, ...], str]:
    """The cleaned column names plus one for each promoted sub-field of a declared JSON
    field (docs/schema-rules.md, 3a), so they never move either."""
    leaves = [(flat, path) for flat, path, _ in spec.json.promoted()]
    return assign_columns(leaves, assigned, spec.limits.max_name_bytes, LINEAGE_NAMES)


def within_column_limit(old: Struct, new: Struct, max_columns: int) -> tuple[Struct, list[str]]:
    """`new` with at most `max_columns` leaves: every leaf of `old` stays, new leaves are
    taken in column order while there is room; returns the dotted paths left out."""
    old_paths = {path for _, path, _ in leaf_columns(old)}
    fresh = [path for _, path, _ in leaf_columns(new) if path not in old_paths]
    room = max(0, max_columns - len(old_paths))
    if len(fresh) <= room:
        return new, []
    left_out = fresh[room:]
    return without_paths(new, set(left_out)), [".".join(p) for p in left_out]


def column_assignment(table: dict[str, Any] | None) -> dict[tuple[str, ...], str]:
    """The table's cleaned column names by original key path (see lake.column_names);
    a table written before they were kept gets the names cleaning gave it then."""
    if not table:
        return {}
    text = table.get("Parameters", {}).get(PARAMETER)
    if text:
        return from_parameter(text)
    leaves = [(flat, path) for flat, path, _ in leaf_columns(stored_schema(table))]
    return legacy_assignment(leaves, LINEAGE_NAMES)


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
    assigned: dict[tuple[str, ...], str] | None = None,
) -> dict[str, Any]:
    """A dict in the shape of Glue GetTable's `Table`; `assigned` holds the cleaned column
    names given so far (they never move; new leaves get theirs here)."""
    columns, name_map = catalog_names(schema)
    leaves = [(flat, path) for flat, path, _ in leaf_columns(schema)]
    names = assign_columns(leaves, assigned or {}, spec.limits.max_name_bytes, LINEAGE_NAMES)
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
