"""cleaned/<stream>: typed, flat, masked, deduplicated Parquet by event date, plus quarantine."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    FreshnessPolicy,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    TableColumn,
    TableSchema,
    asset,
)
from pydantic import Field

from assets.hourly import hourly_asset_args, hours_of, lists_from_mark
from lake.cleaning.run import (
    QUARANTINE_CHECK,
    RECONCILE_CHECK,
    CheckOutcome,
    RunOptions,
    clean_run,
)
from lake.settings import Settings
from lake.streams import StreamSpec
from orchestration.resources import LakeResource, PIIKeyResource


class CleanedConfig(Config):
    """Run options (the UI's launchpad shows them)."""

    full_refresh: bool = Field(
        default=False,
        description="Re-process every object of the hour, not only those no run has processed yet",
    )
    up_to_key: str | None = Field(
        default=None,
        description=(
            "Only objects whose key sorts at or before this one (default: every object of "
            "the hour not processed yet when the run starts, as the sensors' runs do)"
        ),
    )


def build_cleaned_asset(
    spec: StreamSpec, database: str, partitions: HourlyPartitionsDefinition
) -> AssetsDefinition:
    key = AssetKey(["cleaned", spec.name])

    @asset(
        **hourly_asset_args("cleaned", spec, partitions, "schema"),
        freshness_policy=FreshnessPolicy.time_window(
            fail_window=timedelta(minutes=spec.operations.freshness_fail_minutes),
            warn_window=(
                timedelta(minutes=spec.operations.freshness_warn_minutes)
                if spec.operations.freshness_warn_minutes
                else None
            ),
        ),
        kinds={"parquet"},
        description=f"{spec.description}: typed Parquet by event date (dt=), bad records quarantined.",
        check_specs=[
            AssetCheckSpec(
                RECONCILE_CHECK,
                asset=key,
                description="records_in = records_cleaned + records_quarantined + duplicates_dropped",
            ),
            AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=key,
                description=f"quarantined share of records <= {spec.max_quarantine_ratio}",
            ),
        ],
    )
    def _cleaned(
        context: AssetExecutionContext,
        config: CleanedConfig,
        lake: LakeResource,
        pii_key: PIIKeyResource,
        settings: ResourceParam[Settings],
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        options = RunOptions(config.full_refresh, config.up_to_key, lists_from_mark(context))
        runners = None
        if settings.clean_compute != "inprocess" and settings.clean_workers > 1:
            from orchestration.pipes_compute import ChunkWorkers, worker_extras

            extras = worker_extras(context, settings, spec, database, options)
            runners = ChunkWorkers(context, settings, extras, pii_key)  # a worker per chunk
        elif settings.clean_compute != "inprocess":
            # imported by the runs that use Pipes (dagster_aws.pipes: ECS, S3 readers)
            from orchestration.pipes_compute import clean_on_pipes, hours_metadata

            invocation = clean_on_pipes(context, settings, spec, database, options, pii_key)
            add_hours_metadata(context, hours_metadata(invocation))
            yield from invocation.get_results()  # type: ignore[misc]
            return
        landing, lake_storage = lake.landing(), lake.lake()
        key = pii_key.key_for(landing.uri, lake_storage.uri)
        try:
            result = clean_run(
                settings,
                spec,
                database,
                (landing, lake_storage),
                key,
                hours_of(context),
                options,
                context.log,
                runners,
            )
        finally:  # committed or not, what the chunks' workers handed back is spent
            if runners is not None:
                runners.drop_handoffs()
        add_hours_metadata(context, result.hour_metadata)
        yield MaterializeResult(
            metadata=dagster_metadata(result.metadata),
            check_results=[check_result(c) for c in result.checks],
        )

    return _cleaned


def add_hours_metadata(context: AssetExecutionContext, hours: dict[str, dict[str, Any]]) -> None:
    """Each hour's own metadata (by partition key), on top of what the run's result holds."""
    for partition, metadata in hours.items():
        context.add_asset_metadata(dagster_metadata(metadata), partition_key=partition)


def dagster_metadata(values: dict[str, Any]) -> dict[str, Any]:
    """Metadata in the Pipes wire form (lake.cleaning.run, lake.crawl_run) as Dagster's
    values, the way Dagster reads a Pipes worker's: typed JSON, markdown and table schemas;
    plain values as they are."""
    return {k: _dagster_value(v) for k, v in values.items()}


def _dagster_value(value: Any) -> Any:
    if not (isinstance(value, dict) and set(value) == {"type", "raw_value"}):
        return value
    if value["type"] == "table_schema":
        return TableSchema(columns=[TableColumn(**c) for c in value["raw_value"]["columns"]])
    if value["type"] == "json":
        return MetadataValue.json(value["raw_value"])
    if value["type"] == "md":  # lake.crawl_run's Athena DDL
        return MetadataValue.md(value["raw_value"])
    raise ValueError(f"metadata type {value['type']!r} is not one clean_run or crawl_run writes")


def check_result(outcome: CheckOutcome) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity(outcome.severity),
        metadata=dagster_metadata(outcome.metadata),
    )
