"""marts/<name>: one asset per SQL file in sql/marts/, lineage read from the SQL.

A daily mart partition depends on the arrival hours that can hold its events: the day,
the days its SQL looks back (`lookback_days`), and the stream's allowed lateness after
it. A backfill of many days is one run (BackfillPolicy.single_run) that builds the days
in order, each day's materialization with its own counts. A built day goes to each sink
of lake.mart_sinks (lake Parquet, Redshift files, warehouse, alerts), built here from the
resources.

What the UI shows of a mart comes from its SQL file: the code version (a hash of the file,
so a changed file marks built partitions stale), owner and `pii` tag, the checks of its
header's `unique_key` and `not_null` (lake.mart_checks), and column lineage (lake.mart_lineage).
"""

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import sqlglot
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    DailyPartitionsDefinition,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    TimeWindowPartitionMapping,
    asset,
)
from dagster_duckdb import DuckDBResource

from assets.hourly import ASSET_RETRY_POLICY
from lake import layout
from lake.catalog_store import Catalog
from lake.cleaning.columns import columns_from_table
from lake.iceberg.catalog import LakeTables
from lake.mart_checks import CheckOutcome, duplicate_keys, null_values
from lake.mart_lineage import column_lineage
from lake.marts import MartSpec
from lake.settings import Settings
from lake.storage import Storage
from lake.streams import StreamCatalog
from orchestration.aws_resources import AlertsResource, RedshiftResource
from orchestration.resources import LakeResource

# Building a mart (its inputs' Iceberg snapshots, its sinks, the warehouse) imports
# pyiceberg: a mart run does, not every process that loads the code location.
if TYPE_CHECKING:
    from lake.mart_build import InputColumns, InputSchema, MartBuild
    from lake.mart_sinks import MartSink, SinkOutput

# One writer of the DuckDB warehouse file at a time (limit 1 in dagster.yaml), however
# the run was launched.
WAREHOUSE_POOL = "warehouse"
# daily_marts_schedule builds yesterday at 00:30 UTC: a daily mart not built by 02:00 is late
DAILY_FRESHNESS = FreshnessPolicy.cron(
    deadline_cron="0 2 * * *", lower_bound_delta=timedelta(minutes=90), timezone="UTC"
)


def mart_deps(spec: MartSpec, streams: StreamCatalog) -> list[AssetDep]:
    deps = []
    for layer, table in spec.deps:
        mapping = None
        if spec.partitioned_by == "day":
            late_days = (
                math.ceil(streams[table].allowed_lateness_hours / 24) if layer == "cleaned" else 0
            )
            mapping = TimeWindowPartitionMapping(
                start_offset=-spec.lookback_days,
                end_offset=late_days,
                allow_nonexistent_upstream_partitions=True,
            )
        deps.append(AssetDep(AssetKey([layer, table]), partition_mapping=mapping))
    return deps


def mart_check_specs(spec: MartSpec) -> list[AssetCheckSpec]:
    """A duplicate key is blocking: downstream marts would count its rows twice. A NULL
    in a not-null column only warns: the rows are still whole and countable."""
    key = AssetKey(["marts", spec.name])
    specs = []
    if spec.unique_key:
        specs.append(
            AssetCheckSpec(
                "unique_key",
                asset=key,
                blocking=True,
                description=f"No two rows share ({', '.join(spec.unique_key)}); NULLs "
                "compare equal",
            )
        )
    if spec.not_null:
        specs.append(
            AssetCheckSpec(
                "not_null", asset=key, description=f"No NULL in {', '.join(spec.not_null)}"
            )
        )
    return specs


def check_results(
    spec: MartSpec, unique: CheckOutcome, nulls: CheckOutcome
) -> list[AssetCheckResult]:
    results = []
    if spec.unique_key:
        results.append(
            AssetCheckResult(
                check_name="unique_key",
                passed=unique.passed,
                severity=AssetCheckSeverity.ERROR,
                metadata={
                    "duplicate_keys": unique.failures,
                    "rows_checked": unique.rows_checked,
                    "sample_keys": MetadataValue.json(unique.samples),
                },
            )
        )
    if spec.not_null:
        results.append(
            AssetCheckResult(
                check_name="not_null",
                passed=nulls.passed,
                severity=AssetCheckSeverity.WARN,
                metadata={
                    "null_values": nulls.failures,
                    "nulls_by_column": MetadataValue.json(nulls.by_column),
                    "rows_checked": nulls.rows_checked,
                    "sample_keys": MetadataValue.json(nulls.samples),
                },
            )
        )
    return results


def lineage_metadata(spec: MartSpec, inputs: "InputSchema") -> TableColumnLineage:
    names = {layer: {t: list(c) for t, c in tables.items()} for layer, tables in inputs.items()}
    return TableColumnLineage(
        deps_by_column={
            column: [
                TableColumnDep(asset_key=AssetKey([layer, table]), column_name=name)
                for layer, table, name in sources
            ]
            for column, sources in column_lineage(spec, names).items()
        }
    )


def mart_sinks(
    spec: MartSpec,
    context: AssetExecutionContext,
    warehouse: DuckDBResource,
    alerts: AlertsResource,
    redshift: RedshiftResource,
    settings: Settings,
    tables: LakeTables,
) -> list["MartSink"]:
    """The run's sinks, in lake.mart_sinks' order: the lake's file first (registered in the
    mart's Iceberg table), the others read it. The warehouse holds views over copies of
    the table's files: a run writes it only to make a view, and a reader holding it open
    delays that to a later run, never fails it."""
    from lake.mart_sinks import AlertNotices, LakeParquet, RedshiftFiles, WarehouseView
    from lake.warehouse import Warehouse

    sinks: list[MartSink] = [
        LakeParquet(tables),
        RedshiftFiles(redshift.iam_role, redshift.loader(), context.log),
        WarehouseView(
            Warehouse(warehouse.database, settings.warehouse_lock_wait_seconds),
            context.log,
            tables,
        ),
    ]
    if spec.alerts:  # an SNS client only for a mart that alerts
        sinks.append(AlertNotices(*alerts.publisher()))
    return sinks


def day_metadata(built: "MartBuild", written: "SinkOutput") -> dict[str, Any]:
    """What a partition's materialization shows of its own day: its build and its sinks."""
    metadata: dict[str, Any] = {
        "dagster/row_count": built.rows,
        "missing_inputs": MetadataValue.json(sorted(built.missing_inputs)),
        "empty_inputs": MetadataValue.json(sorted(built.empty_inputs)),
    }
    if built.day is not None:
        metadata["day_complete"] = built.day_complete
    metadata.update(
        {k: MetadataValue.json(v) if isinstance(v, list) else v for k, v in written.items()}
    )
    if built.columns:
        metadata["dagster/column_schema"] = TableSchema(
            columns=[TableColumn(name, type_) for name, type_ in built.columns]
        )
    return metadata


def build_mart_asset(
    spec: MartSpec,
    streams: StreamCatalog,
    partitions: DailyPartitionsDefinition,
    extra_sinks: Sequence["MartSink"] = (),
) -> AssetsDefinition:
    """`extra_sinks` run after the shipped ones, for every partition built."""
    daily = spec.partitioned_by == "day"

    @asset(
        key=AssetKey(["marts", spec.name]),
        deps=mart_deps(spec, streams),
        partitions_def=partitions if daily else None,
        backfill_policy=BackfillPolicy.single_run() if daily else None,
        group_name="marts",
        retry_policy=ASSET_RETRY_POLICY,
        pool=WAREHOUSE_POOL,
        kinds={"duckdb", "sql", "redshift"},
        code_version=spec.code_version,
        owners=[spec.owner] if spec.owner else None,
        tags={"pii": "true"} if spec.pii else None,
        freshness_policy=DAILY_FRESHNESS if daily else None,
        check_specs=mart_check_specs(spec),
        description=spec.description or f"Mart from sql/marts/{spec.path.name}",
        metadata={
            "sql_file": f"sql/marts/{spec.path.name}",
            "unique_key": ", ".join(spec.unique_key),
            "redshift_diststyle": spec.diststyle,
            "redshift_distkey": spec.distkey or "",
            "redshift_sortkey": ", ".join(spec.sortkey),
            "lookback_days": spec.lookback_days,
            "alerts": spec.alerts,
            "not_null": ", ".join(spec.not_null),
        },
    )
    def _mart(
        context: AssetExecutionContext,
        lake: LakeResource,
        warehouse: DuckDBResource,
        alerts: AlertsResource,
        redshift: RedshiftResource,
        settings: ResourceParam[Settings],
    ) -> MaterializeResult:
        from lake.mart_build import build_mart
        from lake.mart_inputs import MartInputs
        from lake.mart_sinks import write_day

        lake_storage = lake.lake()
        columns = input_columns(spec, streams, lake_storage)
        tables = LakeTables(settings)
        sinks = [
            *mart_sinks(spec, context, warehouse, alerts, redshift, settings, tables),
            *extra_sinks,
        ]
        days = [date.fromisoformat(k) for k in context.partition_keys] if daily else [None]
        # what belongs to the run: its days, the checks over all their rows, the lineage
        metadata: dict[str, Any] = {
            "days": MetadataValue.json([str(d) for d in days if d]),
            # the warehouse's name for it; Hive-style dt= folders under the URI
            "dagster/table_name": f"marts.{spec.name}",
            "dagster/uri": f"{lake_storage.uri}/{layout.mart_folder(spec.name)}",
        }
        committed = MartInputs(lake_storage, tables)  # the input tables' committed snapshots
        lateness = {name: s.allowed_lateness_hours for name, s in streams.streams.items()}
        unique, nulls = CheckOutcome(), CheckOutcome()
        incomplete: list[str] = []
        inputs: InputSchema = {}
        for day in days:
            built = build_mart(spec, day, lake_storage, columns, committed, lateness)
            if built.missing_inputs:
                context.log.warning(f"no input for {', '.join(built.missing_inputs)} on {day}")
            if built.day_complete is False:
                incomplete.append(str(day))
            if built.result is not None:
                inputs = built.input_schema
                if spec.unique_key:
                    unique.add(duplicate_keys(built.result, spec.unique_key))
                if spec.not_null:
                    nulls.add(null_values(built.result, spec.not_null, spec.unique_key))
            written = day_metadata(built, write_day(built, lake_storage, sinks))
            if daily:  # each day's materialization shows its own counts
                context.add_asset_metadata(written, partition_key=str(day))
            else:
                metadata.update(written)
        if daily:  # day_complete is false in their rows: day-level flags wait for the rest
            metadata["incomplete_days"] = MetadataValue.json(incomplete)
        if inputs:
            try:
                metadata["dagster/column_lineage"] = lineage_metadata(spec, inputs)
            except sqlglot.errors.SqlglotError as exc:  # the mart is built; only lineage is lost
                context.log.warning(f"no column lineage for marts.{spec.name}: {exc}")
        return MaterializeResult(
            metadata=metadata, check_results=check_results(spec, unique, nulls)
        )

    return _mart


def input_columns(spec: MartSpec, streams: StreamCatalog, lake: Storage) -> "InputColumns":
    """The catalog's columns of the cleaned streams the mart reads; streams not crawled
    yet stay out: no types to give."""
    catalog = Catalog(lake, streams.database)
    columns: InputColumns = {}
    for layer, table in spec.deps:
        if layer == "cleaned" and (found := catalog.get_table(table)) is not None:
            found_columns = columns_from_table(found, streams[table])
            columns[table] = [(c.name, c.duck_type) for c in found_columns]
    return columns
