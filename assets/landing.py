"""landing/<stream>: the objects Firehose delivered in each arrival hour (observed, not copied)."""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    HourlyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from assets.hourly import hourly_asset_args, hours_of
from lake.firehose import hour_prefix, is_folder_marker
from lake.streams import StreamSpec
from orchestration.resources import LakeResource

KEYS_SHOWN = 50


def build_landing_asset(
    spec: StreamSpec, partitions: HourlyPartitionsDefinition
) -> AssetsDefinition:
    @asset(
        **hourly_asset_args("landing", spec.name, partitions),
        kinds={"s3"},
        description=f"{spec.description}: raw Firehose objects ({spec.format}), by arrival hour.",
    )
    def _landing(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        landing = lake.landing()
        listed = [
            info
            for hour in hours_of(context)
            for info in landing.list(hour_prefix(spec.name, hour))
        ]
        objects = [o for o in listed if not is_folder_marker(o.key, o.size)]
        context.log.info(f"{len(objects)} objects under {landing.uri}/{spec.name}/")
        return MaterializeResult(
            metadata={
                "objects": len(objects),
                "bytes": sum(o.size for o in objects),
                "keys": MetadataValue.json([o.key for o in objects[:KEYS_SHOWN]]),
                "keys_not_shown": max(0, len(objects) - KEYS_SHOWN),
                "folder_markers_ignored": len(listed) - len(objects),
                "location": MetadataValue.url(f"{landing.uri}/{spec.name}/"),
            }
        )

    return _landing
