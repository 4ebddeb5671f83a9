"""Partitions: hourly by arrival hour for landing/schema/cleaned, daily for marts.

`end_offset=1` makes the hour (and day) still in progress a partition, since objects
land in the current hour and sensors request it.
"""

import os

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition

START_DATE = os.environ.get("PIPELINE_START_DATE", "2026-01-01")

hourly_partitions = HourlyPartitionsDefinition(start_date=f"{START_DATE}-00:00", end_offset=1)
daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)
