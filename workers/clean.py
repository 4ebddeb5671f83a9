"""The cleaning step's Pipes worker: `python -m workers.clean`, launched by
orchestration/pipes_compute.py in a subprocess or an ECS task.

It reads the step's hours (the partition window) and the run's settings and options from
the Pipes context's extras, runs lake.cleaning.run.clean_run as the in-process step does, and
reports the same materialization metadata, checks and per-hour metadata back.
"""

from __future__ import annotations

import os
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from lake.cleaning.run import CleanRunResult, RunOptions, clean_run
from lake.pii import resolve_key
from lake.settings import Settings
from workers.pipes_run import report, step_hours, storages, stream_spec


def run(context: PipesContext) -> CleanRunResult:
    extras: dict[str, Any] = dict(context.extras)
    spec = stream_spec(extras)
    settings = Settings.from_env(extras["settings"])
    landing, lake = storages(settings)
    key = resolve_key(
        landing.uri,
        lake.uri,
        env_key=os.environ.get("PII_HASH_KEY") or None,
        secret_id=settings.pii_hash_key_secret_id,
    )
    return clean_run(
        settings,
        spec,
        extras["database"],
        (landing, lake),
        key,
        step_hours(extras),
        RunOptions(**extras["options"]),
        context.log,
    )


def main() -> None:
    with open_dagster_pipes() as context:
        result = run(context)
        report(context, result.hour_metadata, result.metadata, result.checks)


if __name__ == "__main__":
    main()
