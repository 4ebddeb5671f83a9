"""Partitions: hourly by arrival hour for landing/schema/cleaned, daily for marts.

`end_offset=1` makes the hour (and day) still in progress a partition, since objects
land in the current hour and sensors request it.

They start on PIPELINE_START_DATE when it is set (a real deployment); otherwise on the
first event day of the demo seed recorded in the lake (`make dev`, `make seed`), which
stays the same across restarts; otherwise on DEFAULT_START_DATE.
"""

import os
from collections.abc import Mapping

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition

from lake.config import Settings
from lake.simulator.demo import read_seed
from lake.storage import open_storage

DEFAULT_START_DATE = "2026-01-01"


def start_date(environ: Mapping[str, str]) -> str:
    """The first partition's day, YYYY-MM-DD (see the module doc)."""
    if configured := environ.get("PIPELINE_START_DATE"):
        return configured
    demo = read_seed(open_storage(Settings.from_env(environ).lake_uri))
    return demo.first_event_day.isoformat() if demo else DEFAULT_START_DATE


START_DATE = start_date(os.environ)

hourly_partitions = HourlyPartitionsDefinition(start_date=f"{START_DATE}-00:00", end_offset=1)
daily_partitions = DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)
