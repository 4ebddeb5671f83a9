"""The code location: every asset, job and sensor generated from streams.yaml and sql/marts/,
with the settings read from the environment once, when the definitions are built."""

from __future__ import annotations

import os
import warnings
from datetime import date

from dagster import AssetKey, AssetsDefinition, BetaWarning, Definitions, in_process_executor

from assets.cleaned import build_cleaned_asset
from assets.landing import build_landing_asset
from assets.maintenance import COMPACTION, EXPIRY, build_maintenance_assets, maintained_tables
from assets.marts import build_mart_asset
from assets.schema import build_schema_asset
from lake.marts import load_marts
from lake.settings import Settings
from lake.streams import StreamSpec, load_streams
from orchestration.jobs import ingest_job, maintenance_job, marts_job
from orchestration.partitions import daily_partitions, hourly_partitions, with_start_date
from orchestration.process_exit import freeze_at_exit
from orchestration.resources import resources_from_env
from orchestration.schedules import (
    build_compaction_schedule,
    build_daily_marts_schedule,
    build_expiry_schedule,
)
from orchestration.schema_checks import build_schema_change_check
from orchestration.sensors import (
    build_landing_events_sensor,
    build_landing_sensor,
    build_marts_sensor,
    build_reconcile_sensor,
)

# The assets use beta parameters on purpose (backfill_policy, allow_nonexistent_upstream_
# partitions): Dagster would warn on every load of the code location, in every process.
warnings.filterwarnings("ignore", category=BetaWarning)
freeze_at_exit()  # a process that loaded the code location (the CLI) ends sooner

settings = with_start_date(Settings.from_env(), os.environ)
streams = load_streams()
marts = load_marts(set(streams.streams))
hourly = hourly_partitions(settings.pipeline_start_date)
daily = daily_partitions(settings.pipeline_start_date)


def build_ingest_assets(spec: StreamSpec, database: str) -> list[AssetsDefinition]:
    """landing, schema and cleaned for one stream entry (fresh definitions, no resources)."""
    return [
        build_landing_asset(spec, hourly),
        build_schema_asset(spec, database, hourly),
        build_cleaned_asset(spec, database, hourly),
    ]


def ingest_assets(stream: str) -> list[AssetsDefinition]:
    """landing, schema and cleaned for one declared stream of streams.yaml."""
    return build_ingest_assets(streams[stream], streams.database)


stream_assets = [a for name in streams.streams for a in ingest_assets(name)]
mart_assets = [build_mart_asset(spec, streams, daily) for spec in marts.values()]
ingest_jobs = {name: ingest_job(name) for name in streams.streams}
maintenance_assets = build_maintenance_assets(
    maintained_tables(list(streams.streams), list(marts.values())), daily
)
compaction_job, expiry_job = (
    maintenance_job(
        f"table_{kind}",
        [a.key for a in maintenance_assets if a.key.path[0] == kind],
        f"Table maintenance: {kind} of every cleaned, quarantine and mart table",
    )
    for kind in (COMPACTION, EXPIRY)
)

daily_marts = [AssetKey(["marts", m.name]) for m in marts.values() if m.partitioned_by == "day"]
daily_marts_job = marts_job(daily_marts)
cleaned_read_by_marts = sorted(
    {
        AssetKey([layer, table])
        for m in marts.values()
        for layer, table in m.deps
        if layer == "cleaned"
    },
    key=lambda k: k.to_user_string(),
)

schema_change_check = build_schema_change_check(
    [a.key for a in stream_assets if a.key.path[0] == "schema"]
)

defs = Definitions(
    assets=[*stream_assets, *mart_assets, *maintenance_assets],
    asset_checks=[schema_change_check],
    jobs=[*ingest_jobs.values(), daily_marts_job, compaction_job, expiry_job],
    schedules=[
        build_daily_marts_schedule(daily_marts_job),
        build_compaction_schedule(
            compaction_job,
            settings.compaction_days,
            date.fromisoformat(settings.pipeline_start_date),
        ),
        build_expiry_schedule(expiry_job),
    ],
    sensors=[
        *(build_landing_sensor(name, job, settings) for name, job in ingest_jobs.items()),
        *(build_reconcile_sensor(name, job, settings) for name, job in ingest_jobs.items()),
        build_landing_events_sensor(ingest_jobs, settings),
        build_marts_sensor(
            cleaned_read_by_marts,
            daily_marts_job,
            {name: s.allowed_lateness_hours for name, s in streams.streams.items()},
            settings,
        ),
    ],
    resources=resources_from_env(settings),
    # the UI's Materialize, backfills and `dagster asset materialize` run the implicit asset
    # job: without this, the multiprocess executor starts a process per step (seconds each)
    executor=in_process_executor,
)
