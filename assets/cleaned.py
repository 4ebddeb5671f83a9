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

from assets.hourly import add_hour_metadata, hourly_asset_args, hours_of, lists_from_mark
from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning.columns import LINEAGE_TYPES
from lake.cleaning.report import HourReport
from lake.hour_totals import HourTotals, hour_totals, listing_mark
from lake.iceberg.catalog import LakeTables
from lake.landing_scan import hour_listing
from lake.settings import Settings
from lake.storage import Storage
from lake.streams import StreamSpec
from orchestration.resources import LakeResource, PIIKeyResource

RECONCILE_CHECK = "records_reconcile"
FILES_SHOWN = 50


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


QUARANTINE_CHECK = "quarantine_ratio"


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
    ) -> Iterator[MaterializeResult]:
        # imported by the run that cleans, not by every process loading the code location
        # (pyiceberg, DuckDB and the cleaning package: about a second)
        from lake.cleaning.commit import RunCommit
        from lake.cleaning.hour import CleaningSession, clean_hours
        from lake.retype import retype_stream
        from lake.warehouse import Warehouse

        landing, lake_storage = lake.landing(), lake.lake()
        key = pii_key.key_for(landing.uri, lake_storage.uri)
        table = Catalog(lake_storage, database).get_table(spec.name)
        if table is None:
            context.log.warning(
                f"no catalog table {database}.{spec.name} yet: typing from this run's records; "
                f"materialize schema/{spec.name} to record the schema"
            )
        total = HourReport()
        # a landing sensor's run lists its hour from the previous run's mark on
        bounded = not config.full_refresh and lists_from_mark(context)
        tables = LakeTables(settings)
        run_commit = RunCommit(
            tables, spec, lake_storage
        )  # one Iceberg commit for every hour of the run
        marks = {
            h: listing_mark(lake_storage, spec.name, h) if bounded else None
            for h in hours_of(context)
        }
        landed = {h: hour_listing(landing, spec.name, h, mark) for h, mark in marks.items()}
        with CleaningSession(settings, key) as session:  # one DuckDB connection for the run
            reports = clean_hours(  # the hours' objects share passes: a backfill pays per pass
                spec,
                table,
                landing,
                lake_storage,
                {
                    hour: [o for o in objs if config.up_to_key is None or o.key <= config.up_to_key]
                    for hour, objs in landed.items()
                },
                full_refresh=config.full_refresh,
                pii_key=key,
                settings=settings,
                tables=tables,
                run_commit=run_commit,
                session=session,
            )
        for batch in reports.values():
            total.absorb(batch)
        commits = run_commit.commit()
        # files cleaned under an older catalog version get the current column types
        retyped = retype_stream(spec, table, landing, lake_storage, key, settings, tables)
        if retyped.files_retyped:
            context.log.info(
                f"retyped {len(retyped.files_retyped)} cleaned files of {spec.name} to the "
                f"catalog's types ({len(retyped.objects_recleaned)} objects re-cleaned from "
                f"landing, {len(retyped.objects_cast)} cast)"
            )
        # after both commits: the warehouse's views list the files they left
        exposed = Warehouse(
            settings.warehouse_path, settings.warehouse_lock_wait_seconds
        ).expose_stream(lake_storage, tables, spec.name)
        if exposed.pending:
            context.log.warning(f"warehouse views of {spec.name} pending: {exposed.pending}")
        for hour, batch in reports.items():  # after retype: the types it left
            whole = marks[hour] is None
            totals = hour_totals(lake_storage, spec.name, hour, landed[hour], complete=whole)
            add_hour_metadata(context, hour, _hour_metadata(lake_storage, totals, batch))
        yield MaterializeResult(
            metadata={
                # the name mart SQL reads it by; Hive-style dt= folders under the URI
                "dagster/table_name": f"cleaned.{spec.name}",
                "dagster/uri": f"{lake_storage.uri}/{layout.layer_folder(layout.CLEANED, spec.name)}",
                "catalog_version": int(table["VersionId"]) if table else 0,
                "pii_key_source": key.source,
                **retyped.as_metadata(),
                "warehouse_views_ready": exposed.view_ready,
                "warehouse_pending": exposed.pending or "",
                **{
                    k: v
                    for layer, commit in commits.items()
                    for k, v in commit.as_metadata(f"iceberg_{layer}_").items()
                },
            },
            check_results=[_reconcile(total), _quarantine(total, spec.max_quarantine_ratio)],
        )

    return _cleaned


def _hour_metadata(lake: Storage, totals: HourTotals, batch: HourReport) -> dict[str, Any]:
    """One hour's materialization: the hour's running totals (every object of the hour
    processed so far, by any run) and, prefixed `batch_`, what this run did in it.

    A run with nothing new for the hour (a re-run, a sensor batch another run cleaned
    first) still materializes it: its totals are the hour's, its batch counts are zero and
    `event_dates` is empty, so neither plots nor the marts sensor see anything new. Dagster
    records one materialization for every hour of a range run's single output, so skipping
    the no-op hours of a backfill is not possible; skipping a whole no-op run would also
    skip the steps after it in the run and leave the backfill's partitions unmaterialized.
    """
    columns = [
        *(TableColumn(name, kind) for name, kind in totals.column_types.items()),
        *(TableColumn(name, kind, description="lineage") for name, kind in LINEAGE_TYPES.items()),
        TableColumn("dt", "DATE", description="event date: the Hive folder dt=YYYY-MM-DD"),
    ]
    batch_counts = {k: v for k, v in batch.as_metadata().items() if k != "event_dates"}
    return {
        # Dagster's table keys (TableMetadataSet is not exported by dagster 1.13)
        "dagster/column_schema": TableSchema(columns=columns),
        "dagster/row_count": totals.records_cleaned,
        "dagster/partition_row_count": totals.records_cleaned,
        "objects": totals.objects,
        "objects_pending": totals.objects_pending,
        "bytes_in": totals.bytes_in,
        "records_in": totals.records_in,
        "records_cleaned": totals.records_cleaned,
        "records_quarantined": totals.records_quarantined,
        "duplicates_dropped": totals.duplicates_dropped,
        "quarantine_ratio": round(totals.quarantine_ratio, 6),
        "files": MetadataValue.json([lake.uri_of(f) for f in totals.files[:FILES_SHOWN]]),
        "files_not_shown": max(0, totals.files_count - FILES_SHOWN),
        # the event dates this run wrote: the marts sensor rebuilds those days
        "event_dates": MetadataValue.json(sorted(batch.event_dates)),
        **{f"batch_{k}": v for k, v in batch_counts.items()},
        "batch_files_written": len(batch.files_written),
        "batch_columns_not_in_catalog": MetadataValue.json(
            {k: v for k, v in batch.columns_not_in_catalog.items() if v}
        ),
    }


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
