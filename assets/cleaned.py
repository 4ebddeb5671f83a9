"""cleaned/<stream>: typed, flat, masked, deduplicated Parquet by event date, plus quarantine."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assets.hourly import hourly_asset_args, hours_of
from lake.cleaning.hour import clean_hour
from lake.cleaning.report import HourReport
from lake.crawler import Catalog
from lake.firehose import hour_prefix
from lake.retype import retype_stream
from lake.streams import StreamSpec
from orchestration.resources import LakeResource, PIIKeyResource

RECONCILE_CHECK = "records_reconcile"


class CleanedConfig(Config):
    """Run options (the UI's launchpad shows them)."""

    full_refresh: bool = Field(
        default=False,
        description="Re-process every object of the hour, not only those no run has processed yet",
    )
    up_to_key: str | None = Field(
        default=None,
        description=(
            "Only objects whose key sorts at or before this one (a sensor's batch: newer "
            "objects wait for the run of their own batch)"
        ),
    )


QUARANTINE_CHECK = "quarantine_ratio"


def build_cleaned_asset(spec: StreamSpec, database: str) -> AssetsDefinition:
    key = AssetKey(["cleaned", spec.name])

    @asset(
        **hourly_asset_args("cleaned", spec.name, "schema"),
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
    ) -> Iterator[MaterializeResult]:
        landing, lake_storage = lake.landing(), lake.lake()
        key = pii_key.key_for(landing.uri, lake_storage.uri)
        table = Catalog(lake_storage, database).get_table(spec.name)
        if table is None:
            context.log.warning(
                f"no catalog table {database}.{spec.name} yet: typing from this run's records; "
                f"materialize schema/{spec.name} to record the schema"
            )
        total = HourReport()
        for hour in hours_of(context):
            objects = [
                o
                for o in landing.list(hour_prefix(spec.name, hour))
                if config.up_to_key is None or o.key <= config.up_to_key
            ]
            report = clean_hour(
                spec,
                table,
                landing,
                lake_storage,
                hour,
                objects,
                full_refresh=config.full_refresh,
                pii_key=key,
            )
            total.absorb(report)
        # files cleaned under an older catalog version get the current column types
        retyped = retype_stream(spec, table, landing, lake_storage, key)
        if retyped.files_retyped:
            context.log.info(
                f"retyped {len(retyped.files_retyped)} cleaned files of {spec.name} to the "
                f"catalog's types ({len(retyped.objects_recleaned)} objects re-cleaned from "
                f"landing, {len(retyped.objects_cast)} cast)"
            )
        yield MaterializeResult(
            metadata={
                **total.as_metadata(),
                "event_dates": MetadataValue.json(sorted(total.event_dates)),
                "quarantine_ratio": round(total.quarantine_ratio, 6),
                "catalog_version": int(table["VersionId"]) if table else 0,
                "columns_not_in_catalog": MetadataValue.json(
                    {k: v for k, v in total.columns_not_in_catalog.items() if v}
                ),
                "files_written": len(total.files_written),
                "pii_key_source": key.source,
                **retyped.as_metadata(),
            },
            check_results=[_reconcile(total), _quarantine(total, spec.max_quarantine_ratio)],
        )

    return _cleaned


def _reconcile(total: HourReport) -> AssetCheckResult:
    accounted = total.records_cleaned + total.records_quarantined + total.duplicates_dropped
    return AssetCheckResult(
        check_name=RECONCILE_CHECK,
        passed=accounted == total.records_in and not total.unbalanced_objects,
        metadata={
            "records_in": total.records_in,
            "accounted": accounted,
            "unbalanced_objects": MetadataValue.json(total.unbalanced_objects),
        },
    )


def _quarantine(total: HourReport, limit: float) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=total.quarantine_ratio <= limit,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "records_quarantined": total.records_quarantined,
            "records_in": total.records_in,
            "ratio": round(total.quarantine_ratio, 6),
            "limit": limit,
        },
    )
