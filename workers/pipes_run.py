"""What the Pipes workers (workers/clean.py, workers/crawl.py) share: the Pipes session
(local or through the lake's bucket), the stream, hours, settings and storages read from
the Pipes context's extras, and the report sent back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from dagster_pipes import (
    PipesContext,
    PipesEnvVarParamsLoader,
    PipesS3ContextLoader,
    PipesS3MessageWriter,
    open_dagster_pipes,
)

from lake.cleaning.run import HOURS_MESSAGE, CheckOutcome
from lake.firehose import hours_between
from lake.settings import Settings
from lake.storage import Storage, default_s3_client, encryption_args, open_storage
from lake.streams import StreamSpec, load_streams

S3_MESSAGES_INTERVAL = 2.0  # seconds between a worker's message uploads (ECS)


def open_pipes() -> PipesContext:
    """The worker's Pipes session as the orchestrator opened it: a context file and
    messages on stdout or a file (subprocess), or a context object and message chunks in
    the lake's bucket (ECS: orchestration.pipes_compute.ecs_client), which the default
    loader and writer cannot read or write."""
    params = PipesEnvVarParamsLoader()
    if params.is_dagster_pipes_process() and "bucket" in params.load_context_params():
        client = default_s3_client()
        return open_dagster_pipes(
            context_loader=PipesS3ContextLoader(client),
            message_writer=PipesS3MessageWriter(client, interval=S3_MESSAGES_INTERVAL),
        )
    return open_dagster_pipes()


def storages(settings: Settings) -> tuple[Storage, Storage]:
    """The landing zone and the lake, opened as the orchestrator's LakeResource opens them
    (one S3 client with the project's retries, the PUTs' encryption, the read attempts)."""
    uris = (settings.landing_uri, settings.lake_uri)
    client = default_s3_client() if any(u.startswith("s3://") for u in uris) else None
    put_args = encryption_args(settings.s3_sse, settings.s3_sse_kms_key_id)
    landing, lake = (open_storage(u, client, put_args, settings.s3_read_attempts) for u in uris)
    return landing, lake


def stream_spec(extras: dict[str, Any]) -> StreamSpec:
    """The step's stream as the worker's streams.yaml declares it, which must be the
    orchestrator's (the same code version)."""
    spec = load_streams()[extras["stream"]]
    if spec.code_version != extras["code_version"]:
        raise RuntimeError(
            f"the worker's streams.yaml entry for {spec.name} differs from the orchestrator's "
            f"(code version {spec.code_version}, expected {extras['code_version']}): "
            "deploy the same image to both"
        )
    return spec


def step_hours(extras: dict[str, Any]) -> list[datetime]:
    """The step's hours: Pipes sends no partition window for a range run (dagster 1.13)."""
    window = extras["window"]
    return hours_between(datetime.fromisoformat(window[0]), datetime.fromisoformat(window[1]))


def report(
    context: PipesContext,
    hour_metadata: dict[str, dict[str, Any]],
    metadata: dict[str, Any],
    checks: Iterable[CheckOutcome],
) -> None:
    """Per-hour metadata (a custom message), the materialization and its checks."""
    context.report_custom_message({HOURS_MESSAGE: hour_metadata})
    context.report_asset_materialization(metadata=metadata)
    for check in checks:
        context.report_asset_check(
            check.name,
            check.passed,
            severity=check.severity,  # type: ignore[arg-type]
            metadata=check.metadata,
        )
