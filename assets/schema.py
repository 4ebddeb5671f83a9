"""schema/<stream>: the crawler's Glue-shaped catalog table, merged hour by hour, versioned,
with a blocking check that stops incompatible drift before it reaches cleaned/."""

from collections import Counter
from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)
from pydantic import Field

from assets.hourly import add_hour_metadata, hourly_asset_args, hours_of, lists_from_mark
from lake import layout
from lake.athena_ddl import show_create_table, table_problems
from lake.catalog_store import Catalog
from lake.crawler import CrawlResult, crawl_objects
from lake.glue_table import partition_doc
from lake.hour_totals import listing_mark
from lake.landing_scan import hour_listing
from lake.streams import StreamSpec
from orchestration.aws_resources import GlueResource
from orchestration.resources import LakeResource

COMPATIBLE_CHECK = "schema_compatible"


class SchemaConfig(Config):
    """Run options (the UI's launchpad shows them)."""

    full_crawl: bool = Field(
        default=False,
        description=(
            "Sample every object of the hour again, not only those no crawl has sampled in "
            "their current version"
        ),
    )


def build_schema_asset(
    spec: StreamSpec, database: str, partitions: HourlyPartitionsDefinition
) -> AssetsDefinition:
    key = AssetKey(["schema", spec.name])
    mode = spec.crawler.compatibility.upper()

    @asset(
        **hourly_asset_args("schema", spec, partitions, "landing"),
        kinds={"glue"},
        description=(
            f"Catalog table {database}.{spec.name} crawled from the landed objects "
            f"(change policy {spec.crawler.change_policy.upper()}, compatibility {mode})."
        ),
        check_specs=[
            AssetCheckSpec(
                COMPATIBLE_CHECK,
                asset=key,
                blocking=True,  # cleaned/ does not run on a schema its readers cannot follow
                description=f"the crawled schema change is {mode}-compatible with the table",
            )
        ],
    )
    def _schema(
        context: AssetExecutionContext, config: SchemaConfig, lake: LakeResource, glue: GlueResource
    ) -> Iterator[MaterializeResult]:
        landing, catalog = lake.landing(), Catalog(lake.lake(), database)
        glue_sync = glue.sync()
        results: list[CrawlResult] = []
        bounded = not config.full_crawl and lists_from_mark(context)
        for hour in hours_of(context):
            mark = listing_mark(catalog.lake, spec.name, hour) if bounded else None
            objects = hour_listing(landing, spec.name, hour, mark)
            if not objects:
                add_hour_metadata(context, hour, _crawl_metadata([]))
                continue
            result = crawl_objects(
                spec, catalog, landing, objects, config.full_crawl, complete=mark is None
            )
            results.append(result)
            add_hour_metadata(context, hour, _crawl_metadata([result]))
            if glue_sync is not None:
                glue_partitions = [
                    partition_doc(result.table, landing, p) for p in result.hour.partitions.values()
                ]
                synced = glue_sync.sync_table(result.table, glue_partitions)
                context.log.info(f"Glue {glue_sync.database}.{spec.name}: {synced}")
        table = results[-1].table if results else catalog.get_table(spec.name)
        yield MaterializeResult(
            metadata=_table_metadata(database, spec, table),
            check_results=[_compatibility(results, mode)],
        )

    return _schema


def _table_metadata(database: str, spec: StreamSpec, table: dict | None) -> dict:
    """The catalog table after the run (the same for every hour of the run)."""
    columns = table["StorageDescriptor"]["Columns"] if table else []
    athena = {}
    if table:  # the DDL for users who create the table in Athena by hand, not by Glue sync
        athena = {
            "athena_ddl": MetadataValue.md(f"```sql\n{show_create_table(table)}\n```"),
            "athena_problems": MetadataValue.json(table_problems(table)),
        }
    return athena | {
        "dagster/column_schema": TableSchema(
            columns=[
                TableColumn(c["Name"], c["Type"], description=c.get("Comment") or None)
                for c in columns
            ]
        ),
        "table": f"{database}.{spec.name}",
        "version": int(table["VersionId"]) if table else 0,
        "catalog_key": layout.catalog_table(database, spec.name),
    }


def _crawl_metadata(results: list[CrawlResult]) -> dict:
    """What crawling an hour found: `objects` is the hour's (as its partition counts them);
    the rest is what this run sampled, the objects no crawl had sampled in their version
    (every object with `full_crawl`). An hour with no objects has none."""
    unknown = {k: v for r in results for k, v in r.hour.unknown.items()}
    return {
        "new_versions": MetadataValue.json([r.version for r in results if r.changed]),
        "applied_changes": MetadataValue.json([r.applied.as_dict() for r in results if r.applied]),
        "objects": sum(p.stats["objectCount"] for r in results for p in r.hour.partitions.values()),
        "objects_crawled": sum(r.hour.objects for r in results),
        "records_sampled": sum(r.hour.records_sampled for r in results),
        "classifications": MetadataValue.json(
            dict(sum((r.hour.classifications for r in results), Counter()))
        ),
        "unknown_objects": MetadataValue.json(unknown),
        "type_conflicts": MetadataValue.json([c for r in results for c in r.hour.conflicts]),
        "records_over_limits": sum(r.hour.records_over_limits for r in results),
        "json_fields_from_conflicts": MetadataValue.json(
            sorted({".".join(p) for r in results for p in r.hour.json_fields})
        ),
        "json_field_candidates": MetadataValue.json(
            sorted({p for r in results for p in r.hour.json_field_candidates})
        ),
        "columns_over_limit": MetadataValue.json(
            [c for r in results for c in r.hour.columns_over_limit]
        ),
    }


def _compatibility(results: list[CrawlResult], mode: str) -> AssetCheckResult:
    incompatible = [change for r in results for change in r.incompatible]
    return AssetCheckResult(
        check_name=COMPATIBLE_CHECK,
        passed=not incompatible,
        metadata={
            "compatibility": mode,
            "incompatible_changes": MetadataValue.json(incompatible),
            "proposed_changes": MetadataValue.json(
                [r.proposed.as_dict() for r in results if r.proposed]
            ),
        },
    )
