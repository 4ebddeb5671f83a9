"""Daily schedules: yesterday's marts, rebuilt once the day is complete; table maintenance.

The marts sensor already rebuilds the days new cleaned data touches, within a minute of
each micro-batch; this run at 00:30 UTC makes sure every day gets one build after it
ends (a robot silent since before midnight, a day with no late data at all).

Table maintenance follows: compaction of the last COMPACTION_DAYS days at 01:15 UTC,
snapshot expiry at 01:45 UTC (docs/operations.md, "Table maintenance").
"""

from datetime import date, timedelta
from typing import TYPE_CHECKING

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def _daily_at(name: str, job: "UnresolvedAssetJobDefinition", cron: str, description: str):
    """A schedule running once a day at `cron` (UTC), on by default."""
    return schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=description,
    )


def build_daily_marts_schedule(job: "UnresolvedAssetJobDefinition") -> ScheduleDefinition:
    @_daily_at(
        "daily_marts_schedule",
        job,
        "30 0 * * *",
        "Builds every daily mart for yesterday at 00:30 UTC",
    )
    def _daily(context: ScheduleEvaluationContext) -> RunRequest:
        day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        return RunRequest(
            run_key=f"daily:{day}", partition_key=day, tags={"marts/trigger": "schedule"}
        )

    return _daily


def build_compaction_schedule(
    job: "UnresolvedAssetJobDefinition", days: int, first_day: date
) -> ScheduleDefinition:
    """Compaction of yesterday and the `days` - 1 days before it (late records add small
    files to past days), one run over the range of daily partitions."""

    @_daily_at(
        "table_compaction_schedule",
        job,
        "15 1 * * *",
        f"Compacts the last {days} days' small files of every table at 01:15 UTC",
    )
    def _compaction(context: ScheduleEvaluationContext) -> RunRequest:
        last = (context.scheduled_execution_time - timedelta(days=1)).date()
        first = max(first_day, last - timedelta(days=days - 1))
        return RunRequest(
            run_key=f"compaction:{last}",
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
            },
        )

    return _compaction


def build_expiry_schedule(job: "UnresolvedAssetJobDefinition") -> ScheduleDefinition:
    @_daily_at(
        "table_expiry_schedule",
        job,
        "45 1 * * *",
        "Expires old snapshots of every table and deletes orphan files at 01:45 UTC",
    )
    def _expiry(context: ScheduleEvaluationContext) -> RunRequest:
        return RunRequest(run_key=f"expiry:{context.scheduled_execution_time:%Y-%m-%d}")

    return _expiry
