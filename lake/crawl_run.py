"""One crawl run of a stream, whatever runs it: the schema/<stream> asset in the run's
process, or a Dagster Pipes worker (workers/crawl.py) in a subprocess or an ECS task.

`crawl_run` crawls the hours one by one into the stored catalog table, syncs each to Glue
when a GlueSync is given, and reports per-hour metadata, the table's metadata and the
compatibility check's outcome in the Pipes wire form (lake.cleaning.run), so the asset
reads the same whether it came from this process or from a worker's messages.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lake import layout
from lake.athena_ddl import show_create_table, table_problems
from lake.catalog_store import Catalog
from lake.cleaning.run import CheckOutcome, RunLog, json_value
from lake.crawler import CrawlResult, crawl_objects
from lake.firehose import partition_key
from lake.glue_sync import GlueSync
from lake.glue_table import partition_doc
from lake.hour_totals import listing_mark
from lake.landing_scan import hour_listing
from lake.storage import Storage
from lake.streams import StreamSpec

COMPATIBLE_CHECK = "schema_compatible"


@dataclass(frozen=True)
class CrawlOptions:
    """A run's choices (the asset's config, and whether a sensor's run lists from a mark)."""

    full_crawl: bool = False
    from_mark: bool = False  # list each hour from the previous run's mark on


@dataclass
class CrawlRunResult:
    """What a run did: each hour's metadata (by partition key), the catalog table's
    metadata after the run and the compatibility check's outcome."""

    hour_metadata: dict[str, dict[str, Any]]
    metadata: dict[str, Any]
    check: CheckOutcome


def crawl_run(
    spec: StreamSpec,
    database: str,
    storages: tuple[Storage, Storage],
    hours: list[datetime],
    options: CrawlOptions,
    log: RunLog,
    glue_sync: GlueSync | None = None,
) -> CrawlRunResult:
    """Crawl `hours` of `spec`'s stream from the landing zone into the lake's catalog
    (`storages` = (landing, lake)) and report it."""
    landing, lake = storages
    catalog = Catalog(lake, database)
    hour_metadata: dict[str, dict[str, Any]] = {}
    results: list[CrawlResult] = []
    bounded = not options.full_crawl and options.from_mark
    for hour in hours:
        mark = listing_mark(catalog.lake, spec.name, hour) if bounded else None
        objects = hour_listing(landing, spec.name, hour, mark)
        if not objects:
            hour_metadata[partition_key(hour)] = crawl_metadata([])
            continue
        result = crawl_objects(
            spec, catalog, landing, objects, options.full_crawl, complete=mark is None
        )
        results.append(result)
        hour_metadata[partition_key(hour)] = crawl_metadata([result])
        if glue_sync is not None:
            glue_partitions = [
                partition_doc(result.table, landing, p) for p in result.hour.partitions.values()
            ]
            synced = glue_sync.sync_table(result.table, glue_partitions)
            log.info(f"Glue {glue_sync.database}.{spec.name}: {synced}")
    table = results[-1].table if results else catalog.get_table(spec.name)
    return CrawlRunResult(
        hour_metadata,
        table_metadata(database, spec, table),
        compatibility(results, spec.crawler.compatibility.upper()),
    )


def table_metadata(database: str, spec: StreamSpec, table: dict | None) -> dict[str, Any]:
    """The catalog table after the run (the same for every hour of the run)."""
    columns = table["StorageDescriptor"]["Columns"] if table else []
    athena = {}
    if table:  # the DDL for users who create the table in Athena by hand, not by Glue sync
        athena = {
            "athena_ddl": {"type": "md", "raw_value": f"```sql\n{show_create_table(table)}\n```"},
            "athena_problems": json_value(table_problems(table)),
        }
    schema = [
        {"name": c["Name"], "type": c["Type"], "description": c.get("Comment") or None}
        for c in columns
    ]
    return athena | {
        "dagster/column_schema": {"type": "table_schema", "raw_value": {"columns": schema}},
        "table": f"{database}.{spec.name}",
        "version": int(table["VersionId"]) if table else 0,
        "catalog_key": layout.catalog_table(database, spec.name),
    }


def crawl_metadata(results: list[CrawlResult]) -> dict[str, Any]:
    """What crawling an hour found: `objects` is the hour's (as its partition counts them);
    the rest is what this run sampled, the objects no crawl had sampled in their version
    (every object with `full_crawl`). An hour with no objects has none."""
    unknown = {k: v for r in results for k, v in r.hour.unknown.items()}
    return {
        "new_versions": json_value([r.version for r in results if r.changed]),
        "applied_changes": json_value([r.applied.as_dict() for r in results if r.applied]),
        "objects": sum(p.stats["objectCount"] for r in results for p in r.hour.partitions.values()),
        "objects_crawled": sum(r.hour.objects for r in results),
        "records_sampled": sum(r.hour.records_sampled for r in results),
        "classifications": json_value(
            dict(sum((r.hour.classifications for r in results), Counter()))
        ),
        "unknown_objects": json_value(unknown),
        "type_conflicts": json_value([c for r in results for c in r.hour.conflicts]),
        "records_over_limits": sum(r.hour.records_over_limits for r in results),
        "json_fields_from_conflicts": json_value(
            sorted({".".join(p) for r in results for p in r.hour.json_fields})
        ),
        "json_field_candidates": json_value(
            sorted({p for r in results for p in r.hour.json_field_candidates})
        ),
        "columns_over_limit": json_value([c for r in results for c in r.hour.columns_over_limit]),
    }


def compatibility(results: list[CrawlResult], mode: str) -> CheckOutcome:
    incompatible = [change for r in results for change in r.incompatible]
    return CheckOutcome(
        COMPATIBLE_CHECK,
        passed=not incompatible,
        metadata={
            "compatibility": mode,
            "incompatible_changes": json_value(incompatible),
            "proposed_changes": json_value([r.proposed.as_dict() for r in results if r.proposed]),
        },
    )
