"""The daily marts schedule: yesterday's marts, rebuilt once the day is complete.

The marts sensor already rebuilds the days new cleaned data touches, within a minute of
each micro-batch; this run at 00:30 UTC makes sure every day gets one build after it
ends (a robot silent since before midnight, a day with no late data at all).
"""

from datetime import timedelta
from typing import TYPE_CHECKING

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    schedule,
)

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def build_daily_marts_schedule(job: "UnresolvedAssetJobDefinition") -> ScheduleDefinition:
    @schedule(
        name="daily_marts_schedule",
        job=job,
        cron_schedule="30 0 * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Builds every daily mart for yesterday at 00:30 UTC",
    )
    def _daily(context: ScheduleEvaluationContext) -> RunRequest:
        day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
        return RunRequest(
            run_key=f"daily:{day}", partition_key=day, tags={"marts/trigger": "schedule"}
        )

    return _daily
