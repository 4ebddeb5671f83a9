"""Partitions: hourly by arrival hour for landing/schema/cleaned, daily for marts.

`end_offset=1` makes the hour (and day) still in progress a partition, since objects
land in the current hour and sensors request it.

They start on PIPELINE_START_DATE when it is set (a real deployment); otherwise, on a
lake in a local folder (the embedded default), on the first event day of the demo seed
recorded there (`make dev`, `make seed`), which stays the same across restarts; otherwise
on Settings' default start date. An S3 lake is never read here: the definitions load in
every run's process, and loading them must not depend on S3 being reachable.
"""

from collections.abc import Mapping
from dataclasses import replace

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition

from lake.settings import Settings
from lake.storage import open_storage


def with_start_date(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """`settings` whose pipeline_start_date is the first partition's day (module doc)."""
    if environ.get("PIPELINE_START_DATE") or settings.lake_uri.startswith("s3://"):
        return settings
    # the simulator package (~0.1 s to import) only for a local lake without a start date
    from lake.simulator.demo import read_seed

    demo = read_seed(open_storage(settings.lake_uri))
    if demo is None:
        return settings
    return replace(settings, pipeline_start_date=demo.first_event_day.isoformat())


def hourly_partitions(start_date: str) -> HourlyPartitionsDefinition:
    return HourlyPartitionsDefinition(start_date=f"{start_date}-00:00", end_offset=1)


def daily_partitions(start_date: str) -> DailyPartitionsDefinition:
    return DailyPartitionsDefinition(start_date=start_date, end_offset=1)
