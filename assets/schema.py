"""schema/<stream>: the crawler's Glue-shaped catalog table, merged hour by hour, versioned,
with a blocking check that stops incompatible drift before it reaches cleaned/."""

from collections.abc import Iterator
from dataclasses import replace

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    HourlyPartitionsDefinition,
    MaterializeResult,
    ResourceParam,
    asset,
)
from pydantic import Field

from assets.cleaned import add_hours_metadata, check_result, dagster_metadata
from assets.hourly import hourly_asset_args, hours_of, lists_from_mark
from lake.crawl_run import COMPATIBLE_CHECK, CrawlOptions, crawl_run
from lake.settings import Settings
from lake.streams import StreamSpec
from orchestration.aws_resources import GlueResource
from orchestration.resources import LakeResource

__all__ = ["COMPATIBLE_CHECK", "SchemaConfig", "build_schema_asset"]


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
        context: AssetExecutionContext,
        config: SchemaConfig,
        lake: LakeResource,
        glue: GlueResource,
        settings: ResourceParam[Settings],
    ) -> Iterator[MaterializeResult]:
        options = CrawlOptions(config.full_crawl, lists_from_mark(context))
        if settings.crawl_compute != "inprocess":
            # imported by the runs that use Pipes (dagster_aws.pipes: ECS, S3 readers)
            from orchestration.pipes_compute import crawl_on_pipes, hours_metadata

            # the worker syncs to the resource's Glue database, as the in-process crawl does
            on_worker = replace(settings, glue_database=glue.database or None)
            invocation = crawl_on_pipes(context, on_worker, spec, database, options)
            add_hours_metadata(context, hours_metadata(invocation))
            yield from invocation.get_results()  # type: ignore[misc]
            return
        result = crawl_run(
            spec,
            database,
            (lake.landing(), lake.lake()),
            hours_of(context),
            options,
            context.log,
            glue.sync(),
        )
        add_hours_metadata(context, result.hour_metadata)
        yield MaterializeResult(
            metadata=dagster_metadata(result.metadata),
            check_results=[check_result(result.check)],
        )

    return _schema
