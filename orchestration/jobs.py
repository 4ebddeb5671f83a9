"""Jobs the sensors launch: one ingest job per stream, one job for the daily marts.

Both use the in-process executor: a micro-batch run is a few seconds of work, and a
process per step (the default) would cost more than the work itself.
"""

from typing import TYPE_CHECKING

from dagster import (
    AssetKey,
    AssetSelection,
    define_asset_job,
    in_process_executor,
)
from dagster._core.storage.tags import PRIORITY_TAG

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


# The run queue launches higher priorities first (`dagster/priority`, default 0): when run
# slots are short, an object's cleaning goes before mart days and table maintenance, which
# a later run of theirs catches up with (issue 15, freshness).
INGEST_PRIORITY = "1"


def ingest_job(stream: str) -> "UnresolvedAssetJobDefinition":
    return define_asset_job(
        name=f"ingest_{stream}",
        selection=AssetSelection.assets(
            AssetKey(["landing", stream]),
            AssetKey(["schema", stream]),
            AssetKey(["cleaned", stream]),
        ),
        executor_def=in_process_executor,
        # "stream" is a label (the limit is the assets' pool, dagster.yaml)
        tags={"stream": stream, PRIORITY_TAG: INGEST_PRIORITY},
        description=f"landing -> schema -> cleaned for {stream}, one arrival-hour partition",
    )


def marts_job(mart_keys: list[AssetKey]) -> "UnresolvedAssetJobDefinition":
    return define_asset_job(
        name="daily_marts",
        selection=AssetSelection.assets(*mart_keys),
        executor_def=in_process_executor,
        tags={"warehouse": "duckdb"},  # a label; the limit is the marts' pool (dagster.yaml)
        description="Every daily mart for one day, in dependency order",
    )


def maintenance_job(
    name: str, keys: list[AssetKey], description: str
) -> "UnresolvedAssetJobDefinition":
    """Table maintenance (compaction or expiry) of every table; each asset keeps its
    table writer's pool, so it waits for that writer, not for the other tables."""
    return define_asset_job(
        name=name,
        selection=AssetSelection.assets(*keys),
        executor_def=in_process_executor,
        description=description,
    )
