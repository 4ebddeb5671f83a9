"""schema/<stream>: the crawler's Glue-shaped catalog table, merged hour by hour, versioned."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from assets.hourly import hourly_asset_args, hours_of
from lake.crawler import Catalog, crawl_hour
from lake.firehose import hour_prefix
from lake.streams import StreamSpec
from orchestration.resources import LakeResource


def build_schema_asset(spec: StreamSpec, database: str) -> AssetsDefinition:
    @asset(
        **hourly_asset_args("schema", spec.name, "landing"),
        kinds={"glue"},
        description=f"Catalog table {database}.{spec.name} inferred from the landed records.",
    )
    def _schema(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        landing, catalog = lake.landing(), Catalog(lake.lake(), database)
        changes, unreadable, conflicts, records = [], {}, [], 0
        result = None
        for hour in hours_of(context):
            infos = list(landing.list(hour_prefix(spec.name, hour)))
            objects = ((info.key, landing.read(info.key)) for info in infos)
            result = crawl_hour(spec, catalog, landing.uri, hour, objects)
            records += result.hour.records
            unreadable.update(result.hour.unreadable)
            conflicts += result.hour.conflicts
            if result.changed:
                changes.append({"version": result.version, **result.diff})
        assert result is not None  # a partition window always holds at least one hour
        columns = result.table["StorageDescriptor"]["Columns"]
        return MaterializeResult(
            metadata={
                "dagster/column_schema": TableSchema(
                    columns=[TableColumn(c["Name"], c["Type"]) for c in columns]
                ),
                "table": f"{database}.{spec.name}",
                "version": result.version,
                "changes": MetadataValue.json(changes),
                "records_sampled": records,
                "unreadable_objects": MetadataValue.json(unreadable),
                "type_conflicts": MetadataValue.json(conflicts),
                "catalog_key": catalog.table_key(spec.name),
            }
        )

    return _schema
