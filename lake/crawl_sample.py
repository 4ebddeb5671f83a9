"""What one crawl saw: each object classified and sampled, the sample's schema inferred
and merged (JSON fields kept whole), and per-partition counts (Glue's estimates)."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lake.classifiers import Classified, SampleLimits, classify_object
from lake.firehose import hour_prefix, is_folder_marker, parse_key
from lake.hive_types import MergeReport, Struct, infer, leaf_count, merge, value_signature
from lake.json_fields import (
    Path,
    ShapeCounter,
    collapse_record,
    collapse_schema,
    conflict_paths,
    dotted,
)
from lake.record_limits import value_problem
from lake.storage import ObjectInfo, Storage
from lake.streams import RecordLimits, StreamSpec


@dataclass
class Partition:
    names: list[str]
    values: list[str]
    folder: str  # key prefix of the partition under the landing root, ending with '/'
    stats: Counter = field(default_factory=Counter)
    # each object counted in `stats`: key -> [ETag, size, record estimate]
    crawled: dict[str, list] = field(default_factory=dict)

    def count(self, key: str, etag: str, size: int, records: int) -> None:
        self.stats["objectCount"] += 1
        self.stats["sizeKey"] += size
        self.stats["recordCount"] += records
        self.crawled[key] = [etag, size, records]


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
    """What RecordMerger needs to keep JSON fields whole: the declared and known JSON
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


def sample_objects(spec: StreamSpec, landing: Storage, objects: Iterable[ObjectInfo]) -> HourSchema:
    """Classify and sample every object (Glue: first 1 MB or 1,000 records of each)."""
    limits = SampleLimits(
        max_bytes=spec.crawler.sample_bytes, max_records=spec.crawler.sample_records
    )
    seen = HourSchema()
    report = MergeReport()
    tracking = JsonTracking.of(spec)
    merger = RecordMerger(report, spec.limits, tracking)
    for info in objects:
        if is_folder_marker(info.key, info.size):
            seen.unknown[info.key] = "folder_marker: an S3 console folder, not data (ignored)"
            continue
        seen.objects += 1
        seen.bytes += info.size
        found = classify_object(landing, info.key, info.size, limits, spec.records_key)
        seen.classifications[found.classification] += 1
        partition = partition_of(spec, info.key, seen.partitions)
        if found.classification == "UNKNOWN":
            partition.count(info.key, info.etag, info.size, 0)
            seen.unknown[info.key] = found.reason or "no classifier accepted it"
            continue
        partition.count(info.key, info.etag, info.size, _record_estimate(found, info.size))
        schema = _schema_of(found, merger, seen)
        seen.schema = merge_json_aware(seen.schema, schema, report, tracking)
        seen.records_sampled += len(found.records)
        seen.sampled_bytes += found.sampled_bytes
        seen.csv_delimiter = seen.csv_delimiter or found.delimiter
    seen.conflicts = report.conflicts
    seen.json_fields = list(tracking.found)
    seen.json_field_candidates = [dotted(p) for p in tracking.shapes.candidates()]
    type_event_time(seen.schema, spec)
    return seen


def merge_json_aware(
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


def _schema_of(found: Classified, merger: RecordMerger, seen: HourSchema) -> Struct:
    if found.schema_hint is not None:
        return found.schema_hint
    schema = Struct()
    merged = merger.merge(schema, found.records)
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


UNBOUNDED_DEPTH = 200  # how deep a signature goes when the stream sets no limits
MAX_SHAPES_KEPT = 4096  # distinct record signatures remembered (forgotten all at once past it)


@dataclass
class _Shape:
    """What every record of one signature gives, with the JSON paths of `paths_seen`."""

    paths_seen: int  # len(tracking.found) when inferred
    inferred: Struct | None  # None: past the stream's limits, left out
    # (merge call, schema version) it last merged into without changing the schema,
    # and the conflicts that merge reported (a record reports them each time)
    merged_at: tuple[object, int] | None = None
    conflicts: list[str] = field(default_factory=list)


class RecordMerger:
    """Merges sampled records into schemas, doing the per-record work once per distinct
    record signature (a stream's records share a few shapes): the limits check, the shape
    count, the collapse of JSON fields and inference; the merge too, unless the schema
    changed since that shape last merged into it without changing it."""

    def __init__(
        self,
        report: MergeReport,
        limits: RecordLimits | None = None,
        tracking: JsonTracking | None = None,
    ) -> None:
        self.report, self.limits, self.tracking = report, limits, tracking
        self.max_depth = limits.max_nesting_depth if limits is not None else UNBOUNDED_DEPTH
        self.shapes: dict[Any, _Shape] = {}

    def merge(self, schema: Struct, records: Iterable[Any]) -> int:
        """Merge the JSON objects among `records` into `schema` in place; return how many."""
        call, version, merged = object(), 0, 0
        unchanged = (call, version)  # (merge call, schema version) of a no-op merge now
        shapes, max_depth, conflicts = self.shapes, self.max_depth, self.report.conflicts
        paths_seen = self._paths_seen()  # changes only where a merge changes the schema
        for value in records:
            if not isinstance(value, dict):
                continue
            # the shape lookup inline: it is the per-record work of a repeated shape
            signature = value_signature(value, max_depth)
            shape = shapes.get(signature) if signature is not None else None
            if shape is None or shape.paths_seen != paths_seen:
                shape = self._new_shape(value, signature, paths_seen)
            if shape.inferred is None:
                continue
            merged += 1
            if shape.merged_at is unchanged:
                if shape.conflicts:
                    conflicts.extend(shape.conflicts)
                continue
            reported = len(conflicts)
            fields = merge_json_aware(schema, shape.inferred, self.report, self.tracking).fields
            if fields != schema.fields or self._paths_seen() != paths_seen:
                schema.fields, version = fields, version + 1
                unchanged = (call, version)
                paths_seen = self._paths_seen()
            else:
                shape.merged_at = unchanged
                shape.conflicts = conflicts[reported:]
        return merged

    def _paths_seen(self) -> int:
        return len(self.tracking.found) if self.tracking is not None else 0

    def _new_shape(self, value: dict[str, Any], signature: Any, paths_seen: int) -> _Shape:
        """The shape of a record whose signature is new (or None: not kept), or was
        inferred before the JSON paths last grew."""
        shape = _Shape(paths_seen, self.record_type(value))
        if signature is not None:
            if len(self.shapes) >= MAX_SHAPES_KEPT:
                self.shapes.clear()
            self.shapes[signature] = shape
        return shape

    def record_type(self, value: dict[str, Any]) -> Struct | None:
        """A record's type, or None past the stream's `limits` (nested too deep, a key too
        long, more leaves than max_columns): it could never be cleaned (cleaning
        quarantines it), so it must not fill the table with its keys or break the type
        code's recursion. With `tracking`, JSON fields are one string, never descended."""
        limits, tracking = self.limits, self.tracking
        if limits is not None and value_problem(value, limits):
            return None
        if tracking is not None:
            tracking.shapes.observe(value, tracking.paths)
            value = collapse_record(value, tracking.paths)
        inferred = infer(value)
        if limits is not None and leaf_count(inferred) > limits.max_columns:
            return None
        assert isinstance(inferred, Struct)
        return inferred


def type_event_time(schema: Struct, spec: StreamSpec) -> None:
    """The declared event-time field is a timestamp, even when it holds epoch numbers."""
    if spec.event_time_field in schema.fields:
        schema.fields[spec.event_time_field] = "timestamp"


def partition_of(spec: StreamSpec, key: str, partitions: dict[str, Partition]) -> Partition:
    """Hive-style `k=v` folders name their keys; plain folders are partition_0.. (Glue),
    unless the stream names them."""
    folder = _partition_folder(key.rsplit("/", 1)[0] if "/" in key else "")
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


@functools.lru_cache(maxsize=4096)
def _partition_folder(directory: str) -> str:
    """The partition folder of the objects in `directory`: the arrival hour's folder for a
    Firehose layout (`HH//name` is in the hour folder, like `HH/name`), else the directory.
    Only the directory decides it, so an hour's thousands of keys parse it once."""
    parsed = parse_key(f"{directory}/_")
    if parsed is None:
        return directory + "/"
    return hour_prefix(parsed.stream, parsed.arrival_hour)
