"""marts/<name>: one asset per SQL file in sql/marts/, lineage read from the SQL."""

from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)
from dagster_duckdb import DuckDBResource

from lake.marts import MartSpec, build_mart
from orchestration.partitions import daily_partitions
from orchestration.resources import LakeResource


def build_mart_asset(spec: MartSpec) -> AssetsDefinition:
    daily = spec.partitioned_by == "day"

    @asset(
        key=AssetKey(["marts", spec.name]),
        deps=[AssetKey([layer, table]) for layer, table in spec.deps],
        partitions_def=daily_partitions if daily else None,
        group_name="marts",
        kinds={"duckdb", "sql"},
        description=spec.description or f"Mart from sql/marts/{spec.path.name}",
        metadata={
            "sql_file": f"sql/marts/{spec.path.name}",
            "unique_key": ", ".join(spec.unique_key),
            "redshift_diststyle": spec.diststyle,
            "redshift_distkey": spec.distkey or "",
            "redshift_sortkey": ", ".join(spec.sortkey),
        },
    )
    def _mart(
        context: AssetExecutionContext, lake: LakeResource, warehouse: DuckDBResource
    ) -> MaterializeResult:
        day = date.fromisoformat(context.partition_key) if daily else None
        build = build_mart(spec, day, lake.lake(), warehouse.get_connection)
        if build.missing_inputs:
            context.log.warning(f"no input for {', '.join(build.missing_inputs)} on {day}")
        metadata = {
            "dagster/row_count": build.rows,
            "files": MetadataValue.json(build.files),
            "missing_inputs": MetadataValue.json(build.missing_inputs),
            "warehouse_table": f"marts.{spec.name}",
        }
        if build.columns:
            metadata["dagster/column_schema"] = TableSchema(
                columns=[TableColumn(name, type_) for name, type_ in build.columns]
            )
        return MaterializeResult(metadata=metadata)

    return _mart
