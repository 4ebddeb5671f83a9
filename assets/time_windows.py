"""The arrival hours a run covers: one for a sensor run, many for a single-run backfill."""

from datetime import datetime

from dagster import AssetExecutionContext

from lake.firehose import hours_between


def hours_of(context: AssetExecutionContext) -> list[datetime]:
    window = context.partition_time_window
    return hours_between(window.start, window.end)
