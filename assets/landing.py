"""landing/<stream>: the objects Firehose delivered in each arrival hour (observed, not copied)."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.hourly import add_hour_metadata, hourly_asset_args, hours_of
from lake.firehose import hour_prefix, is_folder_marker
from lake.streams import StreamSpec
from orchestration.resources import LakeResource

KEYS_SHOWN = 50


def build_landing_asset(
    spec: StreamSpec, partitions: HourlyPartitionsDefinition
) -> AssetsDefinition:
    @asset(
        **hourly_asset_args("landing", spec, partitions),
        kinds={"s3"},
        description=f"{spec.description}: raw Firehose objects ({spec.format}), by arrival hour.",
    )
    def _landing(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        landing = lake.landing()
        total = 0
        for hour in hours_of(context):
            prefix = hour_prefix(spec.name, hour)
            listed = list(landing.list(prefix))
            objects = [o for o in listed if not is_folder_marker(o.key, o.size)]
            total += len(objects)
            add_hour_metadata(
                context,
                hour,
                {
                    "objects": len(objects),
                    "bytes": sum(o.size for o in objects),
                    "keys": MetadataValue.json([o.key for o in objects[:KEYS_SHOWN]]),
                    "keys_not_shown": max(0, len(objects) - KEYS_SHOWN),
                    "folder_markers_ignored": len(listed) - len(objects),
                    "location": MetadataValue.url(f"{landing.uri}/{prefix}"),
                },
            )
        context.log.info(f"{total} objects under {landing.uri}/{spec.name}/")
        return MaterializeResult()

    return _landing
