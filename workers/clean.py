"""The cleaning step's Pipes worker: `python -m workers.clean`, launched by
orchestration/pipes_compute.py in a subprocess or an ECS task.

It reads the step's hours (the partition window) and the run's settings and options from
the Pipes context's extras, runs lake.cleaning.run.clean_run as the in-process step does, and
reports the same materialization metadata, checks and per-hour metadata back. Given a
`chunk` in its extras (CLEAN_WORKERS > 1), it cleans that chunk of the run's hours only and
hands it back uncommitted (lake.cleaning.handoff); the step settles and commits the run.
"""

from __future__ import annotations

import os
from typing import Any

from dagster_pipes import PipesContext

from lake.cleaning.run import CleanRunResult, RunOptions, clean_run, cleaner
from lake.iceberg.catalog import LakeTables
from lake.pii import PIIKey, resolve_key
from lake.settings import Settings
from lake.storage import Storage
from lake.streams import StreamSpec
from workers.pipes_run import open_pipes, report, step_hours, storages, stream_spec


def run(context: PipesContext) -> CleanRunResult:
    extras: dict[str, Any] = dict(context.extras)
    spec, settings, (landing, lake), key = setup(extras)
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


def run_chunk(context: PipesContext) -> None:
    """A chunk of a parallel run (lake.cleaning.parallel): its hours cleaned, nothing
    committed, what the run's step commits handed back in the lake's folder it named."""
    from lake.cleaning.handoff import batches_of, dump_chunk, handoff_uri
    from lake.cleaning.parallel import HeldCommit, clean_chunk

    extras: dict[str, Any] = dict(context.extras)
    chunk = extras["chunk"]
    spec, settings, storages_, key = setup(extras)
    tables = LakeTables(settings)
    held = HeldCommit(tables, spec, storages_[1], token=chunk["token"])
    options = RunOptions(**extras["options"])
    clean = cleaner(settings, spec, chunk["table"], storages_, key, options, tables)
    hidden = frozenset(chunk["hidden"])
    reports, keys = clean_chunk(clean, settings, batches_of(chunk["hours"]), hidden, held)
    size = dump_chunk(storages_[1], chunk["handoff"], reports, keys, held)
    where = handoff_uri(storages_[1], chunk["handoff"])
    context.log.info(f"chunk handed back: {size} bytes at {where}")


def setup(extras: dict[str, Any]) -> tuple[StreamSpec, Settings, tuple[Storage, Storage], PIIKey]:
    """The stream, settings, storages and PII key of the orchestrator's run."""
    spec = stream_spec(extras)
    settings = Settings.from_env(extras["settings"])
    landing, lake = storages(settings)
    key = resolve_key(
        landing.uri,
        lake.uri,
        env_key=os.environ.get("PII_HASH_KEY") or None,
        secret_id=settings.pii_hash_key_secret_id,
    )
    return spec, settings, (landing, lake), key


def main() -> None:
    with open_pipes() as context:
        if "chunk" in context.extras:
            run_chunk(context)
        else:
            result = run(context)
            report(context, result.hour_metadata, result.metadata, result.checks)


if __name__ == "__main__":
    main()
