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
from datetime import datetime
from pathlib import Path
from typing import Any

from dagster_pipes import PipesContext, open_dagster_pipes

from lake.cleaning.run import HOURS_MESSAGE, CleanRunResult, RunOptions, clean_run, cleaner
from lake.firehose import hours_between
from lake.iceberg.catalog import LakeTables
from lake.pii import PIIKey, resolve_key
from lake.settings import Settings
from lake.storage import Storage, default_s3_client, encryption_args, open_storage
from lake.streams import StreamSpec, load_streams


def storages(settings: Settings) -> tuple[Storage, Storage]:
    """The landing zone and the lake, opened as the orchestrator's LakeResource opens them
    (one S3 client with the project's retries, the PUTs' encryption, the read attempts)."""
    uris = (settings.landing_uri, settings.lake_uri)
    client = default_s3_client() if any(u.startswith("s3://") for u in uris) else None
    put_args = encryption_args(settings.s3_sse, settings.s3_sse_kms_key_id)
    landing, lake = (open_storage(u, client, put_args, settings.s3_read_attempts) for u in uris)
    return landing, lake


def run(context: PipesContext) -> CleanRunResult:
    extras: dict[str, Any] = dict(context.extras)
    spec, settings, (landing, lake), key = setup(extras)
    window = extras["window"]  # Pipes sends no window for a range run (dagster 1.13)
    hours = hours_between(datetime.fromisoformat(window[0]), datetime.fromisoformat(window[1]))
    return clean_run(
        settings,
        spec,
        extras["database"],
        (landing, lake),
        key,
        hours,
        RunOptions(**extras["options"]),
        context.log,
    )


def run_chunk(context: PipesContext) -> None:
    """A chunk of a parallel run (lake.cleaning.parallel): its hours cleaned, nothing
    committed, what the run's step commits handed back in the file it named."""
    from lake.cleaning.handoff import batches_of, dump_chunk
    from lake.cleaning.parallel import HeldCommit, clean_chunk

    extras: dict[str, Any] = dict(context.extras)
    chunk = extras["chunk"]
    spec, settings, storages, key = setup(extras)
    tables = LakeTables(settings)
    held = HeldCommit(tables, spec, storages[1], token=chunk["token"])
    options = RunOptions(**extras["options"])
    clean = cleaner(settings, spec, chunk["table"], storages, key, options, tables)
    hidden = frozenset(chunk["hidden"])
    reports, keys = clean_chunk(clean, settings, batches_of(chunk["hours"]), hidden, held)
    dump_chunk(Path(chunk["handoff"]), reports, keys, held)


def setup(extras: dict[str, Any]) -> tuple[StreamSpec, Settings, tuple[Storage, Storage], PIIKey]:
    """The stream, settings, storages and PII key of the orchestrator's run."""
    spec = load_streams()[extras["stream"]]
    if spec.code_version != extras["code_version"]:
        raise RuntimeError(
            f"the worker's streams.yaml entry for {spec.name} differs from the orchestrator's "
            f"(code version {spec.code_version}, expected {extras['code_version']}): "
            "deploy the same image to both"
        )
    settings = Settings.from_env(extras["settings"])
    landing, lake = storages(settings)
    key = resolve_key(
        landing.uri,
        lake.uri,
        env_key=os.environ.get("PII_HASH_KEY") or None,
        secret_id=settings.pii_hash_key_secret_id,
    )
    return spec, settings, (landing, lake), key


def report(context: PipesContext, result: CleanRunResult) -> None:
    context.report_custom_message({HOURS_MESSAGE: result.hour_metadata})
    context.report_asset_materialization(metadata=result.metadata)
    for check in result.checks:
        context.report_asset_check(
            check.name,
            check.passed,
            severity=check.severity,  # type: ignore[arg-type]
            metadata=check.metadata,
        )


def main() -> None:
    with open_dagster_pipes() as context:
        if "chunk" in context.extras:
            run_chunk(context)
        else:
            report(context, run(context))


if __name__ == "__main__":
    main()
