"""A Glue-style crawler: sample an hour's objects, infer their schema, merge it into the
stored catalog table under the stream's change policy and compatibility mode, and write
the table (GetTable's `Table` shape), its versions and its partitions.

The parts: lake.crawl_sample (what the sample holds), lake.schema_drift (diffs and
policies), lake.glue_table (the table document), lake.catalog_store (where it is kept).
The rules are written down in docs/schema-rules.md.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from lake import layout
from lake.catalog_store import Catalog, column_assignment, stored_schema
from lake.crawl_record import Record, of_entries, read_record, record_bytes, with_added, without
from lake.crawl_sample import (
    HourSchema,
    JsonTracking,
    Partition,
    merge_json_aware,
    partition_of,
    sample_objects,
)
from lake.glue_table import (
    build_table,
    partition_doc,
    previous_partition_stats,
    table_classification,
    table_stats,
    with_promoted,
)
from lake.hive_types import MergeReport
from lake.json_fields import PARAMETER as JSON_PARAMETER
from lake.json_fields import collapse_schema, paths_from_parameter
from lake.json_fields import to_parameter as json_parameter
from lake.schema_drift import (
    SchemaDiff,
    apply_policy,
    diff_schemas,
    has_path,
    incompatibilities,
    made_json,
    within_column_limit,
)
from lake.storage import (
    ConcurrentUpdateError,
    ObjectInfo,
    PreconditionFailed,
    Storage,
)
from lake.streams import StreamSpec


@dataclass
class CrawlResult:
    table: dict[str, Any]
    version: int
    changed: bool  # a new table version was written
    proposed: SchemaDiff  # what the sampled data asks for
    applied: SchemaDiff  # what the policy let into the table
    incompatible: list[str]  # changes the compatibility mode forbids (not applied)
    hour: HourSchema


def crawl_objects(
    spec: StreamSpec,
    catalog: Catalog,
    landing: Storage,
    objects: list[ObjectInfo],
    full: bool = False,
    complete: bool = True,
) -> CrawlResult:
    """Crawl an arrival hour (`objects`: the whole listing of its folder, or with
    `complete` False a bounded one, lake.landing_scan.hour_listing) and merge it into the
    stored table; a concurrent crawl's commit makes this one re-read and re-merge (the
    sample is kept).

    Only objects the partition's crawl record (`layout.crawl_record`: key -> ETag, size,
    record estimate) does not hold in their version are sampled; the partition's stats
    are summed over the listed objects, the earlier ones from the record (an object gone
    from the listing drops out), so a record and stats out of step (a crawl killed
    between writing them) agree again after the next crawl. With a bounded listing the
    record's other objects count as recorded (an object gone or overwritten below the
    listing is noticed by the next crawl of the whole hour). `full` samples every object
    again, so it needs the whole listing. The sample's schema merges into the stored
    table's, so what earlier crawls added stays."""
    if full and not complete:
        raise ValueError("a full crawl samples every object: it needs the whole listing")
    records = {} if full else _records(spec, catalog, objects)
    todo = [o for o in objects if not _recorded(spec, records, o)]
    seen = sample_objects(spec, landing, todo)
    sampled = {o.key for o in todo}
    _count_recorded(seen, records, objects, sampled, complete)
    # a bounded crawl adds its objects to the records; a whole one writes them anew
    appended = {} if complete else {folder: record for folder, (_, record) in records.items()}
    for _ in range(catalog.COMMIT_ATTEMPTS):
        try:
            return _merge_into_table(spec, catalog, landing, seen, sampled, appended)
        except PreconditionFailed:
            time.sleep(random.uniform(0, 0.05))  # de-synchronise the racers
    raise ConcurrentUpdateError(f"catalog table {spec.name}: still changing after retries")


def _merge_into_table(
    spec: StreamSpec,
    catalog: Catalog,
    landing: Storage,
    seen: HourSchema,
    fresh: set[str],
    appended: dict[str, Record],
) -> CrawlResult:
    stored, read_tag = catalog.read_table(spec.name)
    if stored:
        catalog.repair_version(stored)
    stored_old = stored_schema(stored)
    tracking = JsonTracking.of(spec, paths_from_parameter(stored) | frozenset(seen.json_fields))
    sampled = collapse_schema(seen.schema, tracking.paths)
    # a key the stored table has as a struct and the sample as a string (or the reverse)
    proposed_schema = merge_json_aware(stored_old, sampled, MergeReport(), tracking)
    seen.json_fields += [p for p in tracking.found if p not in seen.json_fields]
    json_paths = tracking.paths
    old = collapse_schema(stored_old, json_paths)
    sampled = collapse_schema(sampled, json_paths)
    proposed = diff_schemas(old, proposed_schema)
    incompatible = incompatibilities(proposed, spec.crawler.compatibility)
    policy = spec.crawler.change_policy
    new = apply_policy(policy, old, sampled, proposed_schema, incompatible)
    if policy == "log":  # the table stays as it is, JSON fields included
        old = new = stored_old
        json_paths = paths_from_parameter(stored)
    new, seen.columns_over_limit = within_column_limit(old, new, spec.limits.max_columns)
    applied = diff_schemas(old, new)
    applied.widened += made_json(stored_old, new, json_paths)
    version = int(stored["VersionId"]) if stored else 0
    json_text = json_parameter(p for p in json_paths if has_path(new, p))
    json_changed = json_text != (stored or {}).get("Parameters", {}).get(JSON_PARAMETER, "[]")
    changed = stored is None or bool(applied) or json_changed
    version += 1 if changed else 0
    previous = previous_partition_stats(catalog, spec.name, seen.partitions.values())
    stats = table_stats(stored, previous, seen.partitions.values())
    classification = table_classification(stored, seen)
    if seen.csv_delimiter is None and stored:  # no CSV object among the new ones
        serde = stored["StorageDescriptor"].get("SerdeInfo", {}).get("Parameters", {})
        seen.csv_delimiter = serde.get("field.delim")
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
    # what the table did not take (an incompatible change, the policy or the column limit
    # holding back) is proposed again by the next crawl: its objects stay uncrawled
    held_back = bool(incompatible) or proposed.as_dict() != applied.as_dict()
    for partition in seen.partitions.values():
        crawled = {k: v for k, v in partition.crawled.items() if not (held_back and k in fresh)}
        record = layout.crawl_record(catalog.database, spec.name, partition.values)
        catalog.lake.write(record, _record_after(appended, partition, crawled))
        catalog.put_partition(spec.name, partition_doc(table, landing, partition))
    return CrawlResult(table, version, changed, proposed, applied, incompatible, seen)


def _records(
    spec: StreamSpec, catalog: Catalog, objects: list[ObjectInfo]
) -> dict[str, tuple[Partition, Record]]:
    """The crawl records of `objects`' partitions, by partition folder."""
    partitions: dict = {}
    for info in objects:
        partition_of(spec, info.key, partitions)
    return {
        folder: (partition, read_record(catalog.lake, _record_key(spec, catalog, partition)))
        for folder, partition in partitions.items()
    }


def _record_key(spec: StreamSpec, catalog: Catalog, partition: Partition) -> str:
    return layout.crawl_record(catalog.database, spec.name, partition.values)


def _recorded(
    spec: StreamSpec, records: dict[str, tuple[Partition, Record]], info: ObjectInfo
) -> bool:
    found = records.get(partition_of(spec, info.key, {}).folder)
    return found is not None and found[1].holds(info.key, info.etag, info.size)


def _count_recorded(
    seen: HourSchema,
    records: dict[str, tuple[Partition, Record]],
    objects: list[ObjectInfo],
    sampled: set[str],
    complete: bool,
) -> None:
    """Count in the partitions' stats the objects their records hold and this crawl did
    not sample: the listed ones (a whole listing: an object gone from it drops out), or
    every recorded one, from the record's sums (a bounded listing: no entry parsed)."""
    listed = {o.key for o in objects}
    for folder, (empty_partition, record) in records.items():
        if folder not in seen.partitions and not record.sums[0]:
            continue  # nothing sampled or recorded there (folder markers only)
        partition = seen.partitions.setdefault(folder, empty_partition)
        if complete:
            entries = record.entries()
            for key in sorted((entries.keys() & listed) - sampled):
                partition.count(key, *entries[key])
            continue
        objects_, size, count = without(record, sampled)
        partition.stats.update(objectCount=objects_, sizeKey=size, recordCount=count)


def _record_after(appended: dict[str, Record], partition: Partition, crawled: dict) -> bytes:
    """The partition's record after this crawl: `crawled` added to the record read (a
    bounded listing), else exactly `crawled` (a whole listing: it holds every counted
    object)."""
    record = appended.get(partition.folder)
    return record_bytes(of_entries(crawled) if record is None else with_added(record, crawled))
