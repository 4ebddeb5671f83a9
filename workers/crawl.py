"""The crawl's Pipes worker: `python -m workers.crawl`, launched by
orchestration/pipes_compute.py in a subprocess or an ECS task (CRAWL_COMPUTE).

It reads the step's hours, the run's settings and options from the Pipes context's extras,
runs lake.crawl_run.crawl_run as the in-process step does (Glue sync included, when
GLUE_DATABASE is set), and reports the same per-hour metadata, table metadata and
compatibility check back.
"""

from __future__ import annotations

from typing import Any

import boto3
from dagster_pipes import PipesContext

from lake.crawl_run import CrawlOptions, CrawlRunResult, crawl_run
from lake.glue_sync import DEFAULT_CONFIG as GLUE_CONFIG
from lake.glue_sync import GlueSync
from lake.settings import Settings
from workers.pipes_run import open_pipes, report, step_hours, storages, stream_spec


def glue_sync(settings: Settings) -> GlueSync | None:
    """The Glue database kept in step, as the orchestrator's GlueResource builds it."""
    if not settings.glue_database:
        return None
    return GlueSync(settings.glue_database, boto3.client("glue", config=GLUE_CONFIG))


def run(context: PipesContext) -> CrawlRunResult:
    extras: dict[str, Any] = dict(context.extras)
    settings = Settings.from_env(extras["settings"])
    return crawl_run(
        stream_spec(extras),
        extras["database"],
        storages(settings),
        step_hours(extras),
        CrawlOptions(**extras["options"]),
        context.log,
        glue_sync(settings),
    )


def main() -> None:
    with open_pipes() as context:
        result = run(context)
        report(context, result.hour_metadata, result.metadata, [result.check])


if __name__ == "__main__":
    main()
