"""Partitions: hourly by arrival hour for landing/schema/cleaned, daily for marts, from the
first day PIPELINE_START_DATE (Settings.pipeline_start_date).

`end_offset=1` makes the hour (and day) still in progress a partition, since objects
land in the current hour and sensors request it.
"""

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition


def hourly_partitions(start_date: str) -> HourlyPartitionsDefinition:
    return HourlyPartitionsDefinition(start_date=f"{start_date}-00:00", end_offset=1)


def daily_partitions(start_date: str) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=start_date, end_offset=1)
